"""Run the hostile corpus in-process and classify every case.

    python -m tests.hostile.runner        # prints the table of outcomes per class

Outcomes: ``clean`` (what the case expects, said in lines that name the file and field),
``traceback`` (an exception escaped), ``hang`` (over the time limit), ``meaningless`` (exit 0
where the input is bad, or a completion whose status or numbers say nothing), ``unclear``
(the right exit code, but a message that does not name the file or the field).
"""

from __future__ import annotations

import contextlib
import io
import re
import signal
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from simulator.cli import main
from tests.hostile.corpus import Case, build_corpus, write_case

TIME_LIMIT_S = 30


class _Timeout(BaseException):  # BaseException: the code under test must not swallow it
    pass


@dataclass(frozen=True)
class Outcome:
    case: Case
    verdict: str
    code: int | None
    stderr: str
    stdout: str


def _alarm(signum, frame):
    raise _Timeout


def run_case(case: Case, folder: Path) -> Outcome:
    argv = write_case(case, folder)
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    code: int | None = None
    verdict = ""
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except _Timeout:
        verdict = "hang"
    except BaseException:  # noqa: BLE001 (classifying exactly this)
        err.write(traceback.format_exc())
        verdict = "traceback"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    stderr, stdout = err.getvalue(), out.getvalue()
    if not verdict:
        verdict = _judge(case, folder, code, stdout, stderr)
    return Outcome(case, verdict, code, stderr, stdout)


def _judge(case: Case, folder: Path, code: int | None, stdout: str, stderr: str) -> str:
    if "Traceback (most recent call last)" in stderr + stdout:
        return "traceback"
    name = case.name.replace("{dir}", str(folder))
    if case.expect == "reject":
        if code == 0:
            return "meaningless"
        lines = [line for line in stderr.splitlines() if line.strip()]
        if code != 2 or not lines:
            return "unclear"
        if name and not all(name in line for line in lines if not line.startswith("usage:")):
            return "unclear"
        if case.field_path and case.field_path not in stderr:
            return "unclear"
        return "clean"
    status = re.search(r"^status (\w+)", stdout, re.M)
    if case.expect == "ok":
        if code != 0:
            return "unclear"
        if status and status.group(1) not in ("completed", "time_limit", "target_reached"):
            return "meaningless"
        if status and "final accuracy -" in stdout and "systems-only" not in stdout:
            return "meaningless"
        return "clean"
    # problem: the run ends with exit 1 and its status says why
    if code == 0:
        return "meaningless"
    said = ("diverged", "no_deliveries", "no_devices_online", "none_selected")
    ok = code == 1 and status is not None and status.group(1) in said
    return "clean" if ok else "unclear"


def run_corpus(cases: list[Case] | None = None) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases or build_corpus()):
            folder = Path(tmp) / f"case{i}"
            folder.mkdir()
            outcomes.append(run_case(case, folder))
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    """Counts of outcomes per class, one row per class and a total."""
    verdicts = ["clean", "traceback", "hang", "meaningless", "unclear"]
    counts: dict[str, Counter] = {}
    for o in outcomes:
        counts.setdefault(o.case.klass, Counter())[o.verdict] += 1
    rows = [["class", "cases", *verdicts]]
    for klass in sorted(counts):
        c = counts[klass]
        rows.append([klass, str(sum(c.values())), *(str(c[v]) for v in verdicts)])
    total = Counter(o.verdict for o in outcomes)
    rows.append(["total", str(len(outcomes)), *(str(total[v]) for v in verdicts)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)


if __name__ == "__main__":
    results = run_corpus()
    print(table(results))
    for o in results:
        if o.verdict != "clean":
            said = f"{o.stderr[-600:]}{o.stdout[-300:]}"
            print(f"\n[{o.verdict}] {o.case.case_id} (exit {o.code})\n{said}")
    sys.exit(0 if all(o.verdict == "clean" for o in results) else 1)
