"""Reproducible P1 instances of the joint pruning-ratio / bandwidth problem, for tests and
benchmarks (not used by a run): the standard wireless-FL setup of
papers/pruning_personalization_kkt.md, section 9, in two regimes of the deadline ``T_max``."""

from __future__ import annotations

import numpy as np

from channels.joint_pruning import JointInstance, bandwidth_for_kept_fraction, latency_s


def draw_standard_devices(m: int, rng: np.random.Generator):
    """(fixed_s, prunable_s, payload_bits, gamma_hz) [m] of the standard setup (notes, 9)."""
    d_km = np.sqrt(rng.uniform(0.05**2, 0.5**2, m))
    loss_db = 128.1 + 37.6 * np.log10(d_km)
    gamma = 0.2 * 10 ** (-loss_db / 10) / 10 ** ((-174 - 30) / 10) * rng.exponential(1.0, m)
    cpu = rng.uniform(0.5e9, 2e9, m)
    cycles_global = 16 * 5 * rng.uniform(1e4, 3e4, m) * 40
    fixed = cycles_global / 9 / cpu + 0.01  # personalised steps + downlink
    prunable = cycles_global / cpu
    return fixed, prunable, np.full(m, 5e5), gamma


def physical_instance(
    n: int, seed: int, deadline_ratio: float, budget_hz: float, rho_max: float = 0.9
) -> JointInstance:
    """A reproducible P1 instance from the standard wireless-FL setup (notes, section 9):
    macro path loss at 50-500 m with Rayleigh fading, 23 dBm, -174 dBm/Hz, CPUs 0.5-2 GHz,
    a 0.5 Mbit global part; ``T_max`` is ``deadline_ratio`` x the *slowest* device's unpruned
    equal-share round. With many devices that leaves most of them slack (few prune).
    Used by the tests and the benchmark."""
    fixed, prunable, payload, gamma = draw_standard_devices(n, np.random.default_rng(seed))
    probe = JointInstance(fixed, prunable, payload, gamma, np.ones(n), budget_hz, 1.0, rho_max)
    unpruned = latency_s(probe, np.zeros(n), np.full(n, budget_hz / n)).max()
    weights = np.ones(n) / n
    return JointInstance(
        fixed, prunable, payload, gamma, weights, budget_hz, deadline_ratio * unpruned, rho_max
    )


def pruning_active_instance(
    n: int, seed: int, deadline_ratio: float, budget_hz: float, rho_max: float = 0.9
) -> JointInstance:
    """Like :func:`physical_instance`, but ``T_max`` is ``deadline_ratio`` x the *median*
    unpruned equal-share round, so a large part of the cohort must prune (the regime of
    ``scenarios/pruning_kkt.yaml``). A device that could not meet ``T_max`` even alone with
    the whole band at ``rho_max`` (a deep fade) is replaced by the next draw, as the
    allocator's drop mode would leave it out. Raises ValueError when 2n + 10 draws do not give
    n such devices."""
    m = 2 * n + 10
    fixed, prunable, payload, gamma = draw_standard_devices(m, np.random.default_rng(seed))
    probe = JointInstance(fixed, prunable, payload, gamma, np.ones(m), budget_hz, 1.0, rho_max)
    t_max = deadline_ratio * float(np.median(latency_s(probe, np.zeros(m), budget_hz / n)[:n]))
    probe = JointInstance(fixed, prunable, payload, gamma, np.ones(m), budget_hz, t_max, rho_max)
    reachable = np.isfinite(bandwidth_for_kept_fraction(probe, 1.0 - rho_max))
    reachable &= (probe.slack_s > 0) & (
        latency_s(probe, np.full(m, rho_max), np.full(m, budget_hz)) <= t_max
    )
    keep = np.flatnonzero(reachable)[:n]
    if keep.size < n:
        raise ValueError(f"only {keep.size} of {m} drawn devices can meet T_max = {t_max:.3g} s")
    return JointInstance(
        fixed[keep],
        prunable[keep],
        payload[keep],
        gamma[keep],
        np.ones(n) / n,
        budget_hz,
        t_max,
        rho_max,
    )
