"""``wedge compare FILE``: run a base scenario's variants over several seeds, side by side.

A comparison file::

    base: ../pruning_kkt.yaml         # relative to this file
    reference: personalization_only   # reductions are measured against this variant
    seeds: [1, 2, 3]
    variants:
      adaptive_pruning: {}
      personalization_only: {strategy.rho: 0.0, channel.allocator: {kind: minmax_latency}}

Writes ``<out>/compare-<file stem>/``: ``table.csv`` (one row per variant, seed means),
``runs.csv`` (one row per variant and seed) and ``comparison.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.errors import ScenarioError
from simulator.loader import apply_overrides, load_spec_with_base, validate_scenario
from simulator.outputs import write_text
from simulator.runner import run


class ComparisonFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    base: str
    reference: str
    seeds: list[int] = Field(default=[1, 2, 3], min_length=1)
    variants: dict[str, dict[str, Any]] = Field(min_length=2)

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
        last = m.dropna(subset=["personal_accuracy_mean"]).tail(1)
        rows.append(
            {
                "variant": name,
                "seed": seed,
                "rounds": len(m),
                "cumulative_latency_s": m.round_latency_s.sum(),
                "cumulative_compute_s": m.compute_s.sum(),
                "cumulative_uplink_s": m.uplink_s.sum(),
                "mean_rho": m.mean_rho.mean(),
                "final_personal_accuracy": float(last.personal_accuracy_mean.iloc[0])
                if len(last)
                else math.nan,
                "status": result.summary["status"],
                "run_dir": str(result.out_dir),
            }
        )
        m = m.assign(variant=name, seed=seed, cumulative_latency_s=m.round_latency_s.cumsum())
        curves.append(m)
        if on_run is not None:
            on_run(name, seed, rows[-1])
    runs = pd.DataFrame(rows)
    table = _summarise(runs, spec.reference)
    folder = Path(out_root) / f"compare-{Path(path).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "table.csv", table.to_csv(index=False))
    write_text(folder / "runs.csv", runs.to_csv(index=False))
    plot_comparison(pd.concat(curves), folder / "comparison.png")
    return table, runs, folder


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
