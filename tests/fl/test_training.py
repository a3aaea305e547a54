"""The batched cohort trainer does exactly what one-client-at-a-time SGD does."""

import numpy as np
import pytest
import torch

from fl.models import mlp, small_cnn
from fl.training import (
    LocalWork,
    cohort_gradients,
    plan_batches,
    train_cohort,
    train_cohort_loop,
)


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


class TwoInputs(torch.nn.Module):
    """``W2 relu(W1 x + b1 + A z) + b2``: a hidden layer that also reads a per-client input."""

    def __init__(self):
        super().__init__()
        self.flat = torch.nn.Flatten()
        self.l1 = torch.nn.Linear(64, 12)
        self.noise = torch.nn.Linear(3, 12, bias=False)
        self.l2 = torch.nn.Linear(12, 10)

    def forward(self, x, z=None):
        h = self.l1(self.flat(x))
        if z is not None:
            h = h + self.noise(z)
        return self.l2(torch.relu(h))


def _two_inputs():
    torch.manual_seed(5)
    return TwoInputs()


def test_every_extension_at_once_equals_the_per_client_loop(data):
    """Per-client starts, gradient masks, frozen shared tensors, per-name step sizes, an
    additive per-client gradient term and per-client inputs: the batched call and the loop
    (one SGD parameter group per name) agree."""
    x, y = data
    work = LocalWork(batch_size=8, lr=0.1, steps=4)
    clients = [np.arange(0, 5), np.arange(5, 40), np.arange(40, 90), np.arange(0)]
    plan = plan_batches(clients, work, [np.random.default_rng(10 + i) for i in range(4)])
    gen = torch.Generator().manual_seed(3)
    base = _start(_two_inputs())
    frozen = {"noise.weight": base.pop("noise.weight")}
    c = 4
    start = {k: v + 0.1 * torch.randn(c, *v.shape, generator=gen) for k, v in base.items()}
    masks = {"l1.weight": (torch.rand(c, 12, 64, generator=gen) > 0.3).float()}
    offsets = {"l2.weight": 0.05 * torch.randn(c, 10, 12, generator=gen)}
    inputs = torch.randn(c, 4, 8, 3, generator=gen)
    kwargs = dict(
        stacked_start=True,
        grad_masks=masks,
        frozen=frozen,
        lr_by_name={"l2.weight": 0.3, "l1.bias": 0.01},
        grad_offsets=offsets,
        client_inputs=inputs,
    )
    batched = train_cohort(_two_inputs(), start, x, y, plan, work.lr, **kwargs)
    looped = train_cohort_loop(_two_inputs, start, x, y, plan, work.lr, **kwargs)
    assert set(batched.stacked_state) == set(start)  # frozen tensors are not returned
    for k in start:
        torch.testing.assert_close(batched.stacked_state[k], looped.stacked_state[k])
        assert not torch.equal(batched.stacked_state[k][:3], start[k][:3])
    torch.testing.assert_close(batched.train_loss, looped.train_loss.float())
    # a masked entry never moves; the client with no data never moves, offset or not
    still = masks["l1.weight"] == 0
    assert torch.equal(batched.stacked_state["l1.weight"][still], start["l1.weight"][still])
    for k in start:
        assert torch.equal(batched.stacked_state[k][3], start[k][3])


def test_masked_training_from_different_starts_equals_the_loop(data):
    """Pruning's use: stacked per-device starts and 0/1 masks (a doubled masked gradient, or a
    mask ignored, shows here)."""
    x, y = data
    work = LocalWork(batch_size=8, lr=0.2, steps=5)
    clients = [np.arange(0, 30), np.arange(30, 70), np.arange(70, 75)]
    plan = plan_batches(clients, work, [np.random.default_rng(i) for i in range(3)])
    torch.manual_seed(2)
    base = _start(mlp((1, 8, 8), [16], 10))
    gen = torch.Generator().manual_seed(9)
    start = {k: v + 0.2 * torch.randn(3, *v.shape, generator=gen) for k, v in base.items()}
    masks = {k: (torch.rand(3, *v.shape, generator=gen) > 0.5).float() for k, v in base.items()}
    batched = train_cohort(
        mlp((1, 8, 8), [16], 10), start, x, y, plan, work.lr, stacked_start=True, grad_masks=masks
    )
    looped = train_cohort_loop(
        lambda: mlp((1, 8, 8), [16], 10),
        start,
        x,
        y,
        plan,
        work.lr,
        stacked_start=True,
        grad_masks=masks,
    )
    for k in start:
        torch.testing.assert_close(batched.stacked_state[k], looped.stacked_state[k])


