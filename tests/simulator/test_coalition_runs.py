"""Coalition FL inside runs: re-forming as timed events, head relays over D2D timed from the
pair channel, heads that go offline, FedAvg as the K = 1 special case, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.engine.runner import run, simulate
from simulator.loader import load_scenario
from tests.conftest import make_scenario

D2D = {"pathloss": {"kind": "log_distance", "exponent": 3.0, "ref_loss_db": 40,
                    "shadowing_std_db": 0}, "fading": {"kind": "none"},
       "band": {"kind": "dedicated", "bandwidth_hz": 1e6}}  # fmt: skip
CLUSTERED = {"kind": "clustered", "groups": 2, "shift": "label_permutation"}


def _coalitions(**strategy) -> dict:
    return {
        "devices.count": 8,
        "data.partition": CLUSTERED,
        "data.local_test_fraction": 0.25,
        "simulation.rounds": 6,
        "strategy": {"kind": "coalitions", "coalitions": 2, "returns": "barycenter", **strategy},
    }


def test_reforming_happens_at_the_configured_rounds_with_its_own_events():
    over = {**_coalitions(reform={"every_rounds": 3})}
    recorder, ctx, _ = simulate(make_scenario(over))
    ev = recorder.events_table().to_pandas()
    reforms = ev[ev.event == "reform"]
    publish = ev[ev.event == "publish"].set_index("round").time_s
    assert reforms["round"].tolist() == [0, 3]
    np.testing.assert_array_equal(reforms.time_s, publish.loc[[0, 3]])
    # round 0 places every device (-1 -> c); later moves are logged one event per device
    first = ev[(ev.event == "coalition_change") & (ev["round"] == 0)]
    assert sorted(first.device_id) == list(range(8))
    assert all(d.startswith("-1 -> ") for d in first.detail)
    m = recorder.metrics_table().to_pandas()
    assert m.coalition_moves.iloc[0] == 8 and (m.coalition_moves.iloc[[1, 2, 4, 5]] == 0).all()
    assert m.within_coalition_distance.notna().tolist() == [True, False, False, True, False, False]


def test_reforming_every_s_is_due_at_each_multiple_and_done_at_the_next_round():
    over = {**_coalitions(reform={"every_s": 0.05}), "simulation.rounds": 10}
    recorder, _, _ = simulate(make_scenario(over))
    ev = recorder.events_table().to_pandas()
    due = ev[ev.event == "reform_due"].time_s.to_numpy()
    np.testing.assert_allclose(due, 0.05 * np.arange(1, due.size + 1), rtol=0, atol=1e-12)
    starts = ev[ev.event == "round_start"].set_index("round").time_s
    publish = ev[ev.event == "publish"].set_index("round").time_s
    expected = [0]  # the first coalitions
    for t in due:
        later = starts[starts >= t]
        if len(later) and later.index[0] not in expected:
            expected.append(int(later.index[0]))
    reforms = ev[ev.event == "reform"]
    assert len(reforms) >= 3
    assert reforms["round"].tolist() == [r for r in expected if r in publish.index]
    np.testing.assert_array_equal(reforms.time_s, publish.loc[reforms["round"]].to_numpy())


def test_head_relays_are_timed_from_the_pair_channel_by_hand():
    over = {
        **_coalitions(communication="head_d2d", head="best_channel"),
        "channel.d2d": D2D,
        "channel.pathloss": {"kind": "macro_3gpp", "shadowing_std_db": 0},
        "channel.fading": {"kind": "none"},
    }
    result = run(make_scenario(over), out_root=None)
    ev, dev = result.events.to_pandas(), result.devices.to_pandas()
    starts = ev[ev.event == "d2d_start"]
    assert len(starts) > 0 and (starts.leg == "to_head").all()
    heads = _heads(ev)
    membership = _membership(ev)
    bits = 32 * sum(v for v in _model_params(result))
    for _, row in starts.iterrows():
        sender = int(row.device_id)
        head = heads[membership[sender]]
        d = np.hypot(dev.x_m[sender] - dev.x_m[head], dev.y_m[sender] - dev.y_m[head])
        gain = 10 ** (-(40 + 30 * np.log10(d)) / 10)
        p_w = 10 ** ((dev.tx_power_dbm[sender] - 30) / 10)
        n0 = 10 ** ((-174 - 30) / 10)
        senders = int((starts["round"] == row["round"]).sum())
        band = 1e6 / senders
        rate = band * np.log2(1 + p_w * gain / (n0 * band))
        assert row.bandwidth_hz == pytest.approx(band)
        assert row.duration_s == pytest.approx(bits / rate, rel=1e-9)
    # only heads upload in relay rounds: 2 uploads instead of 8
    ups = ev[(ev.event == "upload_done") & (ev["round"] == 1)]
    assert sorted(ups.device_id) == sorted(heads.values())


def _heads(ev: pd.DataFrame) -> dict[int, int]:
    detail = ev[ev.event == "reform"].detail.iloc[0]  # "2 coalitions; heads 0:5, 1:3"
    pairs = detail.split("heads ")[1].split(", ")
    return {int(c): int(d) for c, d in (p.split(":") for p in pairs)}


def _membership(ev: pd.DataFrame) -> dict[int, int]:
    moves = ev[(ev.event == "coalition_change") & (ev["round"] == 0)]
    return {int(r.device_id): int(r.detail.split(" -> ")[1]) for r in moves.itertuples()}


def _model_params(result) -> list[int]:
    # mlp [8] on digits: 64*8 + 8 + 8*10 + 10
    return [64 * 8 + 8 + 8 * 10 + 10]


def test_members_of_an_offline_head_fail_with_head_failed(tmp_path):
    over = {**_coalitions(communication="head_d2d"), "channel.d2d": D2D}
    scenario = make_scenario(over)
    first = run(scenario, out_root=None).events.to_pandas()
    heads, membership = _heads(first), _membership(first)
    gone = heads[0]
    end0 = first[first.event == "publish"].time_s.iloc[0]
    trace = tmp_path / "online.csv"
    rows = ["device_id,online_from_s,online_until_s"]
    rows += [f"{d},0,1e9" if d != gone else f"{d},0,{end0 + 1e-6}" for d in range(8)]
    trace.write_text("\n".join(rows) + "\n")
    again = make_scenario({**over, "devices.availability": {"kind": "trace", "path": str(trace)}})
    ev = run(again, out_root=None).events.to_pandas()
    members = [d for d, c in membership.items() if c == 0 and d != gone]
    assert members  # the head has members to strand
    failed = ev[(ev.event == "failure") & (ev["round"] == 1)]
    assert sorted(failed[failed.detail == "head_failed"].device_id) == sorted(members)


def test_one_coalition_with_example_weights_is_fedavg():
    base = {"devices.count": 6, "simulation.rounds": 3, "data.partition": {"kind": "iid"}}
    fedavg, _, _ = simulate(make_scenario({**base, "strategy": {"kind": "fedavg"}}))
    one = {"kind": "coalitions", "coalitions": 1, "barycenter": "examples", "combine": "size",
           "returns": "global", "reform": {"every_rounds": 1}}  # fmt: skip
    coal, _, _ = simulate(make_scenario({**base, "strategy": one}))
    a, b = fedavg.metrics_table().to_pandas(), coal.metrics_table().to_pandas()
    np.testing.assert_allclose(a.accuracy, b.accuracy, atol=1e-6)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5)


def test_same_seed_same_event_log():
    scenario = load_scenario("scenarios/coalitions.yaml", ["simulation.rounds=12"])
    a = run(scenario, out_root=None).events.to_pandas()
    b = run(scenario, out_root=None).events.to_pandas()
    pd.testing.assert_frame_equal(a, b)


def test_compare_writes_the_outcomes_table(tmp_path):
    from pathlib import Path

    import yaml

    from simulator.studies.compare import run_comparison

    base = Path("scenarios/coalitions.yaml").resolve()
    short = {"simulation.rounds": 4, "strategy.reform": {"every_rounds": 2}}
    spec = {
        "base": str(base), "kind": "outcomes", "reference": "fedavg", "seeds": [1],
        "variants": {
            "fedavg": {**short, "strategy": {"kind": "fedavg"}, "channel.d2d": None},
            "coalitions_server": {**short, "strategy.communication": "server", "channel.d2d": None},
            "coalitions_d2d": short,
        },
    }  # fmt: skip
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # overrides apply in file order
    table, runs, folder = run_comparison(path, tmp_path / "runs")
    written = pd.read_csv(folder / "table.csv")
    for column in ("purity", "personal_accuracy_mean", "accuracy", "bits_up", "bits_d2d",
                   "cumulative_latency_s"):  # fmt: skip
        assert column in written.columns
    t = written.set_index("variant")
    assert np.isnan(t.purity["fedavg"]) and t.bits_d2d["fedavg"] == 0
    assert t.bits_d2d["coalitions_d2d"] > 0 and t.bits_d2d["coalitions_server"] == 0
    # 20 devices, 4 rounds, reform rounds 0 and 2 upload individually, rounds 1 and 3 heads only
    per_model = t.bits_up["coalitions_server"] / (4 * 20)
    assert t.bits_up["coalitions_d2d"] == pytest.approx(per_model * (20 + 4 + 20 + 4))
    assert (folder / "comparison.png").stat().st_size > 0
