"""The incremental re-shared uplink (``simulator.engine.shared_uplink``) against a direct fluid
simulation that recomputes every rate at every start, end and cancel, on random schedules
with cancels, reused keys and devices with no channel. (The hand-worked cases are in
``test_async_features``.)"""

from __future__ import annotations

import math

import pytest
import simpy
from hypothesis import given
from hypothesis import strategies as st

from simulator.engine import shared_uplink
from simulator.engine.shared_uplink import SharedUplink

BAND_HZ = 1e6


def reference_finish_times(band_hz: float, plan: list[tuple]) -> dict[int, float]:
    """Direct fluid simulation of ``plan`` ((start_s, key, bits, gamma_hz, cancel_s), a key's
    transfers in time order): from one event to the next, every transfer in flight with a
    channel sends at ``(B / m) log2(1 + gamma m / B)``. Returns {plan index: finish time}."""
    pending = sorted(range(len(plan)), key=lambda i: plan[i][0])
    remaining: dict[int, float] = {}
    finished: dict[int, float] = {}
    now = 0.0
    while pending or remaining:
        sharing = [i for i in remaining if plan[i][3] > 0]
        m = len(sharing)
        rates = {i: band_hz / m * math.log2(1 + plan[i][3] * m / band_hz) for i in sharing}
        finish = min((now + remaining[i] / rates[i] for i in sharing), default=math.inf)
        start = plan[pending[0]][0] if pending else math.inf
        cancel = min((plan[i][4] for i in remaining), default=math.inf)
        t_next = min(finish, start, cancel)
        if t_next == math.inf:
            break
        for i in sharing:
            remaining[i] -= rates[i] * (t_next - now)
        now = t_next
        for i in sharing:
            if remaining[i] <= rates[i] * 1e-9:
                finished[i] = now
                del remaining[i]
        for i in [i for i in remaining if plan[i][4] <= now]:
            del remaining[i]
        while pending and plan[pending[0]][0] <= now:
            i = pending.pop(0)
            remaining[i] = plan[i][2]
    return finished


def uplink_finish_times(band_hz: float, plan: list[tuple]) -> dict[int, float]:
    """The same plan on :class:`SharedUplink` in SimPy."""
    env = simpy.Environment()
    band = SharedUplink(env, band_hz)
    finished: dict[int, float] = {}

    def transfer(i, start_s, key, bits, gamma_hz, cancel_s):
        yield env.timeout(start_s)
        band.start(key, bits, gamma_hz).callbacks.append(
            lambda _event: finished.__setitem__(i, env.now)
        )
        if cancel_s < math.inf:
            yield env.timeout(cancel_s - start_s)
            if i not in finished:
                band.cancel(key)

    for i, entry in enumerate(plan):
        env.process(transfer(i, *entry))
    env.run()
    return finished


@st.composite
def plans(draw, max_transfers=25):
    """Transfers on up to 8 keys; some cancelled, some keys used again after their cancel,
    some with no channel (gamma 0)."""
    n = draw(st.integers(1, max_transfers))
    plan, free_from = [], {}
    for _ in range(n):
        key = draw(st.integers(0, 7))
        if key in free_from and free_from[key] == math.inf:
            continue  # its transfer is never cancelled: the key is not reused
        start = free_from.get(key, 0.0) + draw(st.floats(0.001, 0.5))  # after its cancel
        bits = draw(st.floats(1e3, 1e6))
        gamma = draw(st.one_of(st.just(0.0), st.floats(1e3, 1e9)))
        cancel = start + draw(st.one_of(st.just(math.inf), st.floats(0.01, 3.0)))
        plan.append((start, key, bits, gamma, cancel))
        free_from[key] = cancel
    return plan


def assert_same_finishes(plan):
    expected = reference_finish_times(BAND_HZ, plan)
    got = uplink_finish_times(BAND_HZ, plan)
    assert set(got) == set(expected)
    for i, t_s in expected.items():
        assert got[i] == pytest.approx(t_s, rel=1e-9, abs=1e-12)


@given(plan=plans())
def test_incremental_schedule_matches_the_direct_fluid_simulation(plan):
    assert_same_finishes(plan)


@given(plan=plans())
def test_rebuilt_heap_keys_give_the_same_schedule(plan):
    """With the heap's keys rebuilt at every end (instead of when their scale nears
    underflow), the schedule is the same."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared_uplink, "_RESCALE_BELOW", 2.0)
        assert_same_finishes(plan)
        assert_same_finishes(CROWDED)


# 150 transfers in flight at once beside a long one, then 150 more.
CROWDED = [(0.0, 150, 5e6, 1e4, math.inf)]  # the long one: done at ~349 s
CROWDED += [
    (0.001 + 0.01 * i, i, 2e4 + 97.0 * i, 10 ** (3 + 6 * ((i * 37) % 150) / 150), math.inf)
    for i in range(150)
]
CROWDED += [(40.0 + 0.01 * i, i, 2e4, 1e6, math.inf) for i in range(150)]


def test_a_journal_that_grows_and_drops_folded_periods_keeps_the_schedule():
    """In ``CROWDED`` the journal of periods (256 entries at first) grows to 512 while
    unfolded periods fill it, then drops the 461 that every transfer has folded (counted when
    this test was written)."""
    assert_same_finishes(CROWDED)
