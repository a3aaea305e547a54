"""Same scenario and seed: identical events and metrics. Another seed: different."""

from __future__ import annotations

from simulator.engine.runner import run
from tests.conftest import make_scenario, same_table

STOCHASTIC = {
    "channel.fading": {"kind": "rayleigh", "coherence_s": 0.01},
    "channel.pathloss": {"kind": "macro_3gpp", "shadowing_std_db": 8},
    "channel.allocator": {"kind": "minmax_latency", "solver": "bisection"},
    "devices.availability": {"kind": "markov", "mean_online_s": 0.05, "mean_offline_s": 0.02},
    "data.partition": {"kind": "dirichlet", "alpha": 0.5},
    "strategy.clients_per_round": 3,
}


def _run(seed):
    return run(make_scenario({**STOCHASTIC, "seed": seed}), out_root=None)


def test_same_seed_gives_identical_events_and_metrics():
    a, b = _run(5), _run(5)
    assert a.events.num_rows > 0
    assert same_table(a.events, b.events)
    assert same_table(a.metrics, b.metrics)


def test_different_seed_gives_different_results():
    a, b = _run(5), _run(6)
    assert not same_table(a.events, b.events)
    assert (
        a.metrics.column("round_latency_s").to_pylist()
        != b.metrics.column("round_latency_s").to_pylist()
    )
