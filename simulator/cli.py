"""The ``wedge`` command line: ``wedge run`` and ``wedge validate``.

Exit codes: 0 success, 1 the run finished but reported a problem (diverged, no device ever
delivered, a write failed), 2 bad input
(scenario file, overrides, or arguments). Bad input never prints a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

EXIT_OK, EXIT_RUN_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2

_COLUMNS = [
    ("version", "ver", "{:d}"),
    ("time_s", "time s", "{:.2f}"),
    ("round_latency_s", "round s", "{:.3f}"),
    ("compute_s", "compute", "{:.3f}"),
    ("uplink_s", "uplink", "{:.3f}"),
    ("downlink_s", "downlink", "{:.3f}"),
    ("wait_s", "wait", "{:.3f}"),
    ("n_delivered", "done", "{:d}"),
    ("n_failed", "fail", "{:d}"),
    ("accuracy", "acc", "{:.3f}"),
    ("loss", "loss", "{:.4g}"),
]


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _row_line(row: dict) -> str:
    return "".join(f"{_cell(row[k], f):>10}" for k, _, f in _COLUMNS)


def _header_line() -> str:
    return "".join(f"{title:>10}" for _, title, _ in _COLUMNS)


class _PlainConsole:
    """What ``wedge run`` needs of rich's Console where nobody watches (output to a file or a
    pipe, or ``--quiet``): plain lines, no markup, no live display. It spares importing rich,
    ~0.06 s of a quickstart's start-up."""

    is_terminal = False

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    def print(self, text: str = "", **_style) -> None:
        print(text, file=sys.stderr if self.stderr else sys.stdout)


class _NoProgress:
    """The progress-bar calls ``wedge run`` makes, doing nothing (no terminal to draw on)."""

    def __init__(self, console: _PlainConsole) -> None:
        self.console = console

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        return None

    def advance(self, *args, **kwargs) -> None:
        return None


def _run_display(quiet: bool):
    """(stderr console, stdout console, progress bar) for ``wedge run``: rich's when a terminal
    shows them, plain ones otherwise."""
    if quiet or not (sys.stderr.isatty() or sys.stdout.isatty()):
        err = _PlainConsole(stderr=True)
        return err, _PlainConsole(), _NoProgress(err)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    live = Console(stderr=True, soft_wrap=True)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=live,
        transient=True,
        disable=not live.is_terminal,
    )
    return live, Console(highlight=False, soft_wrap=True), progress


