"""Issue 3: joint pruning-ratio / bandwidth allocation time per solve, cvxpy vs KKT closed form.

    python benchmarks/bench_joint_allocation.py

Physical instances (channels.joint_pruning.physical_instance) with pruning active; cvxpy times
are re-solves of a problem already compiled for that cohort size (DPP), medians of repeats.
Each row also says whether cvxpy converged and how far its objective is from the closed form.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_s  # noqa: E402

from channels.joint_pruning import (  # noqa: E402
    JointPruningProblem,
    kkt_certificate,
    physical_instance,
    solve_kkt,
)

warnings.filterwarnings("ignore")  # cvxpy's "solution may be inaccurate" is reported below


def main() -> None:
    header = (
        f"{'devices':>8} {'KKT ms':>9} {'cvxpy ms':>10} {'speed-up':>9} {'cvxpy status':>22} "
        f"{'obj rel err':>12} {'KKT residual':>13}"
    )
    print(header)
    print("-" * len(header))
    for n in (10, 100, 1000, 10_000):
        inst = physical_instance(n, seed=3, deadline_ratio=0.7, budget_hz=20e6 * max(1, n / 30))
        kkt = solve_kkt(inst)
        kkt_ms = 1e3 * median_s(lambda inst=inst: solve_kkt(inst), 50)
        residual = max(kkt_certificate(inst, kkt.rho, kkt.bandwidth_hz, kkt.lam).values())
        if n <= 1000:
            problem = JointPruningProblem(n)
            sol = problem.solve(inst)  # compile once (DPP), as the simulator does
            cvx_ms = 1e3 * median_s(lambda p=problem, i=inst: p.solve(i), 5 if n >= 1000 else 10)
            err = abs(inst.weights @ sol.rho - inst.weights @ kkt.rho) / (inst.weights @ kkt.rho)
            row = (
                f"{cvx_ms:10.1f} {cvx_ms / kkt_ms:8.0f}x {sol.status[:22]:>22} "
                f"{err if sol.status.startswith('optimal') else float('nan'):12.1e}"
            )
        else:
            row = f"{'not run':>10} {'-':>9} {'(Clarabel fails >~500)':>22} {'-':>12}"
        print(f"{n:8d} {kkt_ms:9.2f} {row} {residual:13.1e}  [{kkt.status}]")


if __name__ == "__main__":
    main()
