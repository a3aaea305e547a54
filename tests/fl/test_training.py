"""The batched cohort trainer does exactly what one-client-at-a-time SGD does."""

import numpy as np
import pytest
import torch

from fl.models import mlp, small_cnn
from fl.training import LocalWork, plan_batches, train_cohort, train_cohort_loop


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (200,), generator=gen)
    return x, y


def _start(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "work",
    [LocalWork(batch_size=8, lr=0.1, steps=5), LocalWork(batch_size=8, lr=0.1, epochs=2)],
    ids=["steps", "epochs"],
)
def test_batched_equals_per_client_loop(data, work):
    x, y = data
    # uneven data: 3, 11, 40 examples and one client with none
    clients = [np.arange(0, 3), np.arange(3, 14), np.arange(14, 54), np.arange(0)]
    plan = plan_batches(clients, work, [np.random.default_rng(i) for i in range(4)])
    torch.manual_seed(0)
    model = mlp((1, 8, 8), [16], 10)
    start = _start(model)
    batched = train_cohort(model, start, x, y, plan, work.lr)
    looped = train_cohort_loop(lambda: mlp((1, 8, 8), [16], 10), start, x, y, plan, work.lr)
    for k in start:
        torch.testing.assert_close(batched.stacked_state[k], looped.stacked_state[k])
    torch.testing.assert_close(batched.train_loss, looped.train_loss.float())
    # a client with no data is left exactly where it started
    for k in start:
        assert torch.equal(batched.stacked_state[k][3], start[k])


def test_single_client_path_equals_the_loop(data):
    x, y = data
    work = LocalWork(batch_size=8, lr=0.1, steps=6)
    plan = plan_batches([np.arange(5, 30)], work, [np.random.default_rng(3)])
    torch.manual_seed(1)
    model = mlp((1, 8, 8), [16], 10)
    start = _start(model)
    one = train_cohort(model, start, x, y, plan, work.lr)  # C = 1: no vmap
    looped = train_cohort_loop(lambda: mlp((1, 8, 8), [16], 10), start, x, y, plan, work.lr)
    for k in start:
        assert one.stacked_state[k].shape == (1, *start[k].shape)
        torch.testing.assert_close(one.stacked_state[k], looped.stacked_state[k])
        assert not torch.equal(one.stacked_state[k][0], start[k])
    torch.testing.assert_close(one.train_loss, looped.train_loss.float())


def test_cnn_trains_batched_too(data):
    x, y = data
    clients = [np.arange(0, 20), np.arange(20, 60)]
    work = LocalWork(batch_size=4, lr=0.05, steps=3)
    plan = plan_batches(clients, work, [np.random.default_rng(i) for i in range(2)])
    model = small_cnn((1, 8, 8), (4, 8), 10)
    start = _start(model)
    batched = train_cohort(model, start, x, y, plan, work.lr)
    looped = train_cohort_loop(lambda: small_cnn((1, 8, 8), (4, 8), 10), start, x, y, plan, 0.05)
    for k in start:
        torch.testing.assert_close(batched.stacked_state[k], looped.stacked_state[k])


def test_batch_plan_shapes_and_masks():
    clients = [np.arange(5), np.arange(5, 25)]
    steps = plan_batches(clients, LocalWork(4, 0.1, steps=3), [np.random.default_rng(0)] * 2)
    assert steps.index.shape == (2, 3, 4) and steps.mask.sum() == 24
    # a 5-example client wraps around its data: every example used, none from elsewhere
    assert set(steps.index[0].flatten().tolist()) == set(range(5))
    epochs = plan_batches(clients, LocalWork(4, 0.1, epochs=1), [np.random.default_rng(0)] * 2)
    assert epochs.index.shape == (2, 5, 4)  # 20 examples -> 5 batches; the 5-example one pads
    assert epochs.mask[0].sum() == 5 and epochs.mask[1].sum() == 20
    assert sorted(epochs.index[1][epochs.mask[1] > 0].tolist()) == list(range(5, 25))


def test_samples_processed_drive_compute_time():
    n = np.array([0, 3, 100])
    assert LocalWork(16, 0.1, steps=10).samples_processed(n).tolist() == [0, 160, 160]
    assert LocalWork(16, 0.1, epochs=2).samples_processed(n).tolist() == [0, 6, 200]
