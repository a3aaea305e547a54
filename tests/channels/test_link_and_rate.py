import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.fading import NoFading
from channels.link import Link, shannon_rate_bps
from channels.pathloss import Macro3GPP
from channels.rate_inverse import bandwidth_for_rate
from channels.shadowing import Shadowing


def test_link_rate_by_hand():
    link = Link(Macro3GPP(), Shadowing(0.0, 0), NoFading(), noise_psd_dbm_per_hz=-174.0)
    # 500 m: loss = 128.1 + 37.6 log10(0.5) = 116.78 dB; p = 23 dBm; b = 1 MHz
    loss_db = 128.1 + 37.6 * math.log10(0.5)
    snr_db = 23.0 - loss_db - (-174.0 + 60.0)
    expected = 1e6 * math.log2(1 + 10 ** (snr_db / 10))
    rate = link.rate_bps(
        link_ids=np.array([0]),
        distance_m=np.array([500.0]),
        tx_power_dbm=23.0,
        bandwidth_hz=1e6,
        t_s=0.0,
    )
    assert rate[0] == pytest.approx(expected, rel=1e-12)
    snr = link.snr_linear(
        link_ids=np.array([0]),
        distance_m=np.array([500.0]),
        tx_power_dbm=23.0,
        bandwidth_hz=1e6,
        t_s=0.0,
    )
    assert 10 * math.log10(snr[0]) == pytest.approx(snr_db, abs=1e-9)


def test_zero_bandwidth_gives_zero_rate():
    assert shannon_rate_bps(np.array([0.0, 1.0]), np.array([5.0, 5.0]))[0] == 0.0


def test_rate_saturates_at_gamma_over_ln2():
    gamma = 1e6
    assert shannon_rate_bps(1e12, gamma) == pytest.approx(gamma / math.log(2), rel=1e-5)


@given(
    gamma=st.floats(1e-3, 1e9),
    fraction=st.floats(1e-6, 0.999),
)
def test_bandwidth_for_rate_inverts_shannon(gamma, fraction):
    target = fraction * gamma / math.log(2)  # anything below saturation is reachable
    b = bandwidth_for_rate(np.array([target]), np.array([gamma]))[0]
    assert np.isfinite(b) and b > 0
    assert shannon_rate_bps(b, gamma) == pytest.approx(target, rel=1e-7)


def test_unreachable_rates_need_infinite_bandwidth():
    out = bandwidth_for_rate(np.array([2.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0]))
    assert out[0] == np.inf  # 2 > 1 / ln 2
    assert out[1] == np.inf  # no channel
    assert out[2] == 0.0  # nothing to send
