"""Mutation probe: plant hand-listed bugs one at a time and report which the tests kill.

A report, not a CI gate. Each mutant replaces one exact piece of source text in a scratch copy
of the working tree (the tree itself is never touched), runs the tests that cover that file
(``-x``, slow tests excluded) and counts the mutant as killed when they fail. The mutants are
the ones an independent probe found surviving (issue 18), plus others of the same kinds: a
counter off, a check skipped, a formula changed, a branch dropped.

    python benchmarks/mutation_probe.py [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ENGINE_TESTS = [
    "tests/simulator/test_timeline.py",
    "tests/simulator/test_protocols.py",
    "tests/simulator/test_golden.py",
    "tests/simulator/test_async_timeline.py",
    "tests/simulator/test_strategy_hooks.py",
]
ASYNC_TESTS = [
    "tests/simulator/test_async_timeline.py",
    "tests/simulator/test_async_features.py",
    "tests/simulator/test_strategy_hooks.py",
    "tests/simulator/test_async_runs.py",
]
TRAINING_TESTS = ["tests/fl"]
CHANNEL_TESTS = [
    "tests/channels",
    "tests/simulator/test_timeline.py",
    "tests/simulator/test_protocols.py",
]

P = "simulator/engine/processes.py"
A = "simulator/engine/async_processes.py"
T = "fl/training.py"

# (file, what the bug is, text to find, its replacement, tests that should catch it)
MUTANTS = [
    (
        P,
        "interrupted leg counts no time",
        "        spent[j] = env.now - leg_start\n        reason",
        "        spent[j] = 0.0\n        reason",
        ENGINE_TESTS,
    ),
    (
        P,
        "bits of completed legs not counted",
        "step.bits_counter[dev] += int(table.bits[j][i])",
        "step.bits_counter[dev] += 0",
        ENGINE_TESTS,
    ),
    (
        P,
        "deadline interrupts under another name",
        'proc.interrupt("deadline")',
        'proc.interrupt("late")',
        ENGINE_TESTS,
    ),
    (
        P,
        "a failure counted twice",
        "stats.failures[dev] += 1",
        "stats.failures[dev] += 2",
        ENGINE_TESTS,
    ),
    (
        P,
        "critical-path ties go to the lowest id",
        "[np.argmax(done.device_id[delivered][tied])]",
        "[np.argmin(done.device_id[delivered][tied])]",
        ENGINE_TESTS,
    ),
    (
        P,
        "d2d time not in transmit energy",
        '(kinds == "uplink") | (kinds == "d2d")',
        'kinds == "uplink"',
        ENGINE_TESTS,
    ),
    (
        P,
        "wait is the whole latency",
        "max(latency_s - float(crit.sum()), 0.0) if crit.size",
        "latency_s if crit.size",
        ENGINE_TESTS,
    ),
    (
        P,
        "delivered updates not counted",
        "stats.updates[dev] += 1",
        "stats.updates[dev] += 0",
        ENGINE_TESTS,
    ),
    (
        P,
        "barrier event dropped",
        'rec.event(\n                    env.now, "barrier"',
        'rec.event(\n                    env.now, "barrier_"',
        ENGINE_TESTS,
    ),
    (
        A,
        "failed job keeps its device busy",
        "busy[[a.job.device_id for a in batch]] = False",
        "busy[[a.job.device_id for a in batch if a.delivered]] = False",
        ASYNC_TESTS,
    ),
    (
        A,
        "one device at a time",
        "free = slots - int(busy.sum())",
        "free = min(1, slots - int(busy.sum()))",
        ASYNC_TESTS,
    ),
    (
        A,
        "uploaded bits not counted",
        "pending.bits_up += a.job.uplink_bits",
        "pending.bits_up += 0",
        ASYNC_TESTS,
    ),
    (
        A,
        "staleness off by one",
        "staleness = ctx.version - a.job.base_version",
        "staleness = ctx.version - a.job.base_version + 1",
        ASYNC_TESTS,
    ),
    (
        T,
        "masked gradients doubled",
        "g if m is None else g * m for g, m",
        "g if m is None else 2 * g * m for g, m",
        TRAINING_TESTS,
    ),
    (
        T,
        "gradient offsets ignored",
        "g if o is None else g + o * on",
        "g if o is None else g + 0 * o * on",
        TRAINING_TESTS,
    ),
    (
        T,
        "per-name step sizes ignored",
        "step_sizes = None if lr_by_name is None else",
        "step_sizes = None if True else",
        TRAINING_TESTS,
    ),
    (
        T,
        "loss not averaged over steps",
        "return CohortResult(stacked, loss_sum / active_steps",
        "return CohortResult(stacked, loss_sum + 0 * active_steps",
        TRAINING_TESTS,
    ),
    (
        T,
        "gradient pass not averaged",
        "(g / count.reshape(c, *[1] * (g.dim() - 1))).detach()",
        "g.detach()",
        TRAINING_TESTS,
    ),
    (
        "channels/minmax_latency.py",
        "non-optimal status accepted",
        'if status not in ("optimal", "optimal_inaccurate") or self.share.value is None:',
        "if self.share.value is None:",
        CHANNEL_TESTS,
    ),
    (
        "channels/minmax_latency.py",
        "split-vs-claim check off",
        "achieved > claimed * (1 + 1e-4) + 1e-12",
        "achieved > claimed * (1 + 1e4) + 1e-12",
        CHANNEL_TESTS,
    ),
    (
        "channels/link.py",
        "rate in nats",
        "return bandwidth_hz * np.log2(1.0 +",
        "return bandwidth_hz * np.log(1.0 +",
        CHANNEL_TESTS,
    ),
    (
        "channels/pathloss.py",
        "macro path-loss slope",
        "128.1 + 37.6 * np.log10(d_km)",
        "128.1 + 36.7 * np.log10(d_km)",
        CHANNEL_TESTS,
    ),
    (
        "channels/allocation.py",
        "equal share leaves a share unused",
        "np.full(n, total_bandwidth_hz / n)",
        "np.full(n, total_bandwidth_hz / (n + 1))",
        CHANNEL_TESTS,
    ),
    (
        "channels/fading.py",
        "Rayleigh power not exponential",
        "return -np.log(uniform01(self.seed, self.stream, link_ids, block))",
        "return uniform01(self.seed, self.stream, link_ids, block) * 2.0",
        CHANNEL_TESTS,
    ),
    (
        "channels/d2d.py",
        "pair id depends on direction",
        "np.minimum(a, b) * _PAIR_SHIFT + np.maximum(a, b)",
        "a * _PAIR_SHIFT + b",
        CHANNEL_TESTS,
    ),
]


def copy_tree(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run mutants whose file contains this")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        copy_tree(scratch)
        for file, what, old, new, tests in MUTANTS:
            if args.only not in file:
                continue
            path = scratch / file
            original = path.read_text()
            if original.count(old) != 1:
                results.append((file, what, "NOT APPLIED (text not found once)", 0.0))
                continue
            path.write_text(original.replace(old, new))
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p",
                 "no:cacheprovider", *tests],
                cwd=scratch, capture_output=True, text=True, check=False,
            )  # fmt: skip
            path.write_text(original)
            verdict = "killed" if out.returncode != 0 else "SURVIVED"
            results.append((file, what, verdict, time.perf_counter() - started))
            print(f"  {verdict:8s} {file}: {what}", file=sys.stderr, flush=True)
    width = max(len(f"{f}: {w}") for f, w, _, _ in results)
    print(f"{'mutant':<{width}}  verdict   s")
    for file, what, verdict, secs in results:
        print(f"{file + ': ' + what:<{width}}  {verdict:<8}  {secs:.0f}")
    print()
    for group in sorted({f for f, *_ in results}):
        mine = [v for f, _, v, _ in results if f == group]
        survived = sum(v == "SURVIVED" for v in mine)
        print(f"{group}: {survived} of {len(mine)} survived")
    total = [v for _, _, v, _ in results]
    survived = sum(v == "SURVIVED" for v in total)
    print(f"all: {survived} of {len(total)} survived ({100 * survived / max(len(total), 1):.0f}%)")


if __name__ == "__main__":
    main()
