"""Cells by hand: hex positions, association, the fluid interference model, backhaul times,
and the AirComp transmitting set, scale and MSE formula."""

import math

import numpy as np
import pytest

from channels.aircomp import plan_aircomp
from channels.cells import (
    Cells,
    associate,
    hex_axial,
    hex_positions_m,
    interference_psd_w_per_hz,
)


def test_hex_layout_centre_then_rings():
    assert hex_axial(8) == [(0, 0), (-1, 1), (0, 1), (1, 0), (1, -1), (0, -1), (-1, 0), (-2, 2)]
    h = math.sqrt(3) / 2 * 500  # 433.01
    want = [(0, 0), (-250, h), (250, h), (500, 0), (250, -h), (-250, -h), (-500, 0),
            (-500, 2 * h)]  # fmt: skip
    np.testing.assert_allclose(hex_positions_m(8, 500.0), want, atol=1e-9)
    ring1 = np.hypot(*hex_positions_m(7, 500.0)[1:].T)
    np.testing.assert_allclose(ring1, 500.0)
    assert len(hex_axial(19)) == len(set(hex_axial(19))) == 19  # two full rings, no repeats


def _gain(d):
    """log-distance, exponent 3, 40 dB at 1 m: 1e-4 d^-3."""
    return 1e-4 * np.asarray(d, dtype=float) ** -3


def test_association_and_sinr_between_two_cells():
    # sites at x = 0 and x = 1000; device A at x = 300 (cell 0), B at x = 900 (cell 1)
    cells = Cells(np.array([[0.0, 0.0], [1000.0, 0.0]]), 1, 1e8, 0.0, "fail")
    pos = np.array([[300.0, 0.0], [900.0, 0.0]])
    d = cells.distances_m(pos)
    np.testing.assert_allclose(d, [[300, 700], [900, 100]])
    gain = _gain(d)  # [[3.7037e-12, 2.9155e-13], [1.3717e-13, 1e-10]]
    cell = associate(-10 * np.log10(gain))
    assert cell.tolist() == [0, 1]
    # I0 at site 0 = 0.1 W x g_B0 / 1 MHz = 1.3717e-20 W/Hz; at site 1: 0.1 x g_A1 / 1e6
    psd = interference_psd_w_per_hz(rx_gain=gain, tx_power_w=np.array([0.1, 0.1]),
                                     tx_cell=cell, band_hz=1e6, reuse=1)  # fmt: skip
    np.testing.assert_allclose(psd, [1.3717421e-20, 2.9154519e-20], rtol=1e-7)
    # SINR of A on the whole band: 0.1 g_A0 / ((N0 + I0) B) = 20.93 (SNR alone: 93.03)
    n0 = 10 ** ((-174 - 30) / 10)
    sinr_a = 0.1 * gain[0, 0] / ((n0 + psd[0]) * 1e6)
    assert sinr_a == pytest.approx(20.92666, rel=1e-6)
    assert 0.1 * gain[1, 1] / ((n0 + psd[1]) * 1e6) == pytest.approx(301.7903, rel=1e-6)
    # reuse 3: no interference
    zero = interference_psd_w_per_hz(rx_gain=gain, tx_power_w=np.array([0.1, 0.1]),
                                     tx_cell=cell, band_hz=1e6 / 3, reuse=3)  # fmt: skip
    assert zero.tolist() == [0.0, 0.0]


def test_equal_loss_goes_to_the_smaller_cell():
    assert associate(np.array([[100.0, 100.0], [101.0, 100.0]])).tolist() == [0, 1]


def test_backhaul_time():
    cells = Cells(np.zeros((2, 2)), 1, 1e4, 0.1, "fail")
    # 3 x 1000 member bits + 5000 cell bits at 10 kbit/s, after 0.1 s latency: 0.9 s
    assert cells.backhaul_s(3 * 1000 + 5000) == pytest.approx(0.9)
    assert cells.backhaul_s(0) == 0.0


def test_aircomp_set_scale_time_and_mse_formula():
    # three devices, full-power SNR over 1 MHz: 10, 1, 0.05 (10, 0, -13 dB); threshold 0 dB
    n0, band = 4e-21, 1e6
    gamma = np.array([10.0, 1.0, 0.05]) * band
    air = plan_aircomp(
        gamma_hz=gamma, tx_power_w=np.full(3, 0.1), noise_psd_w_per_hz=n0, band_hz=band,
        entries=1e6, entries_per_symbol=2, snr_threshold_db=0.0,
    )  # fmt: skip
    assert air.transmitting.tolist() == [True, True, False] and air.excluded == 1
    # rho0 = min over the set of P g = gamma N0 = 1e6 x 4e-21 = 4e-15 W; sigma^2 = N0 B
    assert air.rho0_w == pytest.approx(4e-15)
    assert air.noise_w == pytest.approx(4e-15)
    # MSE of the average of 2: sigma^2 / (4 rho0) = 0.25; one transmission of 1e6 entries,
    # two per complex symbol on 1 MHz: 0.5 s
    assert air.mse(2) == pytest.approx(0.25)
    assert air.duration_s == pytest.approx(0.5)
