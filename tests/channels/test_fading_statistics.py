"""Fading and shadowing: the right laws (by their moments), and pure functions of the key."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from channels.counter_rng import stream_id, uniform01
from channels.fading import NoFading, RayleighFading, RicianFading
from channels.shadowing import Shadowing

N = 200_000
LINKS = np.arange(N)


def test_uniforms_are_uniform():
    u = uniform01(1, 2, LINKS, 0)
    assert 0.0 < u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_rayleigh_power_is_unit_exponential():
    g = RayleighFading(seed=3, stream=stream_id("x"), coherence_s=1.0).power_gain(LINKS, 0.0)
    assert g.mean() == pytest.approx(1.0, abs=0.01)
    assert g.var() == pytest.approx(1.0, abs=0.03)
    assert stats.kstest(g, "expon").pvalue > 1e-3


@pytest.mark.parametrize("k", [0.0, 1.0, 5.0])
def test_rician_power_moments(k):
    # E|h|^2 = 1, Var|h|^2 = (1 + 2K) / (1 + K)^2 for the normalised Rician channel.
    g = RicianFading(seed=4, stream=7, coherence_s=1.0, k_factor=k).power_gain(LINKS, 0.0)
    assert g.mean() == pytest.approx(1.0, abs=0.01)
    assert g.var() == pytest.approx((1 + 2 * k) / (1 + k) ** 2, rel=0.03)


def test_rician_power_follows_noncentral_chi2():
    k = 3.0
    g = RicianFading(seed=9, stream=1, coherence_s=1.0, k_factor=k).power_gain(LINKS, 0.0)
    # 2 (K + 1) |h|^2 ~ noncentral chi-square, 2 dof, noncentrality 2K
    assert stats.kstest(2 * (k + 1) * g, stats.ncx2(df=2, nc=2 * k).cdf).pvalue > 1e-3


def test_shadowing_std_in_db():
    s = Shadowing(std_db=8.0, seed=5).offset_db(LINKS)
    assert s.mean() == pytest.approx(0.0, abs=0.1)
    assert s.std() == pytest.approx(8.0, rel=0.01)
    assert np.all(Shadowing(std_db=0.0, seed=5).offset_db(LINKS[:10]) == 0.0)


def test_fading_is_a_pure_function_of_seed_link_and_block():
    fading = RayleighFading(seed=11, stream=2, coherence_s=0.5)
    a = fading.power_gain(np.array([0, 1, 2, 3]), 0.1)
    # same block (t in [0, 0.5)), any order, any subset: same draws
    np.testing.assert_array_equal(fading.power_gain(np.array([3, 1]), 0.4), a[[3, 1]])
    # adding devices never changes the others' channels
    np.testing.assert_array_equal(fading.power_gain(np.arange(100), 0.2)[:4], a)
    # next coherence block: new draws
    assert not np.any(fading.power_gain(np.array([0, 1, 2, 3]), 0.6) == a)
    # another seed or stream: new draws
    assert not np.any(RayleighFading(12, 2, 0.5).power_gain(np.arange(4), 0.1) == a)
    assert not np.any(RayleighFading(11, 3, 0.5).power_gain(np.arange(4), 0.1) == a)


def test_successive_blocks_are_uncorrelated():
    fading = RayleighFading(seed=1, stream=1, coherence_s=1.0)
    a = fading.power_gain(LINKS, 0.0)
    b = fading.power_gain(LINKS, 1.0)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


def test_no_fading_is_unit_gain():
    np.testing.assert_array_equal(NoFading().power_gain(np.arange(5), 3.0), np.ones(5))


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**63 - 1),
    stream=st.integers(0, 2**32 - 1),
    links=st.lists(st.integers(0, 2**40), min_size=1, max_size=4),
    block=st.integers(-5, 2**31),
    component=st.integers(0, 3),
)
def test_scalar_path_is_bit_identical_to_the_vectorised_one(seed, stream, links, block, component):
    # up to 4 draws take the pure-Python path; padding to 8 forces the numpy path
    small = uniform01(seed, stream, np.array(links), block, component)
    padded = np.array(links + [0] * (8 - len(links)))
    assert np.array_equal(small, uniform01(seed, stream, padded, block, component)[: len(links)])
    # a list of ids, or a numpy block index, takes the scalar path's converting entry
    assert np.array_equal(small, uniform01(seed, stream, links, np.int64(block), component))
