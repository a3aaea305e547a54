"""Issue 3: joint pruning-ratio / bandwidth allocation time per solve, cvxpy vs KKT closed form.

    python benchmarks/bench_joint_allocation.py

Instances: ``pruning_active_instance`` (T_max = 0.7 x the median unpruned round, so most
devices prune: the regime of scenarios/pruning_kkt.yaml), budget 20 MHz per 30 devices. cvxpy
times are re-solves of a problem already compiled for that cohort size (DPP), medians of
repeats; the first solve (compilation) is reported apart. Each row says how far cvxpy's answer
is from the closed form (objective relative, largest rho difference, largest bandwidth
difference over the budget). The last rows use the near-degenerate family
(``physical_instance``: T_max set by the slowest device, so nearly all devices sit at a bound),
where Clarabel is inaccurate and the allocator falls back to the closed form.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from timing import median_s  # noqa: E402

from channels.joint_instances import physical_instance, pruning_active_instance
from channels.joint_pruning import (  # noqa: E402
    JointPruningProblem,
    kkt_certificate,
    solve_kkt,
)

warnings.filterwarnings("ignore")  # cvxpy's "solution may be inaccurate" is reported below


def _row(label: str, inst, repeats: int) -> None:
    n = inst.n
    kkt = solve_kkt(inst)
    kkt_ms = 1e3 * median_s(lambda: solve_kkt(inst), 50)
    residual = max(kkt_certificate(inst, kkt.rho, kkt.bandwidth_hz, kkt.lam).values())
    problem = JointPruningProblem(n)
    t = time.perf_counter()
    sol = problem.solve(inst)  # compile once (DPP), as the simulator does
    first_s = time.perf_counter() - t
    cvx_ms = 1e3 * median_s(lambda: problem.solve(inst), repeats)
    if sol.status.startswith("optimal"):
        obj = abs(inst.weights @ sol.rho - inst.weights @ kkt.rho) / (inst.weights @ kkt.rho)
        errs = (
            f"{obj:9.0e} {np.abs(sol.rho - kkt.rho).max():8.0e} "
            f"{np.abs(sol.bandwidth_hz - kkt.bandwidth_hz).max() / inst.budget_hz:8.0e}"
        )
    else:
        errs = f"{'-':>9} {'-':>8} {'-':>8}"
    print(
        f"{label:<11} {n:7d} {kkt_ms:8.2f} {cvx_ms:9.1f} {first_s:8.1f} {cvx_ms / kkt_ms:8.0f}x "
        f"{sol.status[:18]:>18} {errs} {residual:9.0e} {int((kkt.rho > 1e-9).sum()):7d}"
    )


def main() -> None:
    header = (
        f"{'instances':<11} {'devices':>7} {'KKT ms':>8} {'cvxpy ms':>9} {'first s':>8} "
        f"{'speed-up':>9} {'cvxpy status':>18} {'obj err':>9} {'rho err':>8} {'b err/B':>8} "
        f"{'KKT res':>9} {'pruned':>7}"
    )
    print(header)
    print("-" * len(header))
    for n in (10, 100, 1000, 10_000):
        inst = pruning_active_instance(
            n, seed=3, deadline_ratio=0.7, budget_hz=20e6 * max(1, n / 30)
        )
        _row("pruning", inst, 10 if n <= 100 else 5 if n <= 1000 else 2)
    for n in (100, 1000):
        inst = physical_instance(n, seed=3, deadline_ratio=0.7, budget_hz=20e6 * max(1, n / 30))
        _row("degenerate", inst, 5)


if __name__ == "__main__":
    main()
