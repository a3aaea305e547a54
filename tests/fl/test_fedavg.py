"""FedAvg worked out by hand, and its independence from the order updates arrive in."""

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from fl.state import ClientUpdate, Failure, state_bits
from fl.strategies.fedavg import FedAvg


def update(device_id, w, b, n):
    return ClientUpdate(device_id, 0, {"w": torch.tensor(w), "b": torch.tensor(b)}, n)


def test_weighted_average_by_hand():
    # Prepare: two clients, 1 and 3 examples.
    ups = [update(0, [[1.0, 2.0]], [0.0], 1), update(1, [[5.0, 6.0]], [4.0], 3)]
    # Execute
    new = FedAvg().aggregate(round_idx=0, global_state={}, updates=ups, failures=[])
    # Assert: (1*1 + 3*5)/4 = 4, (1*2 + 3*6)/4 = 5, (0 + 12)/4 = 3
    torch.testing.assert_close(new["w"], torch.tensor([[4.0, 5.0]]))
    torch.testing.assert_close(new["b"], torch.tensor([3.0]))


def test_no_updates_keeps_the_global_model():
    g = {"w": torch.ones(2)}
    out = FedAvg().aggregate(
        round_idx=0, global_state=g, updates=[], failures=[Failure(0, "deadline", 1.0)]
    )
    assert out is g


def test_zero_example_clients_do_not_count():
    ups = [update(0, [2.0], [2.0], 0), update(1, [6.0], [4.0], 2)]
    new = FedAvg().aggregate(round_idx=0, global_state={}, updates=ups, failures=[])
    torch.testing.assert_close(new["w"], torch.tensor([6.0]))


@given(perm=st.permutations(range(6)), seed=st.integers(0, 1000))
def test_aggregation_does_not_depend_on_update_order(perm, seed):
    gen = torch.Generator().manual_seed(seed)
    ups = [ClientUpdate(k, 0, {"w": torch.randn(3, 4, generator=gen)}, k + 1) for k in range(6)]
    a = FedAvg().aggregate(round_idx=0, global_state={}, updates=ups, failures=[])
    b = FedAvg().aggregate(
        round_idx=0, global_state={}, updates=[ups[i] for i in perm], failures=[]
    )
    assert torch.equal(a["w"], b["w"])  # bit for bit


def test_selection():
    rng = np.random.default_rng(0)
    assert FedAvg().select(round_idx=0, available_ids=[3, 1, 2], rng=rng) == [1, 2, 3]
    picked = FedAvg(clients_per_round=2).select(round_idx=0, available_ids=[5, 1, 9, 4], rng=rng)
    assert len(picked) == 2 and picked == sorted(picked) and set(picked) <= {1, 4, 5, 9}
    assert len(FedAvg(fraction=0.5).select(round_idx=0, available_ids=range(10), rng=rng)) == 5


def test_state_bits_counts_every_tensor_entry():
    assert state_bits({"a": torch.zeros(3, 4), "b": torch.zeros(5)}) == 32 * 17
    assert state_bits({"a": torch.zeros(3, 4)}, bits_per_param=16) == 16 * 12