def cmd_run(args: argparse.Namespace) -> int:
    from simulator.engine.runner import run
    from simulator.engine.world import preflight
    from simulator.errors import ScenarioError
    from simulator.loader import load_scenario
    from simulator.outputs import OutputFolderError, check_out_root

    err, out, progress_bar = _run_display(args.quiet)
    try:
        scenario = load_scenario(args.scenario, args.set or [])
        preflight(scenario, str(args.scenario))
        check_out_root(args.out)
    except ScenarioError as exc:
        err.print(exc.format(), markup=False, highlight=False)
        return EXIT_BAD_INPUT
    except OutputFolderError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    rounds = scenario.simulation.rounds
    limit_s = scenario.simulation.max_time_s
    # With a virtual-time limit the run usually ends there (asynchronous runs publish
    # thousands of versions): progress and table rows then follow virtual time.
    by_time = limit_s is not None
    every = args.every or (1 if rounds <= 100 else rounds // 50)
    next_row_s = 0.0
    limits = f"up to {rounds} versions or {limit_s:g} s virtual" if by_time else f"{rounds} rounds"
    out.print(
        f"wedge: {scenario.name} ({scenario.devices.count} devices, {limits}, "
        f"{'systems-only' if scenario.systems_only else 'training'})"
    )
    if not args.quiet:
        out.print(_header_line())
    with progress_bar as progress:
        if by_time:
            task = progress.add_task("virtual s", total=limit_s)
        else:
            task = progress.add_task("rounds", total=rounds)

        def on_version(row: dict) -> None:
            nonlocal next_row_s
            if by_time:
                assert limit_s is not None
                progress.update(task, completed=min(row["time_s"], limit_s))
                # about 50 rows over the run's virtual time, each at an evaluated version
                evaluated = scenario.systems_only or not math.isnan(row["accuracy"])
                due = args.every is None and row["time_s"] >= next_row_s and evaluated
                if due:
                    next_row_s = row["time_s"] + limit_s / 50
            else:
                progress.advance(task)
                due = False
            due = due or row["version"] % every == 0 or row["version"] == rounds
            if not args.quiet and due:
                # Above a live progress bar rows must go through its console to stay readable.
                console = progress.console if err.is_terminal else out
                console.print(_row_line(row), markup=False, highlight=False)

        try:
            result = run(
                scenario,
                out_root=args.out,
                csv=args.csv,
                on_version=on_version,
                source=str(args.scenario),
            )
        except ScenarioError as exc:
            err.print(exc.format(), markup=False, highlight=False)
            return EXIT_BAD_INPUT
    s = result.summary
    acc = "-" if s["final_accuracy"] is None else f"{s['final_accuracy']:.3f}"
    out.print(
        f"status {s['status']}: {s['versions']} versions in {s['virtual_time_s']:.2f} s virtual "
        f"time, final accuracy {acc}, {s['events']} events, {s['wall_time_s']:.2f} s wall"
    )
    for note in s["notes"][:10]:
        out.print(f"note: {note}", markup=False)
    if result.out_dir is not None:
        out.print(f"results: {result.out_dir}", markup=False)
    problems = ("diverged", "no_deliveries", "no_devices_online", "none_selected")
    return EXIT_RUN_PROBLEM if s["status"] in problems else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from simulator.engine.world import build
    from simulator.errors import ScenarioError
    from simulator.loader import load_scenario
    from simulator.studies.sweep import load_sweep_file

    bad = 0
    for path in args.files:
        try:
            if path.suffix in (".yaml", ".yml") and path.is_file() and _is_sweep(path):
                sweep = load_sweep_file(path)
                print(f"{path}: ok (sweep {sweep.spec.name}, {len(sweep.points)} points)")
                continue
            if path.suffix in (".yaml", ".yml") and path.is_file() and _is_comparison(path):
                from simulator.studies.compare import load_comparison

                spec, runs = load_comparison(path)
                print(f"{path}: ok (comparison, {len(spec.variants)} variants, {len(runs)} runs)")
                continue
            scenario = load_scenario(path)
            build(scenario, str(path))  # settings that are valid alone but not together
        except ScenarioError as exc:
            bad += 1
            print(exc.format(), file=sys.stderr)
            continue
        print(f"{path}: ok ({scenario.name}, {scenario.devices.count} devices)")
    return EXIT_BAD_INPUT if bad else EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from simulator.errors import ScenarioError
    from simulator.outputs import OutputFolderError, check_out_root
    from simulator.studies.compare import load_comparison, run_comparison

    try:
        spec, scenarios = load_comparison(args.file)
        check_out_root(args.out)
    except ScenarioError as exc:
        print(exc.format(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except OutputFolderError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wedge compare: {len(spec.variants)} variants x {len(spec.seeds)} seeds")

    def on_run(name, seed, row):
        if spec.kind == "outcomes":
            parts = [f"accuracy {row['accuracy']:.3f}"]
            optional = [("personalised", "personal_accuracy_mean", ".3f"),
                        ("coalition purity", "purity", ".2f"),
                        ("router purity", "router_purity", ".2f"),
                        ("final rank", "final_rank", ".1f")]  # fmt: skip
            parts += [f"{label} {row[key]:{fmt}}" for label, key, fmt in optional
                      if not math.isnan(row[key])]  # fmt: skip
            parts.append(f"{row['bits_up_per_round'] / 1e6:.2f} Mbit up per round")
            parts.append(f"{row['cumulative_latency_s']:.1f} s")
            said = ", ".join(parts)
        elif spec.kind == "latency":
            said = (
                f"cumulative latency {row['cumulative_latency_s']:.2f} s, "
                f"personalised accuracy {row['final_personal_accuracy']:.3f}"
            )
        else:
            said = (
                f"{row['versions']} versions in {row['virtual_time_s']:.1f} s virtual, "
                f"accuracy {row['accuracy']:.3f}, time to {spec.target_accuracy}: "
                f"{row['time_to_target_s']:.1f} s"
            )
            if not math.isnan(row["jain_fairness"]):
                said += f", fairness {row['jain_fairness']:.2f}"
        print(f"  {name} seed {seed}: {said}", flush=True)

    table, _, folder = run_comparison(args.file, args.out, on_run=on_run)
    with pd_options():
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"reference: {spec.reference}; table, runs and comparison.png in {folder}")
    return EXIT_OK


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 250, "display.max_columns", 40)


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from simulator.errors import ScenarioError
    from simulator.studies.sweep import (
        SchedulerUnreachable,
        TLSFiles,
        check_scheduler,
        load_sweep_file,
        plain_tcp_warning,
        run_sweep,
    )

    err = Console(stderr=True, soft_wrap=True)
    tls_args = (args.tls_ca_file, args.tls_cert, args.tls_key)
    tls = TLSFiles(*tls_args) if all(tls_args) else None
    problems = check_scheduler(args.scheduler, tls)
    if any(tls_args) and not all(tls_args):
        problems.append(
            "--tls-ca-file, --tls-cert, --tls-key: expected all three, found "
            + ", ".join(
                f
                for f, v in zip(("--tls-ca-file", "--tls-cert", "--tls-key"), tls_args, strict=True)
                if v
            )
        )
    if problems:
        for line in problems:
            print(f"wedge sweep: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    warning = plain_tcp_warning(args.scheduler)
    if warning:
        print(warning, file=sys.stderr)
    from simulator.outputs import OutputFolderError, check_out_root

    try:
        sweep = load_sweep_file(args.file)
        check_out_root(args.out)
    except ScenarioError as exc:
        err.print(exc.format(), markup=False, highlight=False)
        return EXIT_BAD_INPUT
    except OutputFolderError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    folder = sweep.folder(args.out)
    print(f"wedge sweep: {sweep.spec.name}, {len(sweep.points)} points -> {folder}", flush=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("points", total=len(sweep.points), counts="")

        def on_progress(*, done, failed, running, total):
            counts = f"{done} done, {running} running, {failed} failed of {total}"
            progress.update(task, completed=done + failed, counts=counts)
            if not err.is_terminal:
                print(counts, flush=True)

        try:
            run_sweep(
                sweep,
                args.out,
                workers=args.workers,
                scheduler=args.scheduler,
                tls=tls,
                on_progress=on_progress,
            )
        except SchedulerUnreachable as exc:
            progress.stop()
            print(f"wedge sweep: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    from simulator.studies.results import load_sweep

    summary = load_sweep(folder).summary
    failed = int((summary.status == "failed").sum()) if "status" in summary else 0
    print(f"table: {folder / 'table.parquet'}; summary: {folder / 'summary.parquet'}")
    if failed:
        print(f"{failed} point(s) failed; errors in {folder / 'failed'}")
    return EXIT_RUN_PROBLEM if failed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from simulator.studies.report import report

    try:
        written = report(args.folder)
    except FileNotFoundError as exc:
        print(f"{args.folder}: expected a run or sweep folder, found {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (pa.ArrowException, ValueError, KeyError) as exc:  # a damaged or foreign file
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        print(f"{args.folder}: expected readable wedge results, found {first}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in written:
        print(path)
    return EXIT_OK


def _is_comparison(path: Path) -> bool:
    from simulator.errors import ScenarioError
    from simulator.loader import read_yaml_mapping

    try:
        return "variants" in read_yaml_mapping(path)
    except ScenarioError:
        return False


def _is_sweep(path: Path) -> bool:
    from simulator.errors import ScenarioError
    from simulator.loader import read_yaml_mapping

    try:
        data = read_yaml_mapping(path)
    except ScenarioError:
        return False  # the scenario loader reports the problem
    return "grid" in data or "points" in data


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 too; keep its one-line message
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wedge", description="Simulate federated learning over wireless edge networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p_run = sub.add_parser("run", help="run a scenario and write runs/<name>-<hash>/")
    p_run.add_argument("scenario", type=Path, help="scenario YAML file")
    p_run.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a field, e.g. --set channel.uplink_bandwidth_hz=2e6",
    )
    p_run.add_argument("--out", default="runs", help="results root folder (default: runs)")
    p_run.add_argument("--csv", action="store_true", help="also write CSV next to Parquet")
    p_run.add_argument("--every", type=int, default=None, help="print every N-th round")
    p_run.add_argument("--quiet", action="store_true", help="no per-round table or progress bar")
    p_run.set_defaults(func=cmd_run)
    p_cmp = sub.add_parser("compare", help="run a comparison file's variants over seeds")
    p_cmp.add_argument("file", type=Path, help="comparison YAML (base, reference, seeds, variants)")
    p_cmp.add_argument("--out", default="runs", help="results root folder (default: runs)")
    p_cmp.set_defaults(func=cmd_compare)
    p_swp = sub.add_parser("sweep", help="run a sweep file's points on Dask (resumable)")
    p_swp.add_argument("file", type=Path, help="sweep YAML (base, seeds, grid or points)")
    p_swp.add_argument("--out", default="runs", help="results root folder (default: runs)")
    p_swp.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: one per core)"
    )
    p_swp.add_argument(
        "--scheduler",
        default=None,
        metavar="tls://HOST:PORT",
        help="use an existing Dask cluster instead of a local one (tls:// with the three "
        "--tls-* files; plain tcp:// lets anyone who reaches it run code on the workers)",
    )
    p_swp.add_argument("--tls-ca-file", type=Path, default=None, help="CA certificate (PEM)")
    p_swp.add_argument("--tls-cert", type=Path, default=None, help="client certificate (PEM)")
    p_swp.add_argument("--tls-key", type=Path, default=None, help="client private key (PEM)")
    p_swp.set_defaults(func=cmd_sweep)
    p_rep = sub.add_parser("report", help="write PNG figures for a run or sweep folder")
    p_rep.add_argument("folder", type=Path)
    p_rep.set_defaults(func=cmd_report)
    p_val = sub.add_parser("validate", help="check scenario files without running them")
    p_val.add_argument("files", nargs="+", type=Path)
    p_val.set_defaults(func=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    return _dispatch(make_parser().parse_args(argv))


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("wedge: interrupted; finished results are kept", file=sys.stderr)
        return 130
    except OSError as exc:  # a disk that filled up, a folder that vanished mid-run
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"wedge: {exc.strerror or exc}{where}; nothing was published", file=sys.stderr)
        return EXIT_RUN_PROBLEM
    except MemoryError:
        print("wedge: out of memory; make the scenario smaller", file=sys.stderr)
        return EXIT_RUN_PROBLEM


# Commands that start no other process and hold no open file once they return, so their
# process may end without the interpreter's teardown (see console_main).
_QUICK_EXIT_COMMANDS = frozenset({"run"})


def console_main() -> None:
    """The ``wedge`` command: :func:`main`, then exit.

    After ``wedge run`` the interpreter's own teardown (freeing torch's, numpy's and every
    other module's objects one by one) takes 0.4-0.6 s, a fifth of a quickstart run, and does
    nothing a finished run needs: its results are on disk, written atomically and closed.
    So such a process flushes its streams, runs the ``atexit`` handlers (logging,
    multiprocessing, finalizers) and ends there (``os._exit``) with the same exit code.
    ``WEDGE_FULL_EXIT=1`` keeps the full teardown.
    """
    import os

    args = make_parser().parse_args()
    code = _dispatch(args)
    if args.command not in _QUICK_EXIT_COMMANDS or os.environ.get("WEDGE_FULL_EXIT"):
        sys.exit(code)
    import atexit

    _flush_streams()
    atexit._run_exitfuncs()
    _flush_streams()  # whatever the handlers printed
    os._exit(code)


def _flush_streams() -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (``wedge run ... | head``): nothing left to say
        pass


if __name__ == "__main__":
    console_main()
