"""Scenario section ``channel``: path loss, fading, noise, bandwidth budgets and the allocator."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def SHADOWING_DB(default: float):  # noqa: N802 (a field factory, named like a constant)
    """Log-normal shadowing standard deviation, dB: 0 (none) to 30."""
    return Field(default=default, ge=0, le=30)


def BANDWIDTH_HZ(default):  # noqa: N802
    """A band, Hz: 1 Hz to 1 THz (below, rates underflow; above, no radio)."""
    return Field(default=default, ge=1.0, le=1e12)


def COHERENCE_S():  # noqa: N802
    """A fading coherence time, s: blocks under a microsecond would only multiply events."""
    return Field(default=1.0, ge=1e-6, le=1e9)


class _Frozen(BaseModel):
    # no NaN or infinity anywhere: a non-finite power or bound only fails deep in a run
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FreeSpaceConfig(_Frozen):
    kind: Literal["free_space"]
    carrier_hz: float = Field(default=2.4e9, gt=0, le=1e12)
    shadowing_std_db: float = SHADOWING_DB(0.0)


class LogDistanceConfig(_Frozen):
    kind: Literal["log_distance"]
    exponent: float = Field(default=3.0, gt=0, le=10)
    ref_distance_m: float = Field(default=1.0, gt=0, le=1e6)
    ref_loss_db: float = Field(default=40.0, ge=-100, le=300)
    shadowing_std_db: float = SHADOWING_DB(8.0)


class Macro3GPPConfig(_Frozen):
    """``128.1 + 37.6 log10(d_km)`` dB with log-normal shadowing (8 dB in TR 36.814)."""

    kind: Literal["macro_3gpp"]
    shadowing_std_db: float = SHADOWING_DB(8.0)


PathLossConfig = Annotated[
    FreeSpaceConfig | LogDistanceConfig | Macro3GPPConfig, Field(discriminator="kind")
]


class NoFadingConfig(_Frozen):
    kind: Literal["none"]


class RayleighConfig(_Frozen):
    kind: Literal["rayleigh"]
    coherence_s: float = COHERENCE_S()


class RicianConfig(_Frozen):
    kind: Literal["rician"]
    k_factor: float = Field(default=3.0, ge=0, le=1e6)
    coherence_s: float = COHERENCE_S()


FadingConfig = Annotated[
    NoFadingConfig | RayleighConfig | RicianConfig, Field(discriminator="kind")
]


class EqualShareConfig(_Frozen):
    kind: Literal["equal_share"]


class ProportionalConfig(_Frozen):
    kind: Literal["proportional"]


class MinMaxLatencyConfig(_Frozen):
    """Minimise the slowest device's round latency: cvxpy, or the exact Lambert-W bisection."""

    kind: Literal["minmax_latency"]
    solver: Literal["cvxpy", "bisection"] = "cvxpy"


class JointPruningConfig(_Frozen):
    """Joint pruning-ratio / bandwidth allocation (P1 of papers/pruning_personalization_kkt.md).

    Needs a strategy with ``rho: adaptive``. ``on_infeasible``: ``relax`` raises the round's
    deadline to the smallest feasible one; ``drop`` leaves the offending devices out of the
    round (they fail with reason "infeasible"). Either way the run's results say so.
    """

    kind: Literal["joint_pruning"]
    t_max_s: float = Field(gt=0, le=1e12)
    rho_max: float = Field(default=0.9, ge=0, lt=1)
    solver: Literal["kkt", "cvxpy"] = "kkt"
    on_infeasible: Literal["relax", "drop"] = "relax"


AllocatorConfig = Annotated[
    EqualShareConfig | ProportionalConfig | MinMaxLatencyConfig | JointPruningConfig,
    Field(discriminator="kind"),
]


class DownlinkConfig(_Frozen):
    """How the server sends to the cohort.

    ``unicast``: one FDMA sub-band per receiver, the downlink band and the server's total power
    split equally among them (so the server radiates ``server_tx_power_dbm`` in total).
    ``broadcast``: one transmission over the whole band at full power; everyone receives at the
    rate of the weakest receiver of the leg, ``B log2(1 + P g_min / (N0 B))``.
    """

    mode: Literal["unicast", "broadcast"] = "unicast"


class DedicatedBandConfig(_Frozen):
    """Device-to-device links on a band of their own, shared equally (FDMA) by the
    transmitters of a leg."""

    kind: Literal["dedicated"]
    bandwidth_hz: float = BANDWIDTH_HZ(...)


class UplinkShareConfig(_Frozen):
    """Device-to-device links on ``fraction`` of the uplink band; uplink legs then allocate
    the remaining ``1 - fraction``."""

    kind: Literal["uplink_share"]
    fraction: float = Field(gt=0, lt=1)


D2DBandConfig = Annotated[DedicatedBandConfig | UplinkShareConfig, Field(discriminator="kind")]


