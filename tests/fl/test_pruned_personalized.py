"""The pruned-personalised strategy: what trains, what is sent, what stays on the device."""

import numpy as np
import torch

from fl.datasets import FederatedData
from fl.models import mlp
from fl.strategies.pruned_personalized import PrunedPersonalized, head_names
from fl.training import LocalWork


def setup(num_devices=4):
    torch.manual_seed(0)
    model = mlp((1, 8, 8), [16], 10)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(80, 1, 8, 8, generator=gen), torch.randint(0, 10, (80,), generator=gen)
    data = FederatedData(
        x, y, [np.arange(i * 20, i * 20 + 20) for i in range(num_devices)], x[:10], y[:10], 10
    )
    strategy = PrunedPersonalized(
        model=model,
        initial_state=state,
        num_devices=num_devices,
        personal_steps=3,
        global_steps=3,
        rho=None,
    )
    return model, state, data, strategy


def updates_for(strategy, model, state, data, ids, rho):
    return strategy.local_updates(
        model=model,
        data=data,
        global_state=state,
        device_ids=ids,
        rho=np.asarray(rho),
        base_version=0,
        round_idx=0,
        work=LocalWork(batch_size=8, lr=0.1, steps=6),
        rngs=[np.random.default_rng(i) for i in ids],
    )


def test_the_head_is_the_last_linear_layer():
    model, state, _, strategy = setup()
    assert head_names(model) == ["3.weight", "3.bias"]
    assert strategy.shared == ["1.weight", "1.bias"]


def test_pruned_entries_are_neither_trained_nor_sent_and_heads_stay_local():
    model, state, data, strategy = setup()
    before = {k: v.clone() for k, v in strategy.heads.items()}
    ups = updates_for(strategy, model, state, data, [0, 2], [0.0, 0.75])
    for u, rho in zip(ups, [0.0, 0.75], strict=True):
        assert set(u.state) == {"1.weight", "1.bias"}  # the head is never uploaded
        for k, t in u.state.items():
            m = u.masks[k]
            assert int(m.sum()) == int(np.floor((1 - rho) * t.numel() * (1 + 1e-12)))
            assert torch.all(t[~m] == 0)  # pruned entries: zero, untouched by SGD
            assert not torch.equal(t[m], state[k][m])  # kept entries were trained
    for k in strategy.personal:
        assert not torch.equal(strategy.heads[k][0], before[k][0])  # trained heads changed
        assert torch.equal(strategy.heads[k][1], before[k][1])  # absent devices untouched
        assert torch.equal(strategy.heads[k][3], before[k][3])


def test_aggregate_keeps_the_server_head_and_averages_kept_entries():
    model, state, data, strategy = setup()
    ups = updates_for(strategy, model, state, data, [0, 1], [0.5, 0.5])
    new = strategy.aggregate(round_idx=0, global_state=state, updates=ups, failures=[])
    for k in strategy.personal:
        assert torch.equal(new[k], state[k])
    w = new["1.weight"]
    m0, m1 = ups[0].masks["1.weight"], ups[1].masks["1.weight"]
    both = m0 & m1
    expected = (ups[0].state["1.weight"] + ups[1].state["1.weight"]) / 2  # equal data sizes
    torch.testing.assert_close(w[both], expected[both])
    torch.testing.assert_close(w[~(m0 | m1)], state["1.weight"][~(m0 | m1)])


def test_device_states_pair_the_global_part_with_each_own_head():
    model, state, data, strategy = setup()
    updates_for(strategy, model, state, data, [1], [0.3])
    states = strategy.device_states(global_state=state, device_ids=[0, 1])
    assert torch.equal(states["1.weight"][1], state["1.weight"])
    assert torch.equal(states["3.weight"][1], strategy.heads["3.weight"][1])
    assert not torch.equal(states["3.weight"][0], states["3.weight"][1])


def test_round_protocol_and_exact_bits():
    model, state, _, strategy = setup()
    protocol = strategy.round_protocol(global_state=state, cohort=np.arange(3))
    down, train, up = protocol.legs
    q_g, q_p = 64 * 16 + 16, 16 * 10 + 10
    assert [leg.kind for leg in protocol.legs] == ["downlink", "compute", "uplink"]
    assert up.prunable_bits == 32 * q_g and down.bits == 32 * q_g and up.bits == 0
    assert train.prunable_share == 0.5 * q_g / (q_g + q_p)
    assert train.cycle_share == 0.5 * q_p / (q_g + q_p)
    bits = strategy.uplink_bits(global_state=state, rho=np.array([0.0, 0.5, 0.9]))
    assert bits.tolist() == [32 * q_g, 32 * (512 + 8), 32 * (102 + 1)]
