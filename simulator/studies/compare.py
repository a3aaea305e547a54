"""``wedge compare FILE``: run a base scenario's variants over several seeds, side by side.

A comparison file::

    base: ../pruning_kkt.yaml         # relative to this file
    reference: personalization_only   # reductions are measured against this variant
    seeds: [1, 2, 3]
    variants:
      adaptive_pruning: {}
      personalization_only: {strategy.rho: 0.0, channel.allocator: {kind: minmax_latency}}

``kind`` picks what is compared:

- ``latency`` (default): cumulative round latency (compute / uplink split), pruning ratio and
  personalised accuracy after the same number of rounds; reductions against ``reference``.
- ``accuracy_vs_time``: global test accuracy against virtual time (asynchronous vs
  synchronous strategies): time to ``target_accuracy``, accuracy at each of ``at_times_s``,
  final accuracy, staleness, selection fairness (Jain's index); speed-up of the time to
  target against ``reference``.
- ``outcomes``: where each variant ends after the same rounds: final test accuracy,
  personalised accuracy, coalition purity (nan for strategies without coalitions), bits per
  direction (``bits_up`` to the server, ``bits_down``, ``bits_d2d``, totals and per round),
  cumulative latency, energy and the final rank of factored layers (nan without); seed means
  and standard deviations. The figure adds rank trajectories when a variant has ranks.

Writes ``<out>/compare-<file stem>/``: ``table.csv`` (one row per variant, seed means),
``runs.csv`` (one row per variant and seed) and ``comparison.png``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from simulator.engine.runner import run
from simulator.engine.world import preflight
from simulator.errors import ScenarioError
from simulator.loader import apply_overrides, load_spec_with_base, validate_scenario
from simulator.outputs import write_text
from simulator.studies.results import time_to_accuracy_s


class ComparisonFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    base: str
    reference: str
    kind: Literal["latency", "accuracy_vs_time", "outcomes"] = "latency"
    seeds: list[int] = Field(default=[1, 2, 3], min_length=1)
    variants: dict[str, dict[str, Any]] = Field(min_length=2)
    target_accuracy: float = Field(default=0.85, gt=0, le=1)  # accuracy_vs_time
    at_times_s: list[PositiveFloat] = Field(default_factory=list)  # accuracy_vs_time

    @model_validator(mode="after")
    def _reference_is_a_variant(self):
        if self.reference not in self.variants:
            raise ValueError(f"reference {self.reference!r} is not one of the variants")
        return self


def load_comparison(path: str | Path):
    """The comparison and every (variant, seed) scenario, all validated before anything runs."""
    path = Path(path)
    spec, base = load_spec_with_base(path, ComparisonFile)
    scenarios = {}
    for name, overrides in spec.variants.items():
        for seed in spec.seeds:
            source = f"{path} (variant {name})"
            extra = {**overrides, "seed": seed, "name": f"{base['name']}-{name}"}
            try:
                scenarios[name, seed] = validate_scenario(apply_overrides(base, extra), source)
                preflight(scenarios[name, seed], source)  # rules across fields, files
            except ScenarioError as exc:  # name the variant, whichever step found the problem
                raise ScenarioError(source, exc.problems) from None
    return spec, scenarios


def run_comparison(path: str | Path, out_root: str | Path = "runs", on_run=None):
    """Run every variant and seed; returns (per-variant table, per-run table, folder)."""
    spec, scenarios = load_comparison(path)
    rows, curves = [], []
    for (name, seed), scenario in scenarios.items():
        result = run(scenario, out_root=out_root)
        m = result.metrics.to_pandas()
        if spec.kind == "latency":
            row = _latency_row(m)
        elif spec.kind == "outcomes":
            row = _outcome_row(m, result.summary)
        else:
            row = _accuracy_row(m, spec, result.summary)
        rows.append(
            {
                "variant": name,
                "seed": seed,
                **row,
                "status": result.summary["status"],
                "run_dir": str(result.out_dir),
            }
        )
        m = m.assign(variant=name, seed=seed, cumulative_latency_s=m.round_latency_s.cumsum())
        curves.append(m)
        if on_run is not None:
            on_run(name, seed, rows[-1])
    runs = pd.DataFrame(rows)
    folder = Path(out_root) / f"compare-{Path(path).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    if spec.kind == "latency":
        table = _summarise(runs, spec.reference)
        plot_comparison(pd.concat(curves), folder / "comparison.png")
    elif spec.kind == "outcomes":
        table = _summarise_outcomes(runs)
        plot_outcomes(pd.concat(curves), table, folder / "comparison.png")
    else:
        table = _summarise_accuracy(runs, spec)
        plot_accuracy_vs_time(pd.concat(curves), runs, spec, folder / "comparison.png")
    write_text(folder / "table.csv", table.to_csv(index=False))
    write_text(folder / "runs.csv", runs.to_csv(index=False))
    return table, runs, folder


# multi-cell and over-the-air columns (nan where a run has none): handovers and backhaul
# time summed over the run, the AirComp MSE (measured and formula) and exclusions per round
NETWORK = ["handovers", "backhaul_s", "aircomp_mse", "aircomp_mse_formula", "aircomp_excluded"]


def _network_row(m: pd.DataFrame) -> dict:
    row = {}
    for column in NETWORK:
        if column not in m or not m[column].notna().any():
            row[column] = math.nan
        elif column in ("handovers", "backhaul_s"):
            row[column] = float(m[column].sum())
        else:
            row[column] = float(m[column].mean())
    return row


def _latency_row(m: pd.DataFrame) -> dict:
    last = m.dropna(subset=["personal_accuracy_mean"]).tail(1)
    return {
        **_network_row(m),
        "rounds": len(m),
        "cumulative_latency_s": m.round_latency_s.sum(),
        "cumulative_compute_s": m.compute_s.sum(),
        "cumulative_uplink_s": m.uplink_s.sum(),
        "mean_rho": m.mean_rho.mean(),
        "final_personal_accuracy": float(last.personal_accuracy_mean.iloc[0])
        if len(last)
        else math.nan,
    }


OUTCOMES = [
    "accuracy", "personal_accuracy_mean", "purity", "bits_up", "bits_down", "bits_d2d",
    "bits_up_per_round", "cumulative_latency_s", "energy_j", "final_rank", "router_purity",
]  # fmt: skip


def _last(m: pd.DataFrame, column: str) -> float:
    if column not in m:
        return math.nan
    seen = m[column].dropna()
    return float(seen.iloc[-1]) if len(seen) else math.nan


def _outcome_row(m: pd.DataFrame, summary: dict) -> dict:
    return {
        "rounds": len(m),
        "accuracy": _last(m, "accuracy"),
        "personal_accuracy_mean": _last(m, "personal_accuracy_mean"),
        "purity": _last(m, "coalition_purity"),
        "router_purity": _last(m, "router_purity"),
        "bits_up": float(m.bits_up.sum()),
        "bits_down": float(m.bits_down.sum()),
        "bits_d2d": float(m.bits_d2d.sum()),
        "bits_up_per_round": float(m.bits_up.mean()),
        "cumulative_latency_s": float(m.round_latency_s.sum()),
        "energy_j": float(summary["energy_j"]),
        # mean over factored layers of the rank the run ended with (nan: nothing factored)
        "final_rank": float(np.mean(ranks)) if (ranks := _final_ranks(m)) else math.nan,
        **_network_row(m),
    }


def _final_ranks(m: pd.DataFrame) -> list[float]:
    return [float(m[c].iloc[-1]) for c in m.columns if c.startswith("rank_") and len(m)]


def _summarise_outcomes(runs: pd.DataFrame) -> pd.DataFrame:
    """Seed means of every outcome, with the standard deviation of the two accuracies."""
    g = runs.groupby("variant", sort=False)
    table = g[[*OUTCOMES, *NETWORK]].mean()
    table.insert(0, "seeds", g.seed.count())
    for col in ("accuracy", "personal_accuracy_mean"):
        table[f"{col}_std"] = g[col].std()
    return table.reset_index()


def plot_outcomes(curves: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """Three panels: personalised accuracy against virtual time (seed means of the evaluated
    versions), test accuracy against virtual time, and bits per round by direction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rank_cols = [c for c in curves.columns if c.startswith("rank_")]
    fig, axes = plt.subplots(1, 4 if rank_cols else 3, figsize=(21 if rank_cols else 16, 4.3))
    names = list(dict.fromkeys(curves.variant))
    for i, column in enumerate(["personal_accuracy_mean", "accuracy"]):
        if curves[column].isna().all():
            axes[i].text(0.5, 0.5, f"{column.replace('_', ' ')}:\nnot measured here",
                         ha="center", va="center", transform=axes[i].transAxes)  # fmt: skip
            axes[i].set_axis_off()
            continue
        for name in names:
            seen = curves[(curves.variant == name) & curves[column].notna()]
            mean = seen.groupby("version")[[column, "time_s"]].mean()
            axes[i].plot(mean.time_s, mean[column], marker=".", label=name)
        axes[i].set_xlabel("virtual time (s)")
        axes[i].set_ylabel(column.replace("_", " "))
        axes[i].set_ylim(0, 1)
        axes[i].grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    rounds = curves.groupby("variant", sort=False)[["bits_up", "bits_down", "bits_d2d"]].mean()
    x = np.arange(len(names))
    for j, col in enumerate(["bits_up", "bits_down", "bits_d2d"]):
        axes[2].bar(x + (j - 1) * 0.27, rounds.loc[names, col] / 1e6, 0.27, label=col)
    axes[2].set_xticks(x, names, rotation=15)
    axes[2].set_ylabel("Mbit per round (seed mean)")
    axes[2].legend()
    if rank_cols:  # rank trajectories: seed mean of the mean rank over factored layers
        for name in names:
            part = curves[curves.variant == name]
            if part[rank_cols].notna().any().any():
                mean = part.assign(r=part[rank_cols].mean(axis=1)).groupby("round").r.mean()
                axes[3].plot(mean.index, mean.to_numpy(), label=name)
        axes[3].set_xlabel("round")
        axes[3].set_ylabel("rank (mean over factored layers)")
        axes[3].grid(alpha=0.3)
        axes[3].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def accuracy_at_s(m: pd.DataFrame, t_s: float) -> float:
    """Accuracy of the last evaluation at or before virtual time ``t_s`` (nan before any)."""
    seen = m[(m.time_s <= t_s) & m.accuracy.notna()]
    return float(seen.accuracy.iloc[-1]) if len(seen) else math.nan


