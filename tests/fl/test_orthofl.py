"""OrthoFL's projection, moving average, first-update rule and both shift sources, by hand."""

import math

import pytest
import torch

from fl.staleness import Staleness
from fl.state import ClientUpdate
from fl.strategies.orthofl import OrthoFL, orthogonal_shift


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_layerwise_projection_on_a_two_layer_toy():
    own = {"layer1.weight": t(1.0, 0.0), "layer2.weight": t(0.0, 2.0)}
    shift = {"layer1.weight": t(1.0, 1.0), "layer2.weight": t(3.0, 4.0)}
    out = orthogonal_shift(shift, own)
    # layer 1: [1,1] - (1/1) [1,0] = [0,1]; layer 2: [3,4] - (8/4) [0,2] = [3,0]
    torch.testing.assert_close(out["layer1.weight"], t(0.0, 1.0))
    torch.testing.assert_close(out["layer2.weight"], t(3.0, 0.0))
    # each result is orthogonal to the device's own update of that layer
    for k in own:
        assert float(out[k] @ own[k]) == pytest.approx(0.0, abs=1e-7)


def test_whole_model_projection_ablation():
    own = {"a": t(1.0, 0.0), "b": t(0.0, 2.0)}
    shift = {"a": t(1.0, 1.0), "b": t(3.0, 4.0)}
    out = orthogonal_shift(shift, own, layerwise=False)
    # one inner product over both tensors: <shift, own> = 1 + 8 = 9, ||own||^2 = 5
    torch.testing.assert_close(out["a"], t(1.0 - 9 / 5, 1.0))
    torch.testing.assert_close(out["b"], t(3.0, 4.0 - 9 / 5 * 2))


def test_zero_own_update_passes_the_shift_through_and_bn_is_left_alone():
    own = {"w": t(0.0, 0.0), "bn.weight": t(1.0, 1.0), "bn.num_batches_tracked": torch.tensor(3)}
    shift = {"w": t(1.0, 2.0), "bn.weight": t(5.0, 5.0), "bn.num_batches_tracked": torch.tensor(1)}
    out = orthogonal_shift(shift, own, epsilon=1e-19)
    torch.testing.assert_close(out["w"], t(1.0, 2.0))
    assert set(out) == {"w"}  # BatchNorm tensors and integer buffers are not calibrated


def arrival(strategy, device, version, trained, global_state):
    sent = strategy.dispatch_state(device_id=device, global_state=global_state)
    update = ClientUpdate(device, version, {"w": trained}, 1, start_state=sent)
    return strategy.on_arrival(global_state=global_state, version=version, update=update, now_s=0)


def make(shift_source):
    return OrthoFL(
        initial_state={"w": t(0.0, 0.0)},
        alpha=0.6,
        staleness=Staleness("polynomial", a=0.5),
        shift_source=shift_source,
    )


def test_paper_variant_moving_average_and_calibration_by_hand():
    s = make("global_ma")
    g0 = {"w": t(0.0, 0.0)}
    # first server update adopts the arriving model (beta = 1); own shift only -> no calibration
    g1 = arrival(s, 0, 0, t(2.0, 0.0), g0)
    torch.testing.assert_close(g1["w"], t(2.0, 0.0))
    torch.testing.assert_close(s.dispatch_state(device_id=0, global_state=g1)["w"], t(2.0, 0.0))
    # device 1 synced at version 0, arrives at version 1: staleness 1, beta = 0.6 / sqrt(2)
    beta = 0.6 / math.sqrt(2.0)
    g2 = arrival(s, 1, 1, t(0.0, 2.0), g1)
    torch.testing.assert_close(g2["w"], t(2 - 2 * beta, 2 * beta))
    # shift = W2 - W0 = [2 - 2b, 2b]; own update [0, 2] removes the second coordinate
    torch.testing.assert_close(
        s.dispatch_state(device_id=1, global_state=g2)["w"], t(2 - 2 * beta, 2.0)
    )
    # the device never receives W itself: its model differs from the global one
    assert not torch.allclose(s.dispatch_state(device_id=1, global_state=g2)["w"], g2["w"])


def test_reference_code_variant_follows_the_dispatched_chain():
    s = make("dispatched_chain")
    g1 = arrival(s, 0, 0, t(2.0, 0.0), {"w": t(0.0, 0.0)})  # D - D_0 = 0: reply [2, 0]
    g2 = arrival(s, 1, 1, t(0.0, 2.0), g1)  # shift D - D_1 = [2, 0], orthogonal to [0, 2]
    torch.testing.assert_close(s.dispatch_state(device_id=1, global_state=g2)["w"], t(2.0, 2.0))
    # device 0 trained [2,0] -> [3,1]: own [1,1]; shift D - D_0 = [2,2] - [2,0] = [0,2];
    # minus (2/2) [1,1] -> [-1, 1]; reply [3,1] + [-1,1] = [2,2]
    arrival(s, 0, 2, t(3.0, 1.0), g2)
    torch.testing.assert_close(s.dispatch_state(device_id=0, global_state=g2)["w"], t(2.0, 2.0))


def test_first_update_rule_is_a_switch():
    s = OrthoFL(initial_state={"w": t(0.0)}, alpha=0.5, first_update_adopts=False)
    assert s.mixing_weight(0, device_id=3) == pytest.approx(0.5)  # staleness 0, no adoption
    assert make("global_ma").mixing_weight(0, device_id=3) == 1.0
    with pytest.raises(ValueError, match="shift_source"):
        OrthoFL(initial_state={"w": t(0.0)}, shift_source="paper")
