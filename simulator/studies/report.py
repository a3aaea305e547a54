"""``wedge report DIR``: PNG figures for a run folder or a sweep folder (``DIR/figures/``).

Run: accuracy vs virtual time, per-round latency breakdown, per-device timeline (who computes
and transmits when; failures marked), uplink bandwidth share per device and round, per-device
activity (updates; busy, idle and offline time) with the staleness histogram.
Sweep: mean round latency vs each swept numeric parameter, seed mean with min-max spread,
one line per combination of the other parameters.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from simulator.studies.results import RunData, load_run, load_sweep  # noqa: E402

FIGSIZE = (8.0, 4.5)  # inches; at 100 dpi every figure is 800 x 450 px
DPI = 100
PHASES = [
    ("downlink_start", "compute_start", "downlink", "tab:green"),
    ("compute_start", "uplink_start", "compute", "tab:blue"),
    ("uplink_start", "upload_done", "uplink", "tab:orange"),
]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    tmp.replace(path)
    return path


def accuracy_vs_time(run: RunData, path: Path) -> Path:
    m = run.metrics
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for col, label in [
        ("accuracy", "global model, test split"),
        ("personal_accuracy_mean", "personalised, mean over devices"),
    ]:
        if col in m and m[col].notna().any():
            d = m.dropna(subset=[col])
            ax.plot(d.time_s, d[col], marker="o", ms=3, label=label)
    if "personal_accuracy_p10" in m and m.personal_accuracy_p10.notna().any():
        d = m.dropna(subset=["personal_accuracy_p10"])
        ax.fill_between(
            d.time_s,
            d.personal_accuracy_p10,
            d.personal_accuracy_p90,
            alpha=0.2,
            label="personalised, 10th-90th percentile",
        )
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{run.summary['scenario']}: accuracy vs virtual time")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "systems-only run: no accuracy", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


def latency_breakdown(run: RunData, path: Path) -> Path:
    m = run.metrics
    fig, ax = plt.subplots(figsize=FIGSIZE)
    bottom = np.zeros(len(m))
    for col, label, color in [
        ("compute_s", "compute", "tab:blue"),
        ("downlink_s", "downlink", "tab:green"),
        ("uplink_s", "uplink", "tab:orange"),
        ("wait_s", "waiting", "tab:red"),
    ]:
        ax.bar(m.version, m[col], bottom=bottom, label=label, color=color, width=0.85)
        bottom += m[col].to_numpy()
    ax.set_xlabel("round (published version)")
    ax.set_ylabel("round latency (s), critical path")
    ax.set_title("per-round latency breakdown")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def device_timeline(run: RunData, path: Path, max_devices: int = 40, max_rounds: int = 8):
    ev = run.events
    ev = ev[(ev["round"] >= 0) & (ev["round"] < max_rounds)]
    devices = sorted(d for d in ev.device_id.unique() if d >= 0)[:max_devices]
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for start, end, label, color in PHASES:
        s = ev[ev.event == start].set_index(["device_id", "round"]).time_s
        e = ev[ev.event.isin([end, "failure"])].groupby(["device_id", "round"]).time_s.min()
        joined = pd.concat([s.rename("s"), e.rename("e")], axis=1).dropna().reset_index()
        joined = joined[joined.device_id.isin(devices)]
        ax.barh(
            joined.device_id,
            joined.e - joined.s,
            left=joined.s,
            color=color,
            height=0.7,
            label=label,
        )
    fails = ev[(ev.event == "failure") & ev.device_id.isin(devices)]
    if len(fails):
        ax.scatter(
            fails.time_s,
            fails.device_id,
            marker="x",
            color="black",
            zorder=3,
            label="interrupted (deadline / offline)",
        )
    for t in ev[ev.event == "publish"].time_s:
        ax.axvline(t, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("virtual time (s); dotted: model published")
    ax.set_ylabel("device id")
    ax.set_title(f"device timeline, first {max_rounds} rounds")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def bandwidth_shares(run: RunData, path: Path, max_devices: int = 60) -> Path:
    up = run.events[run.events.event == "uplink_start"]
    grid = up.pivot_table(index="device_id", columns="round", values="bandwidth_hz")
    grid = grid.iloc[:max_devices]
    share = grid / grid.sum(axis=0)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    image = ax.imshow(
        share.to_numpy(),
        aspect="auto",
        cmap="viridis",
        origin="lower",
        extent=(-0.5, share.shape[1] - 0.5, -0.5, share.shape[0] - 0.5),
    )
    fig.colorbar(image, ax=ax, label="share of the uplink band")
    ax.set_xlabel("round")
    ax.set_ylabel("device (row)")
    ax.set_title("uplink bandwidth share per device and round")
    fig.tight_layout()
    return _save(fig, path)


def latency_vs_parameter(summary: pd.DataFrame, param: str, others: list[str], path: Path):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    groups = summary.groupby(others, dropna=False) if others else [((), summary)]
    for key, g in groups:
        stats = g.groupby(param).mean_round_latency_s.agg(["mean", "min", "max"]).sort_index()
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{o}={k}" for o, k in zip(others, key, strict=True)) or "all"
        ax.plot(stats.index, stats["mean"], marker="o", label=label)
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2)
    ax.set_xlabel(param)
    ax.set_ylabel("mean round latency (s); band: seed min-max")
    ax.set_title(f"round latency vs {param}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def device_activity(run: RunData, path: Path, max_devices: int = 60) -> Path:
    """Left: updates delivered per device, with the time each spent busy, idle and offline.
    Right: the staleness histogram of applied arrivals (asynchronous runs)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=FIGSIZE, gridspec_kw={"width_ratios": [3, 2]})
    d = run.devices.head(max_devices)
    if len(d):
        total = (d.busy_s + d.idle_s + d.offline_s).replace(0, np.nan)
        bottom = np.zeros(len(d))
        for col, color in [("busy_s", "tab:blue"), ("idle_s", "tab:gray"), ("offline_s", "k")]:
            share = (d[col] / total).fillna(0).to_numpy()
            left.bar(d.device_id, share, bottom=bottom, color=color, label=col[:-2], width=0.9)
            bottom += share
        left.set_ylabel("share of the run's virtual time")
        twin = left.twinx()
        twin.plot(d.device_id, d.updates, "o", color="tab:orange", ms=3, label="updates")
        twin.set_ylabel("updates delivered", color="tab:orange")
        left.legend(loc="lower left", fontsize=7)
    left.set_xlabel(f"device (first {len(d)})")
    left.set_title("per-device activity")
    hist = run.summary.get("staleness_histogram")
    if hist:
        right.bar([int(k) for k in hist], list(hist.values()), color="tab:purple")
        right.set_xlabel("staleness (versions)")
        right.set_ylabel("arrivals")
        right.set_title(f"staleness, mean {run.summary['mean_staleness']:.1f}")
    else:
        right.text(0.5, 0.5, "synchronous run:\nno stale arrivals", ha="center", va="center")
        right.set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def report(path: str | Path) -> list[Path]:
    """Write the figures for a run or sweep folder; returns the files written."""
    path = Path(path)
    out = path / "figures"
    if (path / "summary.json").exists():
        run = load_run(path)
        written = [
            accuracy_vs_time(run, out / "accuracy_vs_time.png"),
            latency_breakdown(run, out / "latency_breakdown.png"),
        ]
        # per-device figures need per-device events (output.events: all)
        if (run.events.device_id >= 0).any():
            written.append(device_timeline(run, out / "device_timeline.png"))
            written.append(bandwidth_shares(run, out / "bandwidth_shares.png"))
        written.append(device_activity(run, out / "device_activity.png"))
        return written
    if (path / "summary.parquet").exists():
        sweep = load_sweep(path)
        s = sweep.summary[sweep.summary.status != "failed"]
        swept = [p for p in sweep.params if p != "seed" and p in s]
        numeric = [p for p in swept if pd.api.types.is_numeric_dtype(s[p])]
        written = []
        for p in numeric:
            others = [o for o in swept if o != p]
            written.append(latency_vs_parameter(s, p, others, out / f"latency_vs_{p}.png"))
        return written
    raise FileNotFoundError(f"{path} is neither a run folder nor a gathered sweep folder")


__all__ = ["report"]
