"""FLoRAL inside runs: what travels each way, the oracle router, the local-adaptor baseline,
refused settings, and the outcomes table."""

from __future__ import annotations

import pytest

from simulator.engine.runner import run
from simulator.errors import ScenarioError
from tests.conftest import make_scenario

CLUSTERED = {"kind": "clustered", "groups": 2, "shift": "label_permutation"}


def _floral(**strategy):
    return make_scenario({
        "devices.count": 6, "simulation.rounds": 3, "data.partition": CLUSTERED,
        "data.local_test_fraction": 0.25, "model.hidden": [16],
        "strategy": {"kind": "floral", "adaptors": 2, "rho": 0.1, **strategy},
    })  # fmt: skip


def _floats(adaptors: int) -> tuple[int, int]:
    """(base, adaptors) floats of the digits MLP 64-16-10 at rho 0.1: ranks 1 and 1."""
    base = 64 * 16 + 16 + 16 * 10 + 10
    per = (1 * 64 + 16 * 1 + 16) + (1 * 16 + 10 * 1 + 10)
    return base, adaptors * per


def test_base_and_every_adaptor_travel_both_ways_and_the_router_goes_up():
    result = run(_floral(), out_root=None)
    m = result.metrics.to_pandas()
    base, adaptors = _floats(2)
    assert (m.bits_down == 6 * 32 * (base + adaptors)).all()
    assert (m.bits_up == 6 * 32 * (base + adaptors + 2)).all()
    assert m.extra_params_fraction.iloc[0] == pytest.approx(adaptors / base)
    assert m.personal_accuracy_mean.notna().any() and m.router_entropy.notna().all()


def test_the_oracle_router_is_pure_and_never_trained():
    m = run(_floral(router="oracle"), out_root=None).metrics.to_pandas()
    assert (m.router_purity == 1.0).all() and (m.router_entropy < 1e-30).all()


def test_local_adaptors_keep_adaptors_and_router_on_the_device():
    m = run(_floral(private_adaptors=True), out_root=None).metrics.to_pandas()
    base, _ = _floats(1)
    assert (m.bits_up == 6 * 32 * base).all() and (m.bits_down == 6 * 32 * base).all()


def test_a_cnn_is_refused_naming_the_model_kind():
    from simulator.engine.world import build

    with pytest.raises(ScenarioError, match=r"s\.yaml: model\.kind: expected mlp \(FLoRAL"):
        build(make_scenario({"model": {"kind": "cnn"}, "strategy": {"kind": "floral"}}), "s.yaml")


def test_the_oracle_router_needs_true_groups():
    scenario = make_scenario({"devices.count": 4, "simulation.rounds": 1,
                              "strategy": {"kind": "floral", "router": "oracle"}})  # fmt: skip
    from simulator.engine.world import build

    with pytest.raises(ScenarioError, match=r"strategy\.router"):
        build(scenario, "s.yaml")
