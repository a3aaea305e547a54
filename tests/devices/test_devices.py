import numpy as np
import pytest
from pydantic import ValidationError

from devices.availability import AlwaysOn, MarkovOnOff
from devices.config import DevicesConfig
from devices.population import draw_quantity, make_population
from devices.timing import compute_cycles, compute_energy_j, train_time_s, tx_energy_j


def test_timing_and_energy_by_hand():
    # 2e4 cycles/sample * 160 samples = 3.2e6 cycles; at 1 GHz -> 3.2 ms
    assert train_time_s(1e9, 2e4, 160) == pytest.approx(3.2e-3)
    # half the model kept -> half the time
    assert train_time_s(1e9, 2e4, 160, kept_fraction=0.5) == pytest.approx(1.6e-3)
    # kappa * cycles * f^2 = 1e-28 * 3.2e6 * 1e18 = 3.2e-4 J
    assert compute_energy_j(1e-28, compute_cycles(2e4, 160), 1e9) == pytest.approx(3.2e-4)
    assert tx_energy_j(0.2, 0.5) == pytest.approx(0.1)


def rngs(seed=0):
    return lambda name: np.random.default_rng([seed, len(name), sum(map(ord, name))])


def test_population_draws_from_the_configured_laws():
    cfg = DevicesConfig(
        count=20_000,
        cpu_hz={"dist": "uniform", "low": 1e8, "high": 2e9},
        cycles_per_sample={"dist": "lognormal", "median": 2e4, "sigma": 0.5},
        tx_power_dbm={"dist": "choice", "values": [10, 23], "weights": [3, 1]},
        placement={"kind": "disc", "radius_m": 500, "min_radius_m": 0},
    )
    pop = make_population(cfg, rngs())
    assert len(pop) == 20_000
    assert 1e8 <= pop.cpu_hz.min() and pop.cpu_hz.max() <= 2e9
    assert pop.cpu_hz.mean() == pytest.approx(1.05e9, rel=0.01)
    assert np.median(pop.cycles_per_sample) == pytest.approx(2e4, rel=0.02)
    assert np.std(np.log(pop.cycles_per_sample)) == pytest.approx(0.5, rel=0.03)
    assert set(np.unique(pop.tx_power_dbm)) == {10.0, 23.0}
    assert np.mean(pop.tx_power_dbm == 10.0) == pytest.approx(0.75, abs=0.01)
    # uniform over the disc area: P(r < R/2) = 1/4
    assert pop.distance_m.max() <= 500
    assert np.mean(pop.distance_m < 250) == pytest.approx(0.25, abs=0.01)
    spec = pop.spec(7)
    assert spec.device_id == 7 and spec.cpu_hz == pop.cpu_hz[7]
    assert spec.distance_m == pytest.approx(pop.distance_m[7])


def test_square_placement_and_constants():
    cfg = DevicesConfig(count=1000, cpu_hz=5e8, placement={"kind": "square", "side_m": 100})
    pop = make_population(cfg, rngs())
    assert np.all(pop.cpu_hz == 5e8)
    assert np.abs(pop.position_m).max() <= 50


def test_population_is_reproducible_per_stream():
    cfg = DevicesConfig(count=50, cpu_hz={"dist": "uniform", "low": 1, "high": 2})
    a, b = make_population(cfg, rngs(1)), make_population(cfg, rngs(1))
    np.testing.assert_array_equal(a.cpu_hz, b.cpu_hz)
    np.testing.assert_array_equal(a.position_m, b.position_m)


def test_bad_distributions_are_rejected():
    with pytest.raises(ValidationError):
        DevicesConfig(count=2, cpu_hz={"dist": "uniform", "low": 2, "high": 1})
    with pytest.raises(ValidationError):
        DevicesConfig(count=2, cpu_hz={"dist": "choice", "values": [1, 2], "weights": [1]})
    with pytest.raises(ValidationError):
        draw_quantity(DevicesConfig(count=1, cpu_hz={"dist": "gamma"}).cpu_hz, 1, None)


def test_markov_on_off_statistics():
    m = MarkovOnOff(mean_online_s=30.0, mean_offline_s=10.0)
    rng = np.random.default_rng(3)
    on = [m.next_change_s(rng, device_id=0, online=True, now_s=0) for _ in range(20_000)]
    off = [m.next_change_s(rng, device_id=0, online=False, now_s=0) for _ in range(20_000)]
    assert np.mean(on) == pytest.approx(30.0, rel=0.03)
    assert np.mean(off) == pytest.approx(10.0, rel=0.03)
    starts = [m.initially_online(rng, device_id=0) for _ in range(20_000)]
    assert np.mean(starts) == pytest.approx(0.75, abs=0.01)
    assert AlwaysOn().next_change_s(rng, device_id=0, online=True, now_s=0) == np.inf
