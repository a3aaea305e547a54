"""Joint pruning-ratio / bandwidth allocation (P1): KKT closed form, its certificate, cvxpy.

Instances are physical: macro path loss at 50-500 m with Rayleigh fading, 23 dBm, -174 dBm/Hz,
CPUs 0.5-2 GHz; T_max is a fraction of the unpruned equal-share round latency.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from channels.joint_pruning import (
    JointInstance,
    JointPruningProblem,
    kkt_certificate,
    latency_s,
    physical_instance,
    rho_for_bandwidth,
    solve_kkt,
)

instances = st.builds(
    physical_instance,
    n=st.integers(2, 40),
    seed=st.integers(0, 10_000),
    deadline_ratio=st.floats(0.3, 1.2),
    budget_hz=st.floats(1e6, 20e6),
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


@settings(max_examples=25)
@given(
    inst=st.builds(
        physical_instance,
        n=st.integers(2, 30),
        seed=st.integers(0, 10_000),
        deadline_ratio=st.floats(0.5, 1.0),
        budget_hz=st.floats(5e6, 20e6),
    )
)
def test_cvxpy_agrees_with_the_closed_form(inst):
    kkt = solve_kkt(inst)
    assume(kkt.status == "optimal")  # pruning active: the solution is unique
    cvx = JointPruningProblem(inst.n).solve(inst)
    assert cvx.status in ("optimal", "optimal_inaccurate"), cvx.status
    obj_kkt, obj_cvx = inst.weights @ kkt.rho, inst.weights @ cvx.rho
    # Issue 3's tolerances (objective 1e-5 relative; rho and b within 1e-4 of their scale).
    # Met up to ~30 devices (tested here); at 100 and 500 devices the measured objective error
    # is ~1e-5 and ~2e-4 (benchmarks/bench_joint_allocation.py), so larger cohorts are not
    # asserted at this tolerance.
    assert obj_cvx == pytest.approx(obj_kkt, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(cvx.rho, kkt.rho, atol=1e-4)
    np.testing.assert_allclose(cvx.bandwidth_hz, kkt.bandwidth_hz, atol=1e-4 * inst.budget_hz)
    # the closed form is at least as good as what the solver found
    assert obj_kkt <= obj_cvx + 1e-9


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
