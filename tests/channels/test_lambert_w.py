"""Our W_{-1} (numpy, no scipy import at start-up) against scipy's and against its definition."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import lambertw

from channels.lambert_w import lambert_w_m1
from channels.link import shannon_rate_bps
from channels.rate_inverse import bandwidth_for_rate

INV_E = math.exp(-1.0)


def test_hand_values_and_the_domain():
    # w e^w = x at w = -2, -1 (the branch point), -10
    x = np.array([-2.0 * math.exp(-2.0), -INV_E, -10.0 * math.exp(-10.0)])
    np.testing.assert_allclose(lambert_w_m1(x), [-2.0, -1.0, -10.0], rtol=1e-14)
    out = lambert_w_m1(np.array([0.0, 0.1, -0.5, np.nan]))
    assert out[0] == -np.inf
    assert np.isnan(out[1:]).all()  # outside [-1/e, 0)


def test_agrees_with_scipy_where_the_branch_is_well_conditioned():
    x = -np.concatenate(
        [np.logspace(-300, math.log10(INV_E), 4000), np.linspace(1e-6, INV_E, 4000)]
    )
    x = x[x + INV_E > 1e-4]  # near the branch point dW/dx -> inf: compared by residual below
    ours, theirs = lambert_w_m1(x), lambertw(x, k=-1).real
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)


@given(st.floats(-INV_E, -1e-300))
def test_solves_its_defining_equation_on_the_lower_branch(x):
    w = float(lambert_w_m1(np.array([x]))[0])
    assert w <= -1.0
    assert w * math.exp(w) == pytest.approx(x, rel=1e-13, abs=1e-300)


def test_bandwidth_for_rate_stays_exact_next_to_the_rate_ceiling():
    """Target rates within 1e-12..1e-6 of the ceiling gamma/ln2. scipy's W_{-1} returned no
    usable bandwidth for 8 of these 13 and missed the rate by up to 5e-7 on the others, which
    made the min-max bandwidth sum flicker next to the latency floor. What is left is the
    rounding of -c e^-c itself next to -1/e (~1e-16 absolute, amplified by 1/sqrt(gap))."""
    gamma = 1.0
    gap = np.logspace(-12, -6, 13)
    target = (1.0 - gap) * gamma / math.log(2.0)
    b = bandwidth_for_rate(target, np.full(target.shape, gamma))
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(shannon_rate_bps(b, np.full(b.shape, gamma)), target, rtol=1e-8)
