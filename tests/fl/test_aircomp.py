"""What an over-the-air sum does to updates: FedAvg's average without noise, the measured MSE
against sigma^2 / (|S|^2 rho0), and the misalignment term."""

import numpy as np
import pytest
import torch

from fl.aircomp import over_the_air
from fl.state import ClientUpdate
from fl.strategies.fedavg import FedAvg

D = 200_000  # entries: the measured MSE averages this many noise draws


def _toy():
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.zeros(D, dtype=torch.float64)}
    ups = [
        ClientUpdate(k, 0, {"w": torch.randn(D, generator=g, dtype=torch.float64) * (k + 1)}, n)
        for k, n in enumerate([10, 20, 30])
    ]
    return base, ups


def test_without_noise_the_sum_is_fedavgs_weighted_average():
    base, ups = _toy()
    air = over_the_air(ups, base, rho0_w=1.0, noise_w=0.0, estimation_error=None,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    got = FedAvg().aggregate(round_idx=0, global_state=base, updates=air.updates, failures=[])
    want = FedAvg().aggregate(round_idx=0, global_state=base, updates=ups, failures=[])
    torch.testing.assert_close(got["w"], want["w"], rtol=0, atol=1e-12)
    assert air.mse == 0.0 and air.mse_formula == 0.0


def test_measured_mse_matches_the_formula():
    base, ups = _toy()
    # sigma^2 / (|S|^2 rho0) = 0.09 / (9 x 1) = 0.01 per normalised entry
    air = over_the_air(ups, base, rho0_w=1.0, noise_w=0.09, estimation_error=None,
                       generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert air.mse_formula == pytest.approx(0.01)
    assert air.mse == pytest.approx(0.01, rel=0.02)
    # the error reaches the model scaled back: s^2 x MSE, s = the largest device std (3)
    got = FedAvg().aggregate(round_idx=0, global_state=base, updates=air.updates, failures=[])
    want = FedAvg().aggregate(round_idx=0, global_state=base, updates=ups, failures=[])
    err = float((got["w"] - want["w"]).pow(2).mean())
    assert err == pytest.approx(9 * 0.01, rel=0.03)


def test_misalignment_adds_its_own_term():
    base, ups = _toy()
    air = over_the_air(ups, base, rho0_w=1.0, noise_w=0.0, estimation_error=0.2,
                       generator=torch.Generator().manual_seed(3))  # fmt: skip
    # no noise: all the error is misalignment, and the formula is computed from the same draw
    assert air.mse > 0
    assert air.mse == pytest.approx(air.mse_formula, rel=1e-9)
    noisy = over_the_air(ups, base, rho0_w=1.0, noise_w=0.09, estimation_error=0.2,
                         generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert noisy.mse_formula == pytest.approx(0.01 + air.mse_formula, rel=1e-9)
    assert noisy.mse == pytest.approx(noisy.mse_formula, rel=0.03)
    assert np.isfinite(noisy.mse)
