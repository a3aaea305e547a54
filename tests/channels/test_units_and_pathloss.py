import math

import numpy as np
import pytest

from channels.pathloss import FreeSpace, LogDistance, Macro3GPP
from channels.units import db_to_linear, dbm_to_w, linear_to_db, w_to_dbm


def test_decibel_conversions_by_hand():
    assert db_to_linear(10.0) == pytest.approx(10.0)
    assert db_to_linear(-3.0) == pytest.approx(0.501187, rel=1e-5)
    assert linear_to_db(100.0) == pytest.approx(20.0)
    assert dbm_to_w(30.0) == pytest.approx(1.0)
    assert dbm_to_w(23.0) == pytest.approx(0.199526, rel=1e-5)
    assert w_to_dbm(0.001) == pytest.approx(0.0)
    np.testing.assert_allclose(linear_to_db(db_to_linear([-7.0, 0.0, 12.5])), [-7.0, 0.0, 12.5])


def test_macro_3gpp_law():
    pl = Macro3GPP()
    assert pl.loss_db(1000.0) == pytest.approx(128.1)
    assert pl.loss_db(100.0) == pytest.approx(128.1 - 37.6)
    # the same law in metres: 15.3 + 37.6 log10(d_m)
    assert pl.loss_db(250.0) == pytest.approx(15.3 + 37.6 * math.log10(250.0), abs=0.01)


def test_free_space_friis():
    # 2.4 GHz at 1 m: 20 log10(4 pi / lambda) with lambda = c / f = 0.1249 m -> 40.05 dB
    assert FreeSpace(carrier_hz=2.4e9).loss_db(1.0) == pytest.approx(40.05, abs=0.01)
    # doubling distance adds 6.02 dB
    pl = FreeSpace(carrier_hz=2.4e9)
    assert pl.loss_db(200.0) - pl.loss_db(100.0) == pytest.approx(6.0206, abs=1e-4)


def test_log_distance_exponent():
    pl = LogDistance(exponent=3.5, ref_distance_m=1.0, ref_loss_db=40.0)
    assert pl.loss_db(10.0) == pytest.approx(75.0)
    assert pl.loss_db(100.0) == pytest.approx(110.0)


def test_near_field_is_clamped_not_infinite():
    assert np.isfinite(Macro3GPP().loss_db(0.0))
    assert np.isfinite(FreeSpace(carrier_hz=1e9).loss_db(0.0))
