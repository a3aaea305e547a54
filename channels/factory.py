"""Build channel objects from the ``channel`` scenario section."""

from __future__ import annotations

from channels.allocation import BandwidthAllocator, EqualShare, ProportionalToDemand
from channels.config import (
    ChannelConfig,
    D2DConfig,
    EqualShareConfig,
    FreeSpaceConfig,
    JointPruningConfig,
    LogDistanceConfig,
    RayleighConfig,
    RicianConfig,
)
from channels.counter_rng import stream_id
from channels.fading import FadingModel, NoFading, RayleighFading, RicianFading
from channels.joint_pruning import JointPruningAllocator
from channels.link import Link
from channels.minmax_latency import MinMaxLatency
from channels.pathloss import FreeSpace, LogDistance, Macro3GPP, PathLoss
from channels.shadowing import Shadowing


def make_pathloss(cfg: ChannelConfig | D2DConfig) -> PathLoss:
    p = cfg.pathloss
    if isinstance(p, FreeSpaceConfig):
        return FreeSpace(carrier_hz=p.carrier_hz)
    if isinstance(p, LogDistanceConfig):
        return LogDistance(p.exponent, p.ref_distance_m, p.ref_loss_db)
    return Macro3GPP()


def make_fading(cfg: ChannelConfig | D2DConfig, seed: int, direction: str) -> FadingModel:
    f = cfg.fading
    stream = stream_id(f"fading/{direction}")
    if isinstance(f, RayleighConfig):
        return RayleighFading(seed, stream, f.coherence_s)
    if isinstance(f, RicianConfig):
        return RicianFading(seed, stream, f.coherence_s, f.k_factor)
    return NoFading()


def make_link(cfg: ChannelConfig, seed: int, direction: str) -> Link:
    """One link direction ("uplink" or "downlink"); both share path loss and shadowing."""
    return Link(
        pathloss=make_pathloss(cfg),
        shadowing=Shadowing(cfg.pathloss.shadowing_std_db, seed),
        fading=make_fading(cfg, seed, direction),
        noise_psd_dbm_per_hz=cfg.noise_psd_dbm_per_hz,
    )


def make_d2d_link(cfg: ChannelConfig, seed: int) -> Link:
    """Device-to-device links of ``cfg.d2d``; their ``link_ids`` are pair ids
    (:func:`channels.d2d.pair_ids`): shadowing per pair (reciprocal), fading per (pair, block)
    from a stream of its own, thermal noise as on the server links."""
    assert cfg.d2d is not None
    return Link(
        pathloss=make_pathloss(cfg.d2d),
        shadowing=Shadowing(cfg.d2d.pathloss.shadowing_std_db, seed, stream_id("shadowing/d2d")),
        fading=make_fading(cfg.d2d, seed, "d2d"),
        noise_psd_dbm_per_hz=cfg.noise_psd_dbm_per_hz,
    )


def make_allocator(cfg: ChannelConfig) -> BandwidthAllocator | JointPruningAllocator:
    a = cfg.allocator
    if isinstance(a, EqualShareConfig):
        return EqualShare()
    if a.kind == "proportional":
        return ProportionalToDemand()
    if isinstance(a, JointPruningConfig):
        return JointPruningAllocator(a.t_max_s, a.rho_max, a.solver, a.on_infeasible)
    return MinMaxLatency(solver=a.solver)