def _accuracy_row(m: pd.DataFrame, spec: ComparisonFile, summary: dict) -> dict:
    evaluated = m[m.accuracy.notna()]
    return {
        "versions": len(m),
        "virtual_time_s": float(m.time_s.iloc[-1]) if len(m) else 0.0,
        "time_to_target_s": time_to_accuracy_s(m, spec.target_accuracy),
        **{f"accuracy_at_{t:g}s": accuracy_at_s(m, t) for t in spec.at_times_s},
        "accuracy": float(evaluated.accuracy.iloc[-1]) if len(evaluated) else math.nan,
        "mean_staleness": summary.get("mean_staleness", 0.0),
        # selection fairness: Jain's index over selection counts (synchronous runs)
        "jain_fairness": _last(m, "jain_fairness"),
        "cumulative_latency_s": float(m.round_latency_s.sum()) if len(m) else 0.0,
        **_network_row(m),
    }


def _summarise_accuracy(runs: pd.DataFrame, spec: ComparisonFile) -> pd.DataFrame:
    """Seed means; the time to target averages the seeds that reached it (``reached`` says
    how many did), and ``speedup_vs_reference`` = reference time / this variant's time (a
    lower bound, flagged, when the reference never reached the target)."""
    g = runs.groupby("variant", sort=False)
    at_cols = [f"accuracy_at_{t:g}s" for t in spec.at_times_s]
    columns = [
        "versions",
        "virtual_time_s",
        *at_cols,
        "accuracy",
        "mean_staleness",
        "jain_fairness",
        "cumulative_latency_s",
        *NETWORK,
    ]
    table = g[columns].mean()
    table.insert(0, "seeds", g.seed.count())
    table.insert(1, "reached", g.time_to_target_s.apply(lambda s: f"{s.notna().sum()}/{len(s)}"))
    table.insert(2, "time_to_target_s", g.time_to_target_s.mean())
    table.insert(3, "time_to_target_std_s", g.time_to_target_s.std())
    table = table.reset_index()
    ref = table.set_index("variant").loc[spec.reference]
    # A reference that never reached the target gives a lower bound: it needed more than
    # its whole run.
    bound = math.isnan(ref.time_to_target_s)
    ref_s = float(ref.virtual_time_s if bound else ref.time_to_target_s)
    table["speedup_vs_reference"] = ref_s / table.time_to_target_s
    table["speedup_is_lower_bound"] = bound
    return table


