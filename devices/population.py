"""Draw a heterogeneous device population from the ``devices`` scenario section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from devices.availability import AlwaysOn, Availability, MarkovOnOff
from devices.config import (
    Choice,
    ConstantMobility,
    DevicesConfig,
    DiscPlacement,
    FlashSource,
    LogNormal,
    MarkovConfig,
    ProfileRoundTime,
    Quantity,
    RandomWaypointMobility,
    TraceAvailabilityConfig,
    Uniform,
)
from devices.flash import draw_flash
from devices.mobility import Area, ConstantVelocity, RandomWaypoint
from devices.round_time import RoundTimeProfiles, assign_profiles
from devices.spec import Population
from devices.traces import TraceAvailability, read_availability_trace, read_device_table

RngFor = Callable[[str], np.random.Generator]


def draw_quantity(q: Quantity, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of a configured quantity, ndarray [n]."""
    if isinstance(q, int | float):
        return np.full(n, float(q))
    if isinstance(q, Uniform):
        return rng.uniform(q.low, q.high, size=n)
    if isinstance(q, LogNormal):
        return q.median * np.exp(q.sigma * rng.standard_normal(n))
    if isinstance(q, Choice):
        p = None if q.weights is None else np.asarray(q.weights) / np.sum(q.weights)
        return rng.choice(np.asarray(q.values, dtype=float), size=n, p=p)
    raise TypeError(f"unknown quantity {q!r}")


def draw_positions_m(cfg: DevicesConfig, rng: np.random.Generator) -> np.ndarray:
    """Positions relative to the server, ndarray [n, 2] m."""
    n = cfg.count
    p = cfg.placement
    if isinstance(p, DiscPlacement):
        # Uniform over the annulus area: r^2 uniform on [r0^2, R^2].
        r0 = min(p.min_radius_m, p.radius_m)
        r = np.sqrt(rng.uniform(r0**2, p.radius_m**2, size=n))
        theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
        return np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    return rng.uniform(-p.side_m / 2.0, p.side_m / 2.0, size=(n, 2))


def make_population(
    cfg: DevicesConfig, rng_for: RngFor, flops_per_sample: float | None = None
) -> Population:
    """Population of ``cfg.count`` devices; each attribute uses its own stream ``rng_for(name)``.

    Separate streams mean that changing, say, the CPU distribution leaves positions unchanged.
    With ``cycles_per_sample: auto`` a device's cycles per sample are ``flops_per_sample`` (the
    model's training FLOPs per sample, counted by the caller) times its ``cycles_per_flop``.
    """
    n = cfg.count
    if cfg.cycles_per_sample == "auto":
        if flops_per_sample is None:
            raise ValueError("cycles_per_sample: auto needs the model's FLOPs per sample")
        cycles = flops_per_sample * draw_quantity(
            cfg.cycles_per_flop, n, rng_for("cycles_per_flop")
        )
    else:
        cycles = draw_quantity(cfg.cycles_per_sample, n, rng_for("cycles_per_sample"))
    population = Population(
        cpu_hz=draw_quantity(cfg.cpu_hz, n, rng_for("cpu_hz")),
        cycles_per_sample=cycles,
        tx_power_dbm=draw_quantity(cfg.tx_power_dbm, n, rng_for("tx_power_dbm")),
        position_m=draw_positions_m(cfg, rng_for("placement")),
        kappa=draw_quantity(cfg.kappa, n, rng_for("kappa")),
    )
    if cfg.source is None:
        return population
    if isinstance(cfg.source, FlashSource):  # the uplink mapping needs the channel: simulator
        flash = draw_flash(n, cfg.source.reference_cpu_hz, rng_for)
        return replace(population, cpu_hz=flash.cpu_hz)
    # a measured table replaces the draws column by column (draws still happen, on their own
    # streams, so a table with one column leaves every other draw as it was)
    table = read_device_table(cfg.source.path, n)
    position = population.position_m
    if "x_m" in table:
        position = np.column_stack([table["x_m"], table["y_m"]])
    return Population(
        cpu_hz=table.get("cpu_hz", population.cpu_hz),
        cycles_per_sample=table.get("cycles_per_sample", population.cycles_per_sample),
        tx_power_dbm=table.get("tx_power_dbm", population.tx_power_dbm),
        position_m=position,
        kappa=table.get("kappa", population.kappa),
    )


def make_availability(cfg: DevicesConfig) -> Availability:
    """The availability model; a trace is read (and checked row by row) here. Raises
    :class:`devices.traces.TraceError` for a bad trace file."""
    a = cfg.availability
    if isinstance(a, MarkovConfig):
        return MarkovOnOff(a.mean_online_s, a.mean_offline_s)
    if isinstance(a, TraceAvailabilityConfig):
        return TraceAvailability(read_availability_trace(a.path, cfg.count))
    return AlwaysOn()


def make_round_time(cfg: DevicesConfig, rng: np.random.Generator) -> RoundTimeProfiles | None:
    """Per-device job-time profiles, or None for the natural (CPU + channel) model."""
    rt = cfg.round_time
    if not isinstance(rt, ProfileRoundTime):
        return None
    which = assign_profiles(cfg.count, len(rt.profiles), rng)
    mean = np.array([p.mean_s for p in rt.profiles])[which]
    std = np.array([p.std_s for p in rt.profiles])[which]
    return RoundTimeProfiles(mean, std)


def make_mobility(cfg: DevicesConfig, rng: np.random.Generator):
    """The mobility model, or None when devices never move."""
    m = cfg.mobility
    if isinstance(m, ConstantMobility):
        return None
    p = cfg.placement
    area = Area(radius_m=p.radius_m) if isinstance(p, DiscPlacement) else Area(side_m=p.side_m)
    low, high = m.speed_mps
    if isinstance(m, RandomWaypointMobility):
        model = RandomWaypoint(area, (low, high), rng)
        model.start(cfg.count)
        return model
    speed = rng.uniform(low, high, cfg.count)
    heading = (
        np.full(cfg.count, np.deg2rad(m.heading_deg))
        if m.heading_deg is not None
        else rng.uniform(0, 2 * np.pi, cfg.count)
    )
    return ConstantVelocity(
        area, np.column_stack([speed * np.cos(heading), speed * np.sin(heading)])
    )
