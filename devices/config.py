"""Scenario section ``devices``: how many, how fast, how powerful, where, and when online."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    field_validator,
    model_validator,
)


class _Frozen(BaseModel):
    # no NaN or infinity anywhere: a non-finite power or bound only fails deep in a run
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Uniform(_Frozen):
    """Uniform on [low, high]."""

    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class LogNormal(_Frozen):
    """Log-normal with the given median and log-space standard deviation ``sigma``."""

    dist: Literal["lognormal"]
    median: PositiveFloat
    sigma: float = Field(ge=0, le=5)


class Choice(_Frozen):
    """One of ``values``, with optional ``weights`` (normalised)."""

    dist: Literal["choice"]
    values: list[float] = Field(min_length=1)
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self):
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights has {len(self.weights)} entries but values has {len(self.values)}"
                )
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be zero")
        return self


Distribution = Annotated[Uniform | LogNormal | Choice, Field(discriminator="dist")]
# A plain number means every device gets that value.
Quantity = float | Distribution


SPEED_MPS = Annotated[float, Field(ge=0, le=1e3)]


class DiscPlacement(_Frozen):
    """Uniform over the area of an annulus around the server."""

    kind: Literal["disc"]
    radius_m: float = Field(gt=0, le=1e6)
    min_radius_m: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _inner_inside_outer(self):
        if self.min_radius_m >= self.radius_m:
            raise ValueError(
                f"min_radius_m ({self.min_radius_m:g}) below radius_m ({self.radius_m:g})"
            )
        return self


class SquarePlacement(_Frozen):
    """Uniform over a square of side ``side_m`` centred on the server."""

    kind: Literal["square"]
    side_m: float = Field(gt=0, le=1e6)


Placement = Annotated[DiscPlacement | SquarePlacement, Field(discriminator="kind")]


class AlwaysOnConfig(_Frozen):
    kind: Literal["always_on"]


class MarkovConfig(_Frozen):
    """Markov on/off: exponential online and offline periods with these means (s)."""

    kind: Literal["markov"]
    # periods under 10 ms would flood the event log, not model any device
    mean_online_s: float = Field(ge=0.01, le=1e12)
    mean_offline_s: float = Field(ge=0.01, le=1e12)


class TraceAvailabilityConfig(_Frozen):
    """Online exactly within the intervals of a CSV or Parquet table with the columns
    ``device_id, online_from_s, online_until_s`` (devices/traces.py); offline elsewhere."""

    kind: Literal["trace"]
    path: str = Field(min_length=1)


AvailabilityConfig = Annotated[
    AlwaysOnConfig | MarkovConfig | TraceAvailabilityConfig, Field(discriminator="kind")
]


class NaturalRoundTime(_Frozen):
    """Job times from the device's CPU and the channel (the default)."""

    kind: Literal["natural"]


class NormalProfile(_Frozen):
    mean_s: float = Field(gt=0, le=1e9)
    std_s: float = Field(ge=0, le=1e9)


def _raspberry_pi_profiles() -> list[NormalProfile]:
    from devices.round_time import RASPBERRY_PI_PROFILES_S

    return [NormalProfile(mean_s=m, std_s=s) for m, s in RASPBERRY_PI_PROFILES_S]


class ProfileRoundTime(_Frozen):
    """Each device gets one of ``profiles`` (default: the nine Raspberry Pi profiles of the
    OrthoFL reference code) and every job takes a fresh N(mean_s, std_s) draw, <= 0 replaced
    by the mean. The draw is the whole job (download + compute + upload); it is held as the
    compute phase, so downlink and uplink take no time of their own (bits are still counted)."""

    kind: Literal["normal_profiles"]
    profiles: list[NormalProfile] = Field(default_factory=_raspberry_pi_profiles, min_length=1)


RoundTimeConfig = Annotated[NaturalRoundTime | ProfileRoundTime, Field(discriminator="kind")]


class TableSource(_Frozen):
    """Device parameters from a CSV or Parquet table, one row per device (devices/traces.py):
    any of cpu_hz, cycles_per_sample, tx_power_dbm, x_m, y_m, kappa; missing columns are drawn
    from this section's distributions as usual."""

    kind: Literal["table"]
    path: str = Field(min_length=1)


