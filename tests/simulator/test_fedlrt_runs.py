"""FeDLRT inside runs: legs and barriers, bits from the tensors each message carries, ranks in
metrics, systems-only rank schedules, and the settings that cannot work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simulator.engine.runner import run
from simulator.errors import ScenarioError
from simulator.loader import load_scenario
from tests.conftest import make_scenario

LOW = {"rank": 4, "r_min": 2, "r_max": 8}
FEDLRT = {"kind": "fedlrt", "tau": 0.1, "variance_correction": "full", "gradient_batches": 2}


def _fedlrt(**over):
    return make_scenario({"model": {"kind": "mlp", "hidden": [32], "low_rank": LOW},
                          "strategy": FEDLRT, "simulation.rounds": 4, **over})  # fmt: skip


def _uplink_floats(n, m, r, dense, vc="full"):
    basis = (n + m) * r + (r * r if vc == "simplified" else 0)
    correction = 4 * r * r if vc == "full" else 0
    return basis + correction + 4 * r * r + dense


def test_a_round_has_the_notes_legs_and_bits_from_the_ranks():
    result = run(_fedlrt(), out_root=None)
    ev, m = result.events.to_pandas(), result.metrics.to_pandas()
    barriers = ev[(ev.event == "barrier") & (ev["round"] == 0)].detail.tolist()
    assert barriers == ["augment", "correct"]
    legs = set(ev[ev["round"] == 0].leg) - {""}
    assert legs == {"factors_down", "basis_grads", "basis_grads_up", "new_directions_down",
                    "correction_grads", "correction_up", "correction_down",
                    "coefficient_steps", "coefficients_up"}  # fmt: skip
    # digits MLP [32]: the 32 x 64 layer is factored; dense: its bias, the 10 x 32 classifier
    dense = 32 + 32 * 10 + 10
    ranks = [4, *m.rank_1.tolist()[:-1]]  # the rank each round trained at
    for row, r in zip(m.itertuples(), ranks, strict=True):
        assert row.bits_up == row.n_delivered * 32 * _uplink_floats(32, 64, int(r), dense)
    assert m.compression_vs_fedavg_up.iloc[0] == pytest.approx(
        (32 * 64 + dense) / _uplink_floats(32, 64, 4, dense)
    )
    assert m.sv_tail_1.between(0, 1).all()


def test_systems_only_keeps_the_initial_rank_or_follows_a_previous_run(tmp_path):
    fixed = run(_fedlrt(training="none"), out_root=None).metrics.to_pandas()
    dense = 32 + 32 * 10 + 10
    assert (fixed.bits_up == 4 * 32 * _uplink_floats(32, 64, 4, dense)).all()
    table = tmp_path / "metrics.parquet"
    pq.write_table(pa.table({"rank_1": [6.0, 8.0, 3.0]}), table)
    ranks = {**FEDLRT, "systems_ranks": {"kind": "from_metrics", "path": str(table)}}
    follow = run(_fedlrt(training="none", strategy=ranks), out_root=None).metrics.to_pandas()
    # round r trains at the rank round r - 1 of the earlier run ended with (4 in round 0)
    expected = [4 * 32 * _uplink_floats(32, 64, r, dense) for r in (4, 6, 8, 3)]
    assert follow.bits_up.tolist() == expected


def test_a_512_by_512_layer_sends_at_least_10x_fewer_bits_than_fedavg():
    common = {"training": "none", "simulation.rounds": 2,
              "data": {"kind": "synthetic", "dim": 512, "num_classes": 10}}  # fmt: skip
    factored = {"kind": "mlp", "hidden": [512], "low_rank": {"rank": 8, "r_max": 64}}
    low = run(_fedlrt(**common, model=factored), out_root=None)
    full = run(make_scenario({**common, "model": {"kind": "mlp", "hidden": [512]},
                              "strategy": {"kind": "fedavg"}}), out_root=None)  # fmt: skip
    ratio = full.summary["bits_up"] / low.summary["bits_up"]
    assert ratio >= 10, ratio
    dense = 512 + 512 * 10 + 10
    assert ratio == pytest.approx((512 * 512 + dense) / _uplink_floats(512, 512, 8, dense))


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"model": {"kind": "mlp", "hidden": [32]}}, "model.low_rank"),
        ({"strategy": {"kind": "fedavg"}}, "model.low_rank"),
        (
            {"model": {"kind": "mlp", "hidden": [32], "low_rank": {"rank": 4, "r_max": 20}}},
            "model.low_rank.r_max",
        ),  # fmt: skip
        (
            {
                "training": "none",
                "strategy": {
                    **FEDLRT,
                    "systems_ranks": {"kind": "from_metrics", "path": "/nope.parquet"},
                },
            },
            "strategy.systems_ranks.path",
        ),  # fmt: skip
    ],
)
def test_settings_that_cannot_work_name_the_field(over, field):
    from simulator.engine.world import build

    with pytest.raises(ScenarioError) as err:
        build(_fedlrt(**over), "s.yaml")
    assert f"s.yaml: {field}: expected" in str(err.value)


def test_a_previous_run_without_rank_columns_is_a_clear_error(tmp_path):
    from simulator.engine.world import build

    table = tmp_path / "metrics.parquet"
    pq.write_table(pa.table({"accuracy": [0.5]}), table)
    ranks = {**FEDLRT, "systems_ranks": {"kind": "from_metrics", "path": str(table)}}
    with pytest.raises(ScenarioError, match=r"strategy\.systems_ranks\.path: .*rank_1"):
        build(_fedlrt(training="none", strategy=ranks), "s.yaml")


def test_the_scenario_runs_and_is_reproducible():
    scenario = load_scenario("scenarios/fedlrt.yaml", ["simulation.rounds=3"])
    a, b = run(scenario, out_root=None), run(scenario, out_root=None)
    pd.testing.assert_frame_equal(a.events.to_pandas(), b.events.to_pandas())
    pd.testing.assert_frame_equal(a.metrics.to_pandas(), b.metrics.to_pandas())
    assert np.isfinite(a.metrics.to_pandas().accuracy.iloc[-1])
