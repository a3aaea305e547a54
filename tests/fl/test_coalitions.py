"""Coalition formation and aggregation by hand (fl/coalitions.py, fl/strategies/coalition.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl.coalitions import kmeans, purity, threshold_formation
from fl.config import CoalitionConfig
from fl.state import ClientUpdate
from fl.strategies.coalition import CoalitionFL


def _update(device: int, xy, n: int = 1) -> ClientUpdate:
    return ClientUpdate(device, 0, {"w": torch.tensor(xy, dtype=torch.float32)}, n)


def _strategy(**cfg) -> CoalitionFL:
    config = CoalitionConfig(kind="coalitions", **cfg)
    return CoalitionFL(config, initial_state={"w": torch.zeros(2)}, num_devices=4)


@pytest.mark.parametrize(
    ("barycenter", "combine", "b0", "global_xy"),
    [
        ("equal", "equal", [1.0, 1.0], [3.0, 3.0]),  # (1,1) and (5,5) averaged
        ("equal", "size", [1.0, 1.0], [2.0, 2.0]),  # 3 members vs 1: (3*(1,1) + (5,5)) / 4
        ("examples", "equal", [1.0, 1.5], [3.0, 3.25]),  # (0,0)x1 (2,0)x1 (1,3)x2 -> (1,1.5)
        ("examples", "examples", [1.0, 1.5], [2.6, 2.9]),  # 4 examples vs 6 ... by hand below
    ],
)
def test_barycenters_and_the_server_combination_on_a_2d_toy(barycenter, combine, b0, global_xy):
    returns = "barycenter" if (barycenter, combine) == ("examples", "examples") else "global"
    s = _strategy(barycenter=barycenter, combine=combine, returns=returns)
    s.membership = np.array([0, 0, 0, 1])
    updates = [_update(0, [0, 0]), _update(1, [2, 0]), _update(2, [1, 3], 2), _update(3, [5, 5], 6)]
    new = s.aggregate(round_idx=0, global_state={"w": torch.zeros(2)}, updates=updates, failures=[])
    np.testing.assert_allclose(s.barycenters[0]["w"].numpy(), b0, rtol=1e-6)
    np.testing.assert_allclose(s.barycenters[1]["w"].numpy(), [5.0, 5.0])
    if combine == "examples":  # coalition 0 holds 4 examples, coalition 1 holds 6
        global_xy = [(4 * 1.0 + 6 * 5.0) / 10, (4 * 1.5 + 6 * 5.0) / 10]
    np.testing.assert_allclose(new["w"].numpy(), global_xy, rtol=1e-6)


def test_one_kmeans_step_from_a_wrong_warm_start_by_hand():
    # two groups around (0, 0) and (10, 10); device 2 starts in the wrong coalition
    x = np.array([[0.0, 0.0], [1.0, 0.0], [9.0, 10.0], [10.0, 10.0], [10.0, 11.0]])
    start = np.array([0, 0, 0, 1, 1])
    labels, iterations = kmeans(x, 2, np.random.default_rng(0), max_iter=1, start=start)
    # centres from the start: (10/3, 10/3) and (10, 10.5); device 2 is 8.75 from the first,
    # 1.12 from the second, so it moves
    assert labels.tolist() == [0, 0, 1, 1, 1] and iterations == 1
    again, iterations = kmeans(x, 2, np.random.default_rng(0), max_iter=10, start=labels)
    assert again.tolist() == [0, 0, 1, 1, 1] and iterations == 1  # nothing moves: converged


def test_an_empty_coalition_is_reseeded_with_the_farthest_device():
    x = np.array([[0.0], [1.0], [2.0], [50.0]])
    labels, _ = kmeans(x, 2, np.random.default_rng(0), max_iter=5, start=np.array([0, 0, 0, 0]))
    assert labels.tolist() == [0, 0, 0, 1]


def test_kmeanspp_finds_well_separated_groups_and_threshold_lets_k_emerge():
    rng = np.random.default_rng(3)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], dtype=float)
    truth = np.repeat(np.arange(4), 5)
    x = centres[truth] + rng.normal(0, 0.5, (20, 2))
    labels, _ = kmeans(x, 4, np.random.default_rng(1), n_init=10)
    assert purity(labels, truth) == 1.0
    grown = threshold_formation(x, threshold=0.3)
    assert grown.max() + 1 == 4 and purity(grown, truth) == 1.0


def test_purity_by_hand():
    labels = np.array([0, 0, 1, 1, 1, -1])
    truth = np.array([0, 0, 0, 1, 1, 3])
    # coalition 0: both group 0 (2); coalition 1: groups 0, 1, 1 (2); the unplaced one is out
    assert purity(labels, truth) == pytest.approx(4 / 5)


def test_examples_weights_at_both_levels_returning_the_global_model_is_refused():
    from tests.conftest import make_scenario

    bad = {"kind": "coalitions", "barycenter": "examples", "combine": "examples"}
    with pytest.raises(Exception, match=r"strategy\.returns: expected barycenter"):
        make_scenario({"strategy": bad})
