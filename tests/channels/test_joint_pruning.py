"""Joint pruning-ratio / bandwidth allocation (P1): KKT closed form, its certificate, cvxpy.

Instances are physical: macro path loss at 50-500 m with Rayleigh fading, 23 dBm, -174 dBm/Hz,
CPUs 0.5-2 GHz; T_max is a fraction of the unpruned equal-share round latency.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from channels.joint_instances import physical_instance, pruning_active_instance
from channels.joint_pruning import (
    CVXPY_BOUND_TOL,
    CVXPY_MAX_RESIDUAL,
    JointInstance,
    JointPruningAllocator,
    JointPruningProblem,
    kkt_certificate,
    latency_s,
    rho_for_bandwidth,
    solve_kkt,
)


def _pruning_active_or_none(n, seed, ratio, budget_hz):
    try:
        return pruning_active_instance(n, seed, ratio, budget_hz)
    except ValueError:
        return None  # too few devices can meet this deadline at all


# 2 to 500 devices, both families: T_max from the slowest device (few prune, many at bounds)
# and from the median one (most prune). Budgets grow with the cohort (20 MHz per 30 devices
# at most), so large cohorts are not simply infeasible.
_sizes = st.one_of(st.integers(2, 40), st.sampled_from([100, 300, 500]))
instances = st.one_of(
    st.builds(
        lambda n, seed, ratio, per30: physical_instance(n, seed, ratio, per30 * max(1, n / 30)),
        n=_sizes,
        seed=st.integers(0, 10_000),
        ratio=st.floats(0.3, 1.2),
        per30=st.floats(1e6, 20e6),
    ),
    st.builds(
        lambda n, seed, ratio, per30: _pruning_active_or_none(
            n, seed, ratio, per30 * max(1, n / 30)
        ),
        n=_sizes,
        seed=st.integers(0, 10_000),
        ratio=st.floats(0.3, 1.2),
        per30=st.floats(1e6, 20e6),
    ).filter(lambda inst: inst is not None),
)


def test_kkt_on_a_hand_checkable_instance():
    # Prepare: two identical devices, so the optimum splits the band equally and both are
    # pruned to exactly meet T_max: P + x A + x S / r(B/2) = T  =>  x = (T - P) / (A + S / r).
    gamma, budget = 1e9, 2e6
    inst = JointInstance(
        np.full(2, 0.1),
        np.full(2, 1.0),
        np.full(2, 1e6),
        np.full(2, gamma),
        np.ones(2),
        budget,
        0.6,
        0.9,
    )
    # Execute
    sol = solve_kkt(inst)
    # Assert
    rate = 1e6 * np.log2(1 + gamma / 1e6)
    x = (0.6 - 0.1) / (1.0 + 1e6 / rate)
    np.testing.assert_allclose(sol.bandwidth_hz, [1e6, 1e6], rtol=1e-9)
    np.testing.assert_allclose(sol.rho, 1 - x, rtol=1e-9)
    np.testing.assert_allclose(latency_s(inst, sol.rho, sol.bandwidth_hz), 0.6, rtol=1e-9)


def test_fixed_bits_by_hand_and_against_a_brute_force_split():
    """A fixed payload S0 (a mask bitmap) sent whatever the pruning. Two identical devices: by
    hand x = (T - P - S0 / r) / (A + S / r). Two different ones: the closed form's objective
    equals the best equal-or-unequal split on a fine grid of the band (an independent check
    of g' with S0, which the KKT certificate shares with the solver)."""
    gamma, budget, s0 = 1e9, 2e6, 2e5
    same = JointInstance(
        np.full(2, 0.1), np.full(2, 1.0), np.full(2, 1e6), np.full(2, gamma), np.ones(2),
        budget, 0.6, 0.9, np.full(2, s0),
    )  # fmt: skip
    sol = solve_kkt(same)
    rate = 1e6 * np.log2(1 + gamma / 1e6)
    x = (0.6 - 0.1 - s0 / rate) / (1.0 + 1e6 / rate)
    np.testing.assert_allclose(sol.rho, 1 - x, rtol=1e-9)
    np.testing.assert_allclose(latency_s(same, sol.rho, sol.bandwidth_hz), 0.6, rtol=1e-9)
    mixed = JointInstance(
        np.array([0.1, 0.05]), np.array([1.0, 0.4]), np.array([1e6, 1e6]),
        np.array([1e9, 3e7]), np.array([1.0, 2.0]), budget, 0.6, 0.9, np.array([2e5, 6e5]),
    )  # fmt: skip
    sol = solve_kkt(mixed)
    assert sol.status == "optimal"
    best = -np.inf
    for share in np.linspace(1e-4, 1 - 1e-4, 20_001):
        b = np.array([share, 1 - share]) * budget
        rho = rho_for_bandwidth(mixed, b)
        if np.all(latency_s(mixed, rho, b) <= 0.6 * (1 + 1e-12)):
            best = max(best, -float(mixed.weights @ rho))
    assert -float(mixed.weights @ sol.rho) == pytest.approx(best, abs=1e-6)


@given(inst=instances)
def test_kkt_solution_is_feasible_and_certified(inst):
    sol = solve_kkt(inst)
    assume(sol.feasible)
    assert sol.bandwidth_hz.sum() <= inst.budget_hz * (1 + 1e-9)
    assert np.all(sol.bandwidth_hz >= 0)
    assert np.all((sol.rho >= 0) & (sol.rho <= inst.rho_max))
    assert np.all(latency_s(inst, sol.rho, sol.bandwidth_hz) <= inst.t_max_s * (1 + 1e-9))
    cert = kkt_certificate(inst, sol.rho, sol.bandwidth_hz, sol.lam)
    assert max(cert.values()) < 1e-6, cert


@given(inst=instances, more=st.floats(1.0, 3.0))
def test_more_bandwidth_or_time_never_means_more_pruning(inst, more):
    base = solve_kkt(inst)
    assume(base.feasible)
    wider = solve_kkt(JointInstance(**{**inst.__dict__, "budget_hz": inst.budget_hz * more}))
    later = solve_kkt(JointInstance(**{**inst.__dict__, "t_max_s": inst.t_max_s * more}))
    assert wider.rho.sum() <= base.rho.sum() + 1e-9
    assert later.rho.sum() <= base.rho.sum() + 1e-9


@given(inst=instances)
def test_optimised_bandwidth_prunes_no_more_than_equal_bandwidth(inst):
    sol = solve_kkt(inst)
    equal = np.full(inst.n, inst.budget_hz / inst.n)
    assume(
        sol.feasible
        and np.all(
            latency_s(inst, rho_for_bandwidth(inst, equal), equal) <= inst.t_max_s * (1 + 1e-9)
        )
    )
    assert sol.rho.sum() <= rho_for_bandwidth(inst, equal).sum() + 1e-9


_PROBLEMS: dict[int, JointPruningProblem] = {}  # compiled once per cohort size (as the allocator)


@settings(max_examples=30)
@given(
    inst=st.builds(
        lambda n, seed, ratio, per30: _pruning_active_or_none(
            n, seed, ratio, per30 * max(1.0, n / 30)
        ),
        n=st.sampled_from([2, 3, 5, 10, 30, 100, 300, 500]),
        seed=st.integers(0, 10_000),
        ratio=st.floats(0.4, 1.0),
        per30=st.floats(5e6, 20e6),
    )
)
def test_cvxpy_agrees_with_the_closed_form(inst):
    assume(inst is not None)
    kkt = solve_kkt(inst)
    assume(kkt.status == "optimal")  # pruning active: the solution is unique
    event(f"{inst.n} devices")  # --hypothesis-show-statistics lists the sizes tested
    problem = _PROBLEMS.setdefault(inst.n, JointPruningProblem(inst.n))
    cvx = problem.solve(inst)
    assert cvx.status in ("optimal", "optimal_inaccurate"), cvx.status
    cert = kkt_certificate(inst, cvx.rho, cvx.bandwidth_hz, cvx.lam, bound_tol=CVXPY_BOUND_TOL)
    if max(cert.values()) > CVXPY_MAX_RESIDUAL:
        # Rare (none in 1,650 random draws; hypothesis's boundary values find one: 300
        # devices, T_max = 0.4 x median, rho off by 1.3e-4). The allocator must catch it.
        event("cvxpy flagged by its certificate")
        _assert_allocator_uses_the_closed_form(inst, kkt)
        return
    obj_kkt, obj_cvx = inst.weights @ kkt.rho, inst.weights @ cvx.rho
    # Issue 3's tolerances: objective 1e-5 relative; rho and b within 1e-4 of their scale
    assert obj_cvx == pytest.approx(obj_kkt, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(cvx.rho, kkt.rho, atol=1e-4)
    np.testing.assert_allclose(cvx.bandwidth_hz, kkt.bandwidth_hz, atol=1e-4 * inst.budget_hz)
    # the closed form is at least as good as what the solver found (up to its tolerance)
    assert obj_kkt <= obj_cvx * (1 + 1e-7) + 1e-12


def _assert_allocator_uses_the_closed_form(inst, kkt):
    allocator = JointPruningAllocator(t_max_s=inst.t_max_s, solver="cvxpy")
    alloc = allocator.allocate_joint(
        fixed_s=inst.fixed_s,
        prunable_s=inst.prunable_s,
        payload_bits=inst.payload_bits,
        gamma_hz=inst.gamma_hz,
        weights=inst.weights,
        total_bandwidth_hz=inst.budget_hz,
    )
    assert "-> kkt" in alloc.status and alloc.status.endswith(kkt.status)
    np.testing.assert_allclose(alloc.bandwidth_hz, kkt.bandwidth_hz)
    assert max(alloc.certificate.values()) < 1e-6


def test_allocator_falls_back_when_cvxpy_is_inaccurate():
    # 300 devices, deadline set by the slowest one: almost everyone sits at a bound and one
    # device is pruned. Clarabel's answer there is far off (measured); the closed form is used.
    inst = physical_instance(300, 5, 0.9, 20e6 * 10)
    _assert_allocator_uses_the_closed_form(inst, solve_kkt(inst))


def test_infeasible_and_degenerate_inputs_are_reported():
    ok = physical_instance(5, 1, 0.8, 10e6)
    # T_max below a device's non-prunable compute
    late = JointInstance(**{**ok.__dict__, "fixed_s": ok.fixed_s.copy()})
    late.fixed_s[3] = ok.t_max_s * 2
    sol = solve_kkt(late)
    assert sol.status.startswith("infeasible") and sol.infeasible_devices == [3]
    # a device with zero channel gain
    dead = JointInstance(**{**ok.__dict__, "gamma_hz": ok.gamma_hz.copy()})
    dead.gamma_hz[1] = 0.0
    sol = solve_kkt(dead)
    assert sol.status.startswith("infeasible") and 1 in sol.infeasible_devices
    # zero bandwidth
    sol = solve_kkt(JointInstance(**{**ok.__dict__, "budget_hz": 0.0}))
    assert sol.status == f"infeasible: no bandwidth for devices {list(range(5))}"
    # too little bandwidth even at maximum pruning: the hungriest devices are named
    sol = solve_kkt(JointInstance(**{**ok.__dict__, "budget_hz": 1e3}))
    assert sol.status.startswith("infeasible: sum of b_min exceeds the budget")
    assert sol.infeasible_devices
