"""``output.events``: all, the server's rows only, or none; the metrics never change."""

from __future__ import annotations

from simulator.engine.recorder import SERVER
from simulator.engine.runner import run
from tests.conftest import make_scenario

DEADLINE = {
    "simulation.deadline_s": 0.02,
    "channel.fading": {"kind": "rayleigh", "coherence_s": 0.01},
}


def test_rounds_keeps_the_server_rows_and_none_keeps_nothing():
    every = run(make_scenario(DEADLINE), out_root=None)
    rounds = run(make_scenario({**DEADLINE, "output.events": "rounds"}), out_root=None)
    none = run(make_scenario({**DEADLINE, "output.events": "none"}), out_root=None)
    all_rows = every.events.to_pandas()
    server = all_rows[all_rows.device_id == SERVER].reset_index(drop=True)
    got = rounds.events.to_pandas()
    assert len(got) == len(server) > 0
    for column in ("time_s", "device_id", "round"):
        assert got[column].tolist() == server[column].tolist()
    assert got.event.astype(str).tolist() == server.event.astype(str).tolist()
    assert none.events.num_rows == 0 and none.events.schema == every.events.schema
    assert every.metrics.to_pandas().equals(rounds.metrics.to_pandas())
    assert every.metrics.to_pandas().equals(none.metrics.to_pandas())
    assert none.summary["events"] == 0


def test_failure_reasons_survive_without_events():
    nobody = {"devices.tx_power_dbm": -100, "simulation.deadline_s": 0.05, "output.events": "none"}
    result = run(make_scenario(nobody), out_root=None)
    assert result.summary["status"] == "no_deliveries"
    assert "failure reasons: deadline" in result.summary["notes"][0]
