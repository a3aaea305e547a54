"""Each selection policy's choice on a 5-device toy whose losses, rates and ages are known, with
the expected cohorts worked out by hand in the comments."""

import math

import numpy as np
import pytest

from fl.selection import jain_index, make_selection_policy
from fl.selection.config import (
    AgeOfUpdateSelection,
    ChannelAwareSelection,
    EnergyAwareSelection,
    OortSelection,
    PowerOfChoiceSelection,
    RandomSelection,
)
from fl.selection.view import ServerView
from fl.strategies.fedavg import FedAvg

NAN = math.nan


def toy_view(available=(0, 1, 2, 3, 4), m=2, round_idx=2) -> ServerView:
    """Device 2 has never been heard from. Rates in bit/s, 1e5 bits to send, 0.1 W."""
    n = 5
    return ServerView(
        round_idx=round_idx,
        now_s=10.0,
        available=np.array(available, dtype=np.int64),
        cohort_size=m,
        num_examples=np.array([10, 20, 30, 40, 50]),
        last_loss=np.array([0.5, 2.0, NAN, 1.0, 0.1]),
        last_loss_sq=np.array([0.3, 4.5, NAN, 1.2, 0.02]),
        last_samples=np.array([10, 20, 0, 40, 50]),
        last_duration_s=np.array([1.0, 5.0, NAN, 2.0, 0.5]),
        last_selected_round=np.array([0, 1, -1, 1, 0]),
        last_delivered_round=np.array([0, 1, -1, 1, 0]),
        times_selected=np.array([1, 1, 0, 1, 1]),
        rate_bps=np.array([1e5, 5e5, 2e5, 3e5, 4e5]),
        compute_s=np.array([1.0, 3.0, 4.0, 2.0, 0.2]),
        uplink_bits=np.full(n, 1e5),
        compute_energy_j=np.array([0.01, 0.02, 0.05, 0.03, 0.01]),
        tx_power_w=np.full(n, 0.1),
    )


def choose(cfg, view=None, seed=0):
    return make_selection_policy(cfg).choose(view or toy_view(), np.random.default_rng(seed))


def test_channel_aware_by_rate_and_by_round_time():
    # rates 1e5, 5e5, 2e5, 3e5, 4e5: the best two are devices 1 and 4
    got = choose(ChannelAwareSelection(kind="channel_aware", score="rate"))
    assert got.device_ids == [1, 4]
    assert got.scores == [5e5, 4e5]
    # round time = compute + 1e5 / rate: 2.0, 3.2, 4.5, 2.33, 0.45 -> devices 4 and 0
    got = choose(ChannelAwareSelection(kind="channel_aware", score="round_time"))
    assert got.device_ids == [0, 4]
    assert got.scores == pytest.approx([-2.0, -0.45])


def test_age_of_update_with_and_without_the_channel():
    # ages at round 2: 2, 1, 3 (never heard from: round + 1), 1, 2; the tie 0/4 goes to 0
    assert choose(AgeOfUpdateSelection(kind="age_of_update")).device_ids == [0, 2]
    # x rate / best rate (0.2, 1, 0.4, 0.6, 0.8): 0.4, 1.0, 1.2, 0.6, 1.6 -> devices 2 and 4
    got = choose(AgeOfUpdateSelection(kind="age_of_update", times_channel=True))
    assert got.device_ids == [2, 4]
    assert got.scores == pytest.approx([1.2, 1.6])


def test_energy_aware_keeps_to_the_budget():
    # energy = compute J + 0.1 W x 1e5 / rate: 0.11, 0.04, 0.10, 0.0633, 0.035
    got = choose(EnergyAwareSelection(kind="energy_aware", budget_j=0.05))
    assert got.device_ids == [1, 4]
    assert got.scores == pytest.approx([0.04, 0.035])
    for seed in range(20):  # budget 0.07: two of {1, 3, 4} at random
        got = choose(EnergyAwareSelection(kind="energy_aware", budget_j=0.07), seed=seed)
        assert len(got.device_ids) == 2 and set(got.device_ids) <= {1, 3, 4}
    assert choose(EnergyAwareSelection(kind="energy_aware", budget_j=0.01)).device_ids == []