class FlashSource(_Frozen):
    """FLASH's measured phones and networks (devices/flash.py): CPU from the phone's benchmark
    score (``reference_cpu_hz`` at the table's median score), uplink from a user's measured
    throughput; the other columns are drawn as usual."""

    kind: Literal["flash"]
    reference_cpu_hz: PositiveFloat = 1e9


DeviceSource = Annotated[TableSource | FlashSource, Field(discriminator="kind")]


class ConstantMobility(_Frozen):
    """Devices never move (the default)."""

    kind: Literal["constant"]


class ConstantVelocityMobility(_Frozen):
    """Each device moves at a speed drawn from ``speed_mps`` [low, high] m/s, heading
    ``heading_deg`` (counterclockwise from +x; drawn uniformly when not given), reflected at
    the placement area's edge."""

    kind: Literal["constant_velocity"]
    speed_mps: tuple[SPEED_MPS, SPEED_MPS] = (0.5, 2.0)
    heading_deg: float | None = None
    update_s: Annotated[float, Field(ge=1e-3, le=1e9)] | None = Field(
        default=None, description="position update step (default: the fading coherence time)"
    )


class RandomWaypointMobility(_Frozen):
    """Random waypoint inside the placement area, a speed from ``speed_mps`` per leg."""

    kind: Literal["random_waypoint"]
    speed_mps: tuple[SPEED_MPS, SPEED_MPS] = (0.5, 2.0)
    update_s: Annotated[float, Field(ge=1e-3, le=1e9)] | None = Field(
        default=None, description="position update step (default: the fading coherence time)"
    )


MobilityConfig = Annotated[
    ConstantMobility | ConstantVelocityMobility | RandomWaypointMobility,
    Field(discriminator="kind"),
]


# What each per-device quantity may be, (low, high] (tx power: [low, high]) with its unit: a
# value outside is a typo or a unit mistake, and would only fail deep inside a run.
QUANTITY_BOUNDS: dict[str, tuple[float, float, str]] = {
    "cpu_hz": (0.0, 1e13, "Hz"),
    "cycles_per_sample": (0.0, 1e13, "cycles"),
    "cycles_per_flop": (0.0, 1e6, "cycles"),
    "kappa": (0.0, 1e-15, "J/(cycle Hz^2)"),
    "tx_power_dbm": (-100.0, 100.0, "dBm"),
}
MAX_DEVICES = 10_000_000


def _support(value) -> list[float]:
    """The values a quantity can take that matter for bounds (a lognormal's median)."""
    if isinstance(value, Uniform):
        return [value.low, value.high]
    if isinstance(value, LogNormal):
        return [value.median]
    if isinstance(value, Choice):
        return list(value.values)
    return [float(value)]


class DevicesConfig(_Frozen):
    count: int = Field(gt=0, le=MAX_DEVICES)
    source: DeviceSource | None = Field(
        default=None, description="measured device parameters that replace the draws"
    )
    cpu_hz: Quantity = Field(default=1e9, description="CPU frequency, Hz")
    cycles_per_sample: Quantity | Literal["auto"] = Field(
        default=2e4,
        description="CPU cycles per training sample; auto: the model's forward + backward "
        "FLOPs per sample (counted) x cycles_per_flop",
    )
    cycles_per_flop: Quantity = Field(
        default=1.0, description="with cycles_per_sample: auto, CPU cycles per FLOP"
    )
    tx_power_dbm: Quantity = 23.0
    kappa: Quantity = 1e-28
    placement: Placement = DiscPlacement(kind="disc", radius_m=500.0)
    availability: AvailabilityConfig = AlwaysOnConfig(kind="always_on")
    round_time: RoundTimeConfig = NaturalRoundTime(kind="natural")
    mobility: MobilityConfig = ConstantMobility(kind="constant")

    @field_validator(*QUANTITY_BOUNDS)
    @classmethod
    def _physical(cls, value, info):
        if value == "auto":
            return value
        low, high, unit = QUANTITY_BOUNDS[info.field_name]
        inclusive = unit == "dBm"
        for v in _support(value):
            if not (low <= v if inclusive else low < v) or v > high:
                side = "[" if inclusive else "("
                raise ValueError(f"values in {side}{low:g}, {high:g}] {unit}, not {v:g}")
        return value
