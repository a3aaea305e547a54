"""FedProx, SCAFFOLD and the adaptive server optimisers against hand-computed values on toys.

The toys are least-squares problems on a 1 x 1 linear model without bias: a sample (x = 1,
y = b) has loss (w - b)^2 / 2 and gradient w - b, so every step can be done by hand.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fl.config import ServerOptimizerConfig
from fl.datasets import FederatedData
from fl.server_optimizers import ServerOptimizer
from fl.state import ClientUpdate
from fl.strategies.fedavg import FedAvg
from fl.strategies.fedprox import FedProx
from fl.strategies.scaffold import Scaffold
from fl.training import LocalWork, plan_batches, train_cohort, train_cohort_loop


def _toy(targets: list[list[float]]) -> FederatedData:
    """One device per list; every sample is x = 1 with target b."""
    ys = [b for per in targets for b in per]
    x = torch.ones(len(ys), 1)
    y = torch.tensor(ys).reshape(-1, 1)
    idx, start = [], 0
    for per in targets:
        idx.append(np.arange(start, start + len(per)))
        start += len(per)
    return FederatedData(x, y, idx, x[:1], y[:1], 1)


def _model() -> nn.Module:
    return nn.Linear(1, 1, bias=False)


def _updates(strategy, data, state, work, round_idx=0):
    ids = list(range(len(data.client_indices)))
    return strategy.local_updates(
        model=_model(), data=data, global_state=state, device_ids=ids, rho=np.zeros(len(ids)),
        base_version=round_idx, round_idx=round_idx, work=work,
        rngs=[np.random.default_rng(i) for i in ids],
    )  # fmt: skip


WORK = LocalWork(batch_size=1, lr=0.1, steps=2)


def test_fedprox_steps_by_hand():
    # w0 = 0, b = 1, lr 0.1, mu 0.5: step 1 has no proximal pull (w = w0): w1 = 0.1;
    # step 2: w2 = 0.1 - 0.1 ((0.1 - 1) + 0.5 (0.1 - 0)) = 0.1 + 0.085 = 0.185
    data = _toy([[1.0, 1.0]])
    ups = _updates(FedProx(mu=0.5), data, {"weight": torch.zeros(1, 1)}, WORK)
    assert ups[0].state["weight"].item() == pytest.approx(0.185, abs=1e-7)
    # without the proximal term the same two steps reach 0.19
    ups = _updates(FedProx(mu=0.0), data, {"weight": torch.zeros(1, 1)}, WORK)
    assert ups[0].state["weight"].item() == pytest.approx(0.19, abs=1e-7)


def test_fedprox_mu_zero_is_fedavg_bit_for_bit_and_batched_equals_loop():
    torch.manual_seed(0)
    data = FederatedData(
        torch.randn(40, 5), torch.randint(0, 3, (40,)),
        [np.arange(0, 15), np.arange(15, 40)], torch.randn(4, 5), torch.zeros(4).long(), 3,
    )  # fmt: skip
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    work = LocalWork(batch_size=4, lr=0.05, epochs=2)
    rngs = [np.random.default_rng(i) for i in range(2)]
    plan = plan_batches(data.client_indices, work, rngs)
    plain = train_cohort(model, state, data.train_x, data.train_y, plan, 0.05)
    prox0 = train_cohort(model, state, data.train_x, data.train_y, plan, 0.05, proximal_mu=0.0)
    for k in state:
        assert torch.equal(plain.stacked_state[k], prox0.stacked_state[k])
    # with mu > 0 (and padded epochs: masked steps must not move) batched == one at a time
    prox = train_cohort(model, state, data.train_x, data.train_y, plan, 0.05, proximal_mu=0.3)
    loop = train_cohort_loop(
        lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)),
        state, data.train_x, data.train_y, plan, 0.05, proximal_mu=0.3,
    )  # fmt: skip
    for k in state:
        torch.testing.assert_close(prox.stacked_state[k], loop.stacked_state[k])
        assert not torch.equal(prox.stacked_state[k], plain.stacked_state[k])


def test_scaffold_two_rounds_by_hand():
    # devices: b = 1 (two samples) and b = 3 (two samples); x0 = 0, K = 2 steps of lr 0.1.
    data = _toy([[1.0, 1.0], [3.0, 3.0]])
    x0 = {"weight": torch.zeros(1, 1)}
    s = Scaffold(initial_state=x0, num_devices=2)
    # round 1 (c = c_i = 0): y0 = 0.19, y1 = 0.57; c_i = -y_i / (K lr) = -0.95, -2.85
    ups = _updates(s, data, x0, WORK)
    assert [u.state["weight"].item() for u in ups] == pytest.approx([0.19, 0.57], abs=1e-6)
    x1 = s.aggregate(round_idx=0, global_state=x0, updates=ups, failures=[])
    assert x1["weight"].item() == pytest.approx(0.38, abs=1e-6)  # plain mean
    assert s.c_device[0]["weight"].item() == pytest.approx(-0.95, abs=1e-5)
    assert s.c_device[1]["weight"].item() == pytest.approx(-2.85, abs=1e-5)
    assert s.c["weight"].item() == pytest.approx(-1.9, abs=1e-5)  # 0 + (2/2) mean(dc)
    # round 2: offsets c - c_i = -0.95 and +0.95;
    # device 0: 0.38 -> 0.38 - 0.1 (-0.62 - 0.95) = 0.537 -> 0.537 - 0.1 (-0.463 - 0.95) = 0.6783
    # device 1: 0.38 -> 0.38 - 0.1 (-2.62 + 0.95) = 0.547 -> 0.547 - 0.1 (-2.453 + 0.95) = 0.6973
    ups = _updates(s, data, x1, WORK, round_idx=1)
    assert [u.state["weight"].item() for u in ups] == pytest.approx([0.6783, 0.6973], abs=1e-5)
    x2 = s.aggregate(round_idx=1, global_state=x1, updates=ups, failures=[])
    assert x2["weight"].item() == pytest.approx(0.6878, abs=1e-5)
    # c_0 = -0.95 + 1.9 + (0.38 - 0.6783) / 0.2 = -0.5415; c_1 = -2.85 + 1.9 - 1.5865 = -2.5365
    assert s.c_device[0]["weight"].item() == pytest.approx(-0.5415, abs=1e-4)
    assert s.c_device[1]["weight"].item() == pytest.approx(-2.5365, abs=1e-4)
    # c = -1.9 + mean(0.4085, 0.3135) = -1.539
    assert s.c["weight"].item() == pytest.approx(-1.539, abs=1e-4)


def test_scaffold_counts_twice_the_bits_and_scales_c_by_the_cohort_share():
    data = _toy([[1.0, 1.0], [3.0, 3.0]])
    x0 = {"weight": torch.zeros(1, 1)}
    s = Scaffold(initial_state=x0, num_devices=8)
    legs = s.round_protocol(global_state=x0, cohort=np.array([0, 1])).stages[0]
    assert [leg.bits for leg in legs if leg.kind != "compute"] == [64, 64]  # 2 x 1 x 32
    ups = _updates(s, data, x0, WORK)
    s.aggregate(round_idx=0, global_state=x0, updates=ups, failures=[])
    assert s.c["weight"].item() == pytest.approx(-1.9 * 2 / 8, abs=1e-5)


def _scalar_adaptive(kind, x, deltas, lr, b1, b2, tau):
    """Reddi et al. Algorithm 2 on plain floats, one coordinate."""
    m, v = 0.0, tau * tau
    for d in deltas:
        m = b1 * m + (1 - b1) * d
        if kind == "adagrad":
            v = v + d * d
        elif kind == "yogi":
            v = v - (1 - b2) * d * d * math.copysign(1.0, v - d * d)
        else:
            v = b2 * v + (1 - b2) * d * d
        x = x + lr * m / (math.sqrt(v) + tau)
    return x


@pytest.mark.parametrize("kind", ["adam", "yogi", "adagrad"])
def test_adaptive_server_steps_follow_the_papers_formulas(kind):
    cfg = ServerOptimizerConfig(kind=kind, lr=0.1, betas=(0.9, 0.99), tau=1e-3)
    opt = ServerOptimizer(cfg)
    x = {"w": torch.tensor([1.0, -2.0], dtype=torch.float64)}
    deltas = [(0.5, -0.1), (0.2, 0.3), (-0.4, 0.05)]
    for d in deltas:
        target = {"w": x["w"] + torch.tensor(d, dtype=torch.float64)}
        x = opt.step(x, target)
    for i, x0 in enumerate([1.0, -2.0]):
        want = _scalar_adaptive(kind, x0, [d[i] for d in deltas], 0.1, 0.9, 0.99, 1e-3)
        assert x["w"][i].item() == pytest.approx(want, rel=1e-12)


def test_adam_first_step_by_hand():
    # Delta = 0.5: m = 0.05, v = 0.99e-6 + 0.0025 = 0.00250099, sqrt = 0.0500099...;
    # x = 1 + 0.1 * 0.05 / (0.0500099 + 0.001) = 1.0980202...
    opt = ServerOptimizer(ServerOptimizerConfig(kind="adam", lr=0.1))
    x = opt.step({"w": torch.tensor([1.0], dtype=torch.float64)},
                 {"w": torch.tensor([1.5], dtype=torch.float64)})  # fmt: skip
    assert x["w"].item() == pytest.approx(1 + 0.005 / (math.sqrt(0.00250099) + 0.001), rel=1e-12)
    assert x["w"].item() == pytest.approx(1.0980202, abs=1e-7)


def test_sgd_server_step_with_lr_one_is_the_average_and_fedavg_uses_it():
    avg = FedAvg(server_optimizer=ServerOptimizer(ServerOptimizerConfig(kind="sgd", lr=0.5)))
    g = {"w": torch.tensor([0.0])}
    ups = [ClientUpdate(0, 0, {"w": torch.tensor([2.0])}, 1),
           ClientUpdate(1, 0, {"w": torch.tensor([4.0])}, 3)]  # fmt: skip
    # weighted average 3.5; half a step from 0 -> 1.75
    assert avg.aggregate(round_idx=0, global_state=g, updates=ups, failures=[])["w"].item() == 1.75
    plain = FedAvg()
    assert plain.aggregate(round_idx=0, global_state=g, updates=ups, failures=[])["w"].item() == 3.5