def _summarise(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    g = runs.groupby("variant", sort=False)
    table = g.agg(
        seeds=("seed", "count"),
        cumulative_latency_s=("cumulative_latency_s", "mean"),
        cumulative_compute_s=("cumulative_compute_s", "mean"),
        cumulative_uplink_s=("cumulative_uplink_s", "mean"),
        mean_rho=("mean_rho", "mean"),
        personal_accuracy=("final_personal_accuracy", "mean"),
        personal_accuracy_std=("final_personal_accuracy", "std"),
        **{c: (c, "mean") for c in NETWORK},
    ).reset_index()
    ref = table.set_index("variant").loc[reference]
    table["latency_reduction_pct"] = 100 * (
        1 - table.cumulative_latency_s / ref.cumulative_latency_s
    )
    table["accuracy_diff_points"] = 100 * (table.personal_accuracy - ref.personal_accuracy)
    return table


def plot_comparison(curves: pd.DataFrame, path: Path) -> None:
    """Three panels: mean per-round latency split, cumulative latency, personalised accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = list(dict.fromkeys(curves.variant))
    split = (
        curves.groupby("variant", sort=False)[["compute_s", "uplink_s", "downlink_s", "wait_s"]]
        .mean()
        .loc[names]
    )
    bottom = np.zeros(len(names))
    for col, label in [
        ("compute_s", "compute"),
        ("uplink_s", "uplink"),
        ("downlink_s", "downlink"),
        ("wait_s", "waiting"),
    ]:
        axes[0].bar(names, split[col], bottom=bottom, label=label)
        bottom += split[col].to_numpy()
    axes[0].set_ylabel("mean round latency (s), critical path")
    axes[0].legend()
    axes[0].tick_params(axis="x", rotation=20)
    for name in names:
        c = curves[curves.variant == name].groupby("version")
        axes[1].plot(c.cumulative_latency_s.mean(), label=name)
        acc = c.personal_accuracy_mean.mean().dropna()
        axes[2].plot(acc.index, acc.to_numpy(), marker="o", ms=3, label=name)
    axes[1].set_xlabel("round")
    axes[1].set_ylabel("cumulative latency (s, virtual)")
    axes[2].set_xlabel("round")
    axes[2].set_ylabel("personalised test accuracy (mean over devices)")
    for ax in axes[1:]:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("seed means")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def plot_accuracy_vs_time(
    curves: pd.DataFrame, runs: pd.DataFrame, spec: ComparisonFile, path: Path
) -> None:
    """Two panels: global test accuracy against virtual time (seed mean of the step curves,
    band = min..max over seeds) and the time to the target per variant and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    names = list(dict.fromkeys(curves.variant))
    end = float(curves.time_s.max())
    grid = np.linspace(0.0, end, 400)
    for name in names:
        per_seed = []
        for _, m in curves[curves.variant == name].groupby("seed"):
            seen = m[m.accuracy.notna()]
            # step curve: the accuracy of the last evaluation at or before each grid time
            pos = np.searchsorted(seen.time_s.to_numpy(), grid, side="right") - 1
            acc = np.where(pos >= 0, seen.accuracy.to_numpy()[np.maximum(pos, 0)], np.nan)
            acc[grid > m.time_s.max()] = np.nan  # the run had stopped
            per_seed.append(acc)
        stack = np.vstack(per_seed)
        with warnings.catch_warnings():  # before the first evaluation every seed is nan
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = (f(stack, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
        (line,) = axes[0].plot(grid, mean, label=name)
        axes[0].fill_between(grid, low, high, color=line.get_color(), alpha=0.15)
    axes[0].axhline(spec.target_accuracy, color="grey", ls="--", lw=1, label="target")
    axes[0].set_xlabel("virtual time (s)")
    axes[0].set_ylabel("global test accuracy")
    axes[0].set_ylim(0, 1)
    axes[0].grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    for i, name in enumerate(names):
        tta = runs[runs.variant == name].time_to_target_s.to_numpy()
        reached = tta[np.isfinite(tta)]
        axes[1].scatter(reached, np.full(reached.size, i), color=f"C{i}")
        if reached.size < tta.size:
            axes[1].annotate(f"{tta.size - reached.size} seed(s) never", (0, i), fontsize=8)
    axes[1].set_yticks(range(len(names)), names)
    axes[1].set_xlabel(f"virtual time to accuracy {spec.target_accuracy} (s), per seed")
    axes[1].set_xlim(left=0)
    axes[1].grid(alpha=0.3)
    fig.suptitle(f"seeds {spec.seeds}")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
