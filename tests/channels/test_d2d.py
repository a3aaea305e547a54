"""Device-to-device links are keyed by the unordered pair: the same link both ways."""

import math

import numpy as np

from channels.d2d import pair_distance_m, pair_ids
from channels.factory import make_d2d_link
from tests.conftest import make_scenario


def test_pair_ids_are_symmetric_and_distinct():
    a, b = np.array([0, 3, 7, 2]), np.array([5, 1, 2, 9])
    assert np.array_equal(pair_ids(a, b), pair_ids(b, a))
    assert pair_ids([3], [5])[0] == 3 * 2**31 + 5
    assert len(set(pair_ids([0, 0, 1], [1, 2, 2]).tolist())) == 3


def test_a_d2d_link_has_the_same_gain_in_both_directions_and_the_pair_distance():
    cfg = make_scenario(
        {"channel.d2d": {"fading": {"kind": "rayleigh", "coherence_s": 1.0}}}
    ).channel
    link = make_d2d_link(cfg, seed=11)
    pos = np.array([[0.0, 0.0], [30.0, 40.0], [-60.0, 80.0]])
    src, dst = np.array([0, 1, 2]), np.array([1, 2, 0])
    d = pair_distance_m(pos, src, dst)
    assert d.tolist() == [50.0, math.hypot(90, 40), 100.0]
    forward = link.power_gain(link_ids=pair_ids(src, dst), distance_m=d, t_s=0.3)
    backward = link.power_gain(link_ids=pair_ids(dst, src), distance_m=d, t_s=0.3)
    assert np.array_equal(forward, backward)