class D2DConfig(_Frozen):
    """Device-to-device links: the same physics as the server links, between device
    positions; shadowing per pair and fading per (pair, coherence block)."""

    pathloss: PathLossConfig = LogDistanceConfig(kind="log_distance")
    fading: FadingConfig = RayleighConfig(kind="rayleigh")
    band: D2DBandConfig = DedicatedBandConfig(kind="dedicated", bandwidth_hz=1e6)


class DigitalAggregationConfig(_Frozen):
    """Every device's update is sent digitally on its own share of the uplink band (FDMA)."""

    kind: Literal["digital"]


class OverTheAirConfig(_Frozen):
    """Over-the-air computation (AirComp): every participant transmits at once over the whole
    uplink band and the server receives the sum (channels/aircomp.py).

    Truncated channel inversion: a device transmits when its full-power receive SNR over the
    band is at least ``snr_threshold_db``; the others are left out of the round (reason
    ``below_threshold``). ``misalignment``: each device inverts a channel estimate with relative
    error ``estimation_error`` (standard deviation). ``entries_per_symbol``: model entries per
    complex channel use (2: real and imaginary parts)."""

    kind: Literal["over_the_air"]
    power_control: Literal["truncated_inversion"] = "truncated_inversion"
    snr_threshold_db: float = Field(default=0.0, ge=-100, le=100)
    misalignment: bool = False
    estimation_error: float = Field(default=0.1, ge=0, le=10)
    entries_per_symbol: Literal[1, 2] = 2


AggregationConfig = Annotated[
    DigitalAggregationConfig | OverTheAirConfig, Field(discriminator="kind")
]


class ChannelConfig(_Frozen):
    pathloss: PathLossConfig = Macro3GPPConfig(kind="macro_3gpp")
    fading: FadingConfig = RayleighConfig(kind="rayleigh")
    noise_psd_dbm_per_hz: float = Field(default=-174.0, ge=-250, le=0)
    uplink_bandwidth_hz: float = BANDWIDTH_HZ(1e6)
    downlink_bandwidth_hz: float = BANDWIDTH_HZ(10e6)
    server_tx_power_dbm: float = Field(default=43.0, ge=-100, le=100)
    allocator: AllocatorConfig = MinMaxLatencyConfig(kind="minmax_latency")
    downlink: DownlinkConfig = DownlinkConfig()
    d2d: D2DConfig | None = Field(
        default=None, description="device-to-device links (strategies that relay between devices)"
    )
    aggregation: AggregationConfig = DigitalAggregationConfig(kind="digital")

    @property
    def uplink_data_bandwidth_hz(self) -> float:
        """The uplink band uplink legs share, Hz: all of it, less a D2D ``uplink_share``."""
        band = self.d2d.band if self.d2d is not None else None
        share = band.fraction if isinstance(band, UplinkShareConfig) else 0.0
        return self.uplink_bandwidth_hz * (1.0 - share)

    @property
    def d2d_bandwidth_hz(self) -> float:
        """The band a D2D leg's senders share, Hz (nan without ``d2d``)."""
        if self.d2d is None:
            return float("nan")
        band = self.d2d.band
        if isinstance(band, DedicatedBandConfig):
            return band.bandwidth_hz
        return self.uplink_bandwidth_hz * band.fraction


class CellsConfig(_Frozen):
    """Several base stations, each an edge server with its own band (channels/cells.py).

    ``layout: hex`` places ``count`` sites on a hexagonal grid of inter-site distance
    ``isd_m`` (centre first, then ring by ring); ``explicit`` takes ``positions_m``. A device
    is served by the cell it receives strongest. ``reuse: 1``: every cell uses the whole
    uplink and downlink bands, and co-channel cells interfere (a fluid average, see the
    module); ``reuse: 3``: each cell gets a third of each band and no interference. The
    backhaul from each edge to the cloud runs at ``backhaul_bps`` after ``backhaul_latency_s``.
    ``handover``: a device that changes cell during a round fails it (``fail``, reason
    ``handover``) or finishes it with its old cell (``finish_old``).
    """

    count: int = Field(default=1, gt=0, le=1000)
    layout: Literal["hex", "explicit"] = "hex"
    isd_m: float = Field(default=500.0, gt=0, le=1e6)
    positions_m: list[tuple[float, float]] | None = Field(default=None, max_length=1000)
    backhaul_bps: float = Field(default=1e8, ge=1.0, le=1e13)
    backhaul_latency_s: float = Field(default=0.0, ge=0, le=1e6)
    reuse: Literal[1, 3] = 1
    handover: Literal["fail", "finish_old"] = "fail"

    @model_validator(mode="after")
    def _positions_match(self):
        if self.layout == "explicit":
            if self.positions_m is None or len(self.positions_m) != self.count:
                got = "none" if self.positions_m is None else f"{len(self.positions_m)}"
                raise ValueError(f"layout explicit needs positions_m with count ({self.count}) "
                                 f"[x, y] pairs, got {got}")  # fmt: skip
            for x, y in self.positions_m:
                if abs(x) > 1e7 or abs(y) > 1e7:
                    raise ValueError("positions_m must lie within 10,000 km of the origin")
        elif self.positions_m is not None:
            raise ValueError("positions_m is only read with layout: explicit")
        return self