def test_gradient_only_pass_takes_no_step_and_averages_the_batches(data):
    x, y = data
    work = LocalWork(batch_size=8, lr=0.1, steps=3)
    clients = [np.arange(0, 24), np.arange(24, 30), np.arange(0)]
    plan = plan_batches(clients, work, [np.random.default_rng(i) for i in range(3)])
    torch.manual_seed(4)
    model = mlp((1, 8, 8), [16], 10)
    start = _start(model)
    grads = cohort_gradients(model, start, x, y, plan)
    for i in range(2):  # by hand: the mean over the client's steps of each step's gradient
        expected = {k: torch.zeros_like(v) for k, v in start.items()}
        for s in range(3):
            m = mlp((1, 8, 8), [16], 10)
            m.load_state_dict(start)
            idx, mask = plan.index[i, s], plan.mask[i, s]
            ce = torch.nn.functional.cross_entropy(m(x[idx]), y[idx], reduction="none")
            ((ce * mask).sum() / mask.sum()).backward()
            for k, p in m.named_parameters():
                expected[k] += p.grad / 3
        for k in start:
            torch.testing.assert_close(grads.stacked_state[k][i], expected[k])
    for k in start:  # no data: zero gradient
        assert torch.count_nonzero(grads.stacked_state[k][2]) == 0


@pytest.mark.parametrize(
    ("hidden", "clients", "batch"), [([16], 4, 8), ([64, 64], 7, 16), ([], 3, 5)]
)
def test_plain_mlps_train_by_batched_matmuls_bit_for_bit_as_vmap(data, hidden, clients, batch):
    """The MLP fast path (batched matmuls, no vmap) is taken for plain MLPs and gives the very
    bits vmap(functional_call) gives, so switching it on changed no run's results."""
    from fl import training

    x, y = data
    work = LocalWork(batch_size=batch, lr=0.1, steps=4)
    owned = [np.arange(7 * i, 7 * i + 3 + 5 * i) for i in range(clients)]
    plan = plan_batches(owned, work, [np.random.default_rng(i) for i in range(clients)])
    torch.manual_seed(2)
    model = mlp((1, 8, 8), hidden, 10)
    start = _start(model)
    assert training._stacked_mlp_forward(model, list(start)) is not None
    fast = train_cohort(model, start, x, y, plan, work.lr)
    original = training._stacked_mlp_forward
    training._stacked_mlp_forward = lambda model, names: None  # force vmap
    try:
        slow = train_cohort(model, start, x, y, plan, work.lr)
    finally:
        training._stacked_mlp_forward = original
    for k in start:
        assert torch.equal(fast.stacked_state[k], slow.stacked_state[k]), k
    assert torch.equal(fast.train_loss, slow.train_loss)
    # a CNN, or a parameter set that is not the model's own, goes to vmap
    assert training._stacked_mlp_forward(small_cnn((1, 8, 8), (4, 8), 10), []) is None
    assert training._stacked_mlp_forward(model, [k for k in start if k.endswith("weight")]) is None


@pytest.mark.parametrize("n", [1, 2, 3, 17, 300])
def test_reshuffled_passes_are_the_draws_of_successive_permutations(n):
    """plan_batches draws a client's passes with one ``Generator.permuted`` call; it must give
    the draws (and leave the generator in the state) of one ``permutation`` per pass, as the
    batch plans were first written, so a numpy that changed this would be caught here."""
    work = LocalWork(batch_size=16, lr=0.1, steps=5)
    idx = np.arange(100, 100 + n)
    plan = plan_batches([idx], work, [np.random.default_rng(n)])
    rng = np.random.default_rng(n)
    need = 5 * 16
    passes = -(-need // n)
    expected = idx[np.concatenate([rng.permutation(n) for _ in range(passes)])[:need]]
    assert plan.index.reshape(-1).tolist() == expected.tolist()
