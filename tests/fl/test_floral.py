"""FLoRAL by hand: adaptors that start at zero, the rank rule, the p(k | c) aggregation, C = 1
as FedAvg, and a learned router that recovers rank-1 clusters (fl/mixture.py,
fl/strategies/floral.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from fl.config import FloralConfig, MLPConfig
from fl.mixture import adaptor_rank, mixture_of
from fl.models import build_model
from fl.state import ClientUpdate
from fl.strategies.fedavg import weighted_average
from fl.strategies.floral import Floral
from fl.training import LocalWork


def _mlp(n_in, hidden, classes, seed=1):
    return build_model(MLPConfig(kind="mlp", hidden=hidden), (n_in,), classes,
                       torch.Generator().manual_seed(seed))  # fmt: skip


def _floral(model, devices=3, **cfg):
    config = FloralConfig(kind="floral", **cfg)
    mixed = Floral.build_model(model, config=config, generator=torch.Generator().manual_seed(2))
    strategy = Floral(config, model=mixed, num_devices=devices)
    strategy.bind_streams(lambda *k: np.random.default_rng(0),
                          lambda *k: torch.Generator().manual_seed(hash(k) % 2**31))  # fmt: skip
    return mixed, strategy


def test_with_b_zero_every_personalised_forward_is_the_base_model():
    base = _mlp(20, [16], 5)
    x = torch.randn(7, 20, generator=torch.Generator().manual_seed(0))
    expected = base(x)
    mixed, _ = _floral(base, adaptors=4, rho=0.5)
    state = dict(mixed.state_dict())
    for logits in (torch.zeros(4), torch.tensor([3.0, -1.0, 0.5, 2.0])):
        out = functional_call(mixed, {**state, "router": logits}, (x, torch.rand(4)))
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_the_rank_rule_gives_the_notes_sizes():
    assert (adaptor_rank(784, 200, 0.1), adaptor_rank(200, 10, 0.1)) == (15, 1)
    assert (adaptor_rank(784, 200, 0.01), adaptor_rank(200, 10, 0.01)) == (1, 1)
    for rho, floats in ((0.1, 219_730), (0.01, 164_626)):  # notes section 3, C = 4
        mixed, s = _floral(_mlp(784, [200], 10), adaptors=4, rho=rho)
        assert s.model_floats == floats
        assert s.extra_fraction == pytest.approx((floats - 159_010) / 159_010)
    _, digits = _floral(_mlp(64, [32], 10), adaptors=4, rho=0.1)  # the digits MLP
    assert digits.ranks == [2, 1]


def _update(device, a_value, router, n):
    state = {"layers.1.weight": torch.full((2, 2), float(device)), "layers.1.bias": torch.zeros(2),
             "layers.1.A": torch.full((2, 1, 2), a_value), "layers.1.B": torch.zeros(2, 2, 1),
             "layers.1.beta": torch.zeros(2, 2), "router": torch.tensor(router)}  # fmt: skip
    return ClientUpdate(device, 0, state, n)


def test_adaptor_weights_are_p_of_k_given_c_on_a_three_device_toy():
    mixed = mixture_of(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2)),
                       adaptors=2, rho=0.5, generator=torch.Generator().manual_seed(0))  # fmt: skip
    config = FloralConfig(kind="floral", adaptors=2, rho=0.5)
    s = Floral(config, model=mixed, num_devices=3)
    ln2 = float(np.log(2.0))
    # pi: device 0 (1/2, 1/2), device 1 (2/3, 1/3), device 2 (1/3, 2/3); n = 1, 2, 1
    ups = [_update(0, 1.0, [0.0, 0.0], 1), _update(1, 2.0, [ln2, 0.0], 2),
           _update(2, 4.0, [0.0, ln2], 1)]  # fmt: skip
    new = s.aggregate(round_idx=0, global_state=dict(mixed.state_dict()), updates=ups,
                      failures=[])  # fmt: skip
    p = np.array([0.25, 0.5, 0.25])
    pi = np.array([[1 / 2, 1 / 2], [2 / 3, 1 / 3], [1 / 3, 2 / 3]])
    w = p[:, None] * pi / (p[:, None] * pi).sum(axis=0)
    a = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(new["layers.1.A"][0].numpy(), w[:, 0] @ a, rtol=1e-6)
    np.testing.assert_allclose(new["layers.1.A"][1].numpy(), w[:, 1] @ a, rtol=1e-6)
    # the base is FedAvg: 0.25 * 0 + 0.5 * 1 + 0.25 * 2
    np.testing.assert_allclose(new["layers.1.weight"].numpy(), 1.0)


def test_one_adaptor_with_a_fixed_router_aggregates_as_fedavg():
    mixed = mixture_of(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2)),
                       adaptors=1, rho=0.5, generator=torch.Generator().manual_seed(0))  # fmt: skip
    s = Floral(FloralConfig(kind="floral", adaptors=1, rho=0.5), model=mixed, num_devices=3)
    g = torch.Generator().manual_seed(4)
    ups = []
    for d, n in enumerate((3, 1, 2)):
        state = {k: torch.randn(v.shape, generator=g) for k, v in mixed.state_dict().items()}
        state["router"] = torch.zeros(1)
        ups.append(ClientUpdate(d, 0, state, n))
    new = s.aggregate(round_idx=0, global_state=dict(mixed.state_dict()), updates=ups,
                      failures=[])  # fmt: skip
    fedavg = weighted_average([u.state for u in ups], [3.0, 1.0, 2.0])
    for k in new:
        if k != "router":
            torch.testing.assert_close(new[k], fedavg[k], atol=1e-6, rtol=1e-6)


class _Data:
    def __init__(self, x, y, parts, groups):
        self.train_x, self.train_y, self.client_indices = x, y, parts
        self.device_groups = groups


def test_the_learned_router_recovers_rank_one_clusters():
    """Notes section 7's synthetic problem: a shared linear map plus a cluster-specific
    rank-1 perturbation (scale 2); 10 devices in 2 clusters (k mod 2)."""
    g = torch.Generator().manual_seed(0)
    dim, classes, devices, per = 10, 3, 10, 80
    shared = torch.randn(classes, dim, generator=g)
    perturb = [2 * torch.outer(torch.randn(classes, generator=g), torch.randn(dim, generator=g))
               for _ in range(2)]  # fmt: skip
    xs, ys = [], []
    for d in range(devices):
        x = torch.randn(per, dim, generator=g)
        xs.append(x)
        ys.append((x @ (shared + perturb[d % 2]).T).argmax(1))
    data = _Data(torch.cat(xs), torch.cat(ys), [np.arange(d * per, (d + 1) * per)
                                                 for d in range(devices)],
                 np.arange(devices) % 2)  # fmt: skip
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(dim, classes))
    mixed, s = _floral(base, devices=devices, adaptors=2, rho=0.5, router_lr=0.1)
    state = {k: v.detach().clone() for k, v in mixed.state_dict().items()}
    work = LocalWork(8, 0.1, steps=10)
    for r in range(60):
        rngs = [np.random.default_rng(1000 * r + d) for d in range(devices)]
        ups = s.local_updates(model=mixed, data=data, global_state=state,
                              device_ids=list(range(devices)), rho=np.zeros(devices),
                              base_version=r, round_idx=r, work=work, rngs=rngs)  # fmt: skip
        state = s.aggregate(round_idx=r, global_state=state, updates=ups, failures=[])
    assert s.round_metrics()["router_purity"] == 1.0


def test_a_mixture_layer_by_hand_with_the_001_floor():
    from fl.mixture import MixtureLinear

    linear = torch.nn.Linear(2, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0]]))
        linear.bias.fill_(0.5)
    layer = MixtureLinear(linear, 2, 1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.A.copy_(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]))  # A_0 x = x1, A_1 x = x2
        layer.B.copy_(torch.tensor([[[3.0]], [[5.0]]]))
        layer.beta.copy_(torch.tensor([[1.0], [2.0]]))
    x = torch.tensor([[2.0, 4.0]])
    out = layer(x, torch.tensor([1.0, 0.0]))  # adaptor 1 is floored at 0.01, not switched off
    base = 1 * 2 + 2 * 4 + 0.5
    expected = base + 1.0 * (3 * 2 + 1) + 0.01 * (5 * 4 + 2)
    assert float(out.detach()) == pytest.approx(expected)
