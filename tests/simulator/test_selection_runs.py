"""Selection policies and the baselines inside runs: the same draws as the strategies' own,
choices from the channel of the block in force at selection, the selected set as events,
Jain's fairness, refused settings, a policy that picks nobody, and FedProx / SCAFFOLD traffic."""

from __future__ import annotations

import numpy as np
import pytest

from channels.link import shannon_rate_bps
from fl.selection import jain_index
from simulator.engine.runner import run
from simulator.engine.world import build
from simulator.errors import ScenarioError
from tests.conftest import make_scenario, run_wedge

RAYLEIGH = {"kind": "rayleigh", "coherence_s": 0.05}


def _scenario(**over):
    return make_scenario({
        "devices.count": 8, "simulation.rounds": 4, "channel.fading": RAYLEIGH,
        "channel.pathloss.shadowing_std_db": 8, **over,
    })  # fmt: skip


def _without_selected(events):
    e = events.to_pandas()
    e = e.astype({k: str for k in ("event", "detail", "leg")})  # dictionaries differ
    return e[e.event != "selected"].reset_index(drop=True)


def test_random_selection_reproduces_the_strategys_own_cohorts():
    own = run(_scenario(**{"strategy.clients_per_round": 3}), out_root=None)
    policy = run(_scenario(selection={"kind": "random", "clients_per_round": 3}), out_root=None)
    assert own.metrics.to_pandas().equals(policy.metrics.to_pandas())
    assert _without_selected(own.events).equals(_without_selected(policy.events))


def test_channel_aware_picks_the_best_pilots_of_the_block_at_selection():
    scenario = _scenario(selection={"kind": "channel_aware", "clients_per_round": 3})
    result = run(scenario, out_root=None)
    e = result.events.to_pandas()
    world = build(scenario)
    every = np.arange(8)
    starts = e[e.event == "round_start"].set_index("round").time_s
    for r, chosen in e[e.event == "selected"].groupby("round").device_id:
        # recomputed from the links: this block's uplink SNR at an equal third of the band
        gamma = world.uplink.gamma_hz(
            link_ids=every, distance_m=world.population.distance_m,
            tx_power_dbm=world.population.tx_power_dbm, t_s=float(starts[r]),
        )  # fmt: skip
        rate = shannon_rate_bps(1e6 / 3, gamma)
        assert sorted(chosen.tolist()) == sorted(np.argsort(-rate)[:3].tolist())
    assert e[e.event == "selected"].groupby("round").size().tolist() == [3, 3, 3, 3]


def test_selected_events_and_jain_fairness_agree():
    result = run(_scenario(selection={"kind": "channel_aware", "clients_per_round": 2}),
                 out_root=None)  # fmt: skip
    e = result.events.to_pandas()
    m = result.metrics.to_pandas()
    counts = np.zeros(8)
    for r in range(4):
        counts[e[(e.event == "selected") & (e["round"] == r)].device_id.to_numpy()] += 1
        assert m.jain_fairness.iloc[r] == pytest.approx(jain_index(counts))
    # without a selection section every online device is chosen each round: perfectly fair
    assert (run(_scenario(), out_root=None).metrics.to_pandas().jain_fairness == 1.0).all()


def test_oort_and_power_of_choice_runs_are_reproducible():
    for sel in ({"kind": "oort", "clients_per_round": 3},
                {"kind": "power_of_choice", "clients_per_round": 3}):  # fmt: skip
        a = run(_scenario(selection=sel, **{"simulation.rounds": 6}), out_root=None)
        b = run(_scenario(selection=sel, **{"simulation.rounds": 6}), out_root=None)
        assert a.metrics.to_pandas().equals(b.metrics.to_pandas())
        assert a.events.to_pandas().equals(b.events.to_pandas())


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"strategy": {"kind": "fedasync"}}, r"selection: expected no selection section with "
                                             r"the asynchronous strategy 'fedasync'"),
        ({"strategy.clients_per_round": 2}, r"strategy\.clients_per_round: expected unset"),
        ({"training.mode": "none", "selection.kind": "oort"},
         r"selection\.kind: expected a selector that needs no loss reports"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_with_a_selection_are_refused(over, match):
    base = {"selection": {"kind": "random", "clients_per_round": 2}}
    with pytest.raises(ScenarioError, match=match):
        build(make_scenario({**base, **over}), "s.yaml")


def test_a_policy_that_picks_nobody_ends_the_run_with_a_status(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: broke\nsimulation: {rounds: 3}\ndevices: {count: 4, cpu_hz: 1.0e8, "
        "cycles_per_sample: 1.0e5, tx_power_dbm: 20}\nstrategy: {kind: fedavg}\n"
        "selection: {kind: energy_aware, budget_j: 1.0e-9}\n"
    )
    done = run_wedge("run", str(path), "--out", str(tmp_path / "runs"))
    assert done.returncode == 1, done.stderr
    assert "status none_selected" in done.stdout
    assert "the energy_aware selection chose no device among 4 online" in done.stdout


def test_fedprox_with_mu_zero_is_fedavg_and_scaffold_sends_twice_the_bits():
    fedavg = run(_scenario(), out_root=None).metrics.to_pandas()
    prox0 = run(_scenario(strategy={"kind": "fedprox", "mu": 0.0}), out_root=None)
    assert prox0.metrics.to_pandas().equals(fedavg)
    scaffold = run(_scenario(strategy={"kind": "scaffold"}), out_root=None).metrics.to_pandas()
    assert (scaffold.bits_up == 2 * fedavg.bits_up).all()
    assert (scaffold.bits_down == 2 * fedavg.bits_down).all()
    assert scaffold.accuracy.notna().any()