def test_power_of_choice_keeps_the_highest_losses_of_its_candidates():
    # all 5 as candidates: device 2 was never heard from (counts as the highest), then 1 (2.0)
    cfg = PowerOfChoiceSelection(kind="power_of_choice", candidates=5)
    assert choose(cfg).device_ids == [1, 2]
    # 3 candidates drawn by data size; the kept two are the candidates' two highest losses
    cfg = PowerOfChoiceSelection(kind="power_of_choice", candidates=3)
    loss = np.array([0.5, 2.0, np.inf, 1.0, 0.1])
    for seed in range(10):
        rng = np.random.default_rng(seed)
        p = np.arange(10, 60, 10) / 150
        cand = np.sort(rng.choice(np.arange(5), size=3, replace=False, p=p))
        want = sorted(cand[np.argsort(-loss[cand], kind="stable")[:2]].tolist())
        assert choose(cfg, seed=seed).device_ids == want


def test_random_selection_draws_as_the_strategies_do():
    view = toy_view(m=3)
    for seed in range(5):
        got = choose(RandomSelection(kind="random"), view, seed=seed).device_ids
        own = FedAvg(clients_per_round=3).select(
            round_idx=2, available_ids=[0, 1, 2, 3, 4], rng=np.random.default_rng(seed)
        )
        assert got == own


def oort(**kw):
    return OortSelection(kind="oort", epsilon=0.0, cutoff=1.0, **kw)


def test_oort_utility_penalty_and_staleness_by_hand():
    # U = samples sqrt(mean loss^2): 5.477, 42.43, -, 43.82, 7.071 -> normalised over the
    # explored 0, 0.96371, -, 1, 0.04157; staleness sqrt(0.1 ln 3 / (last + 1)): 0.3315,
    # 0.23437, -, 0.23437, 0.3315. Scores 0.3315, 1.19808, -, 1.23437, 0.3730.
    # T = 1.5 s: device 1 (5 s) x (1.5/5)^2 -> 0.1078, device 3 (2 s) x (1.5/2)^2 -> 0.6944
    got = choose(oort(preferred_round_s=1.5))
    assert got.device_ids == [3, 4]
    assert got.scores == pytest.approx([0.6944, 0.3730], abs=1e-4)
    # T = 10 s: no penalty, devices 1 and 3
    got = choose(oort(preferred_round_s=10.0))
    assert got.device_ids == [1, 3]
    assert got.scores == pytest.approx([1.19808, 1.23437], abs=1e-5)
    # pacer: T = the 30th percentile of the known round times [0.5, 1, 2, 5] = 1.0 s:
    # device 1 x 1/25 -> 0.0479, device 3 x 1/4 -> 0.3086; device 0 (1 s, not over) 0.3315
    got = choose(oort())
    assert got.device_ids == [0, 4]


def test_oort_explores_never_tried_devices_and_decays_epsilon():
    policy = make_selection_policy(OortSelection(kind="oort", epsilon=0.5, cutoff=1.0))
    got = policy.choose(toy_view(), np.random.default_rng(0))
    # int(2 x 0.5) = 1 exploration pick: device 2, the only one never tried (nan score)
    assert 2 in got.device_ids and len(got.device_ids) == 2
    assert math.isnan(got.scores[got.device_ids.index(2)])
    assert policy.epsilon == pytest.approx(0.49)


def test_jain_index():
    assert jain_index(np.array([1, 1, 1, 1])) == 1.0
    assert jain_index(np.array([4, 0, 0, 0])) == 0.25
    assert jain_index(np.array([1, 2, 3])) == pytest.approx(36 / (3 * 14))
    assert jain_index(np.zeros(3)) == 1.0
