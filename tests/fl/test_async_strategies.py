"""Staleness functions, FedAsync's mixing and FedBuff's buffered step, worked out by hand."""

import pytest
import torch

from fl.staleness import Staleness
from fl.state import ClientUpdate
from fl.strategies.fedasync import FedAsync
from fl.strategies.fedbuff import FedBuff


def test_staleness_functions_by_hand():
    assert Staleness("constant")(7) == 1.0
    poly = Staleness("polynomial", a=0.5)
    assert poly(0) == 1.0 and poly(3) == pytest.approx(0.5)  # (3 + 1)^-0.5
    hinge = Staleness("hinge", a=10, b=4)
    assert hinge(4) == 1.0 and hinge(5) == pytest.approx(1 / 11)  # 1 / (10 * 1 + 1)
    with pytest.raises(ValueError):
        poly(-1)


def update(device, base_version, values, start=None, n=1):
    state = {"w": torch.tensor(values)}
    start_state = None if start is None else {"w": torch.tensor(start)}
    return ClientUpdate(device, base_version, state, n, start_state=start_state)


def test_fedasync_mixes_with_staleness_weighted_alpha():
    # alpha = 0.6, polynomial a = 0.5, staleness 3 -> alpha_t = 0.6 * 0.5 = 0.3
    strategy = FedAsync(alpha=0.6, staleness=Staleness("polynomial", a=0.5))
    new = strategy.on_arrival(
        global_state={"w": torch.tensor([0.0, 10.0])},
        version=5,
        update=update(0, 2, [10.0, 0.0]),
        now_s=1.0,
    )
    torch.testing.assert_close(new["w"], torch.tensor([3.0, 7.0]))


def test_fedbuff_publishes_the_mean_weighted_delta_every_k():
    strategy = FedBuff(buffer_size=2, server_lr=0.5, staleness=Staleness("polynomial", a=1.0))
    g = {"w": torch.tensor([1.0, 1.0])}
    # delta_1 = start - trained = [2, 0] at staleness 0 (weight 1): buffered, nothing published
    assert (
        strategy.on_arrival(
            global_state=g, version=3, now_s=0.0, update=update(0, 3, [0.0, 1.0], start=[2.0, 1.0])
        )
        is None
    )
    # delta_2 = [0, 4] at staleness 1 (weight 1/2): flush
    new = strategy.on_arrival(
        global_state=g, version=3 + 1, now_s=1.0, update=update(1, 3, [1.0, -3.0], start=[1.0, 1.0])
    )
    # w - 0.5 * (1 * [2, 0] + 0.5 * [0, 4]) / 2 = [1, 1] - 0.5 * [1, 1] = [0.5, 0.5]
    torch.testing.assert_close(new["w"], torch.tensor([0.5, 0.5]))
    # the buffer is empty again: the next arrival alone publishes nothing
    assert (
        strategy.on_arrival(
            global_state=new,
            version=5,
            now_s=2.0,
            update=update(0, 4, [0.0, 0.0], start=[0.0, 0.0]),
        )
        is None
    )


def test_fedbuff_example_weighting():
    strategy = FedBuff(buffer_size=2, staleness=Staleness("constant"), weighting="examples")
    g = {"w": torch.tensor([0.0])}
    strategy.on_arrival(
        global_state=g, version=0, now_s=0.0, update=update(0, 0, [-1.0], start=[0.0], n=1)
    )
    new = strategy.on_arrival(
        global_state=g, version=0, now_s=0.0, update=update(1, 0, [-5.0], start=[0.0], n=3)
    )
    # deltas 1 and 5 weighted 1/4 and 3/4: step 4 -> w = -4 (the examples-weighted mean model)
    torch.testing.assert_close(new["w"], torch.tensor([-4.0]))


def test_fedbuff_skips_updates_that_did_not_move_and_still_publishes_every_k():
    """An update that is its own starting model (systems-only runs) adds nothing to the step:
    a buffer of only such updates publishes the same model, one of them among moved updates
    changes nothing but the weights' normalisation (shares still count every arrival)."""
    strategy = FedBuff(buffer_size=2, server_lr=1.0, staleness=Staleness("constant"))
    g = {"w": torch.tensor([1.0, 2.0])}
    still = ClientUpdate(0, 0, g, 1, start_state=g)
    assert strategy.on_arrival(global_state=g, version=0, now_s=0.0, update=still) is None
    assert strategy.on_arrival(global_state=g, version=0, now_s=1.0, update=still) is g
    # one still update and one with delta [2, 0]: step (0 + [2, 0]) / 2 -> w = [0, 2]
    strategy.on_arrival(global_state=g, version=1, now_s=2.0, update=still)
    new = strategy.on_arrival(
        global_state=g, version=1, now_s=3.0, update=update(1, 1, [-1.0, 2.0], start=[1.0, 2.0])
    )
    torch.testing.assert_close(new["w"], torch.tensor([0.0, 2.0]))
