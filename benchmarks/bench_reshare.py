"""The re-shared uplink's incremental schedule against re-rating every transfer in flight at
every start and end (the previous implementation, kept here as ``RerateAll``), side by side in
one run; prints a table.

    python benchmarks/bench_reshare.py [--quick]

Transfers alone, no FL: 10,000 devices (``--quick``: 1,000) upload S bits each every 2 s on
average (Poisson starts), with gamma 10^U(7, 10) Hz, over a band of 10 kHz per device shared
equally among the transfers in flight. Rows for S = 150, 200 and 300 kbit, which puts about
1%, 5% and 85% of the devices in flight at once (the count in flight grows steeply as the
load nears the band's capacity): microseconds of wall time per transfer for each class,
their ratio, and the mean number in flight over the second half of the run.
Both must give the same finish times (checked on every row). ``benchmarks/bench_async.py``
measures the whole engine on the re-shared band.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import simpy
from timing import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from channels.link import shannon_rate_bps  # noqa: E402
from simulator.engine.shared_uplink import SharedUplink  # noqa: E402

_FINISH_TOLERANCE_S = 1e-9
BAND_PER_DEVICE_HZ, UPLOAD_EVERY_S = 10e3, 2.0


class RerateAll:
    """The re-shared uplink as it was before the incremental schedule: at every start or end,
    every transfer in flight is brought up to date and re-rated (compact arrays over the
    transfers in flight), and the earliest finish is their minimum."""

    def __init__(self, env: simpy.Environment, band_hz: float, num_keys: int):
        self.env, self.band_hz = env, band_hz
        self._slot = np.full(num_keys, -1, dtype=np.int64)  # key -> slot, -1: not in flight
        self._keys = np.zeros(num_keys, dtype=np.int64)
        self._remaining_bits = np.zeros(num_keys)
        self._gamma_hz = np.zeros(num_keys)
        self._rate_bps = np.zeros(num_keys)
        self._count = 0
        self._unreachable = 0  # transfers in flight with no channel (gamma <= 0)
        self._done: dict[int, simpy.Event] = {}
        self._updated_s = env.now
        self._generation = 0

    @property
    def active(self) -> int:
        return self._count

    def start(self, key: int, bits: float, gamma_hz: float) -> simpy.Event:
        """Start transferring ``bits`` (> 0) for ``key``; the event succeeds when they are
        delivered. :meth:`cancel` stops it."""
        self._advance()
        done = self.env.event()
        i = self._count
        self._slot[key], self._keys[i] = i, key
        self._remaining_bits[i] = float(bits)
        self._gamma_hz[i] = float(gamma_hz)
        self._unreachable += not gamma_hz > 0
        self._count += 1
        self._done[key] = done
        self._reschedule()
        return done

    def cancel(self, key: int) -> None:
        if self._slot[key] < 0:
            return
        self._advance()
        self._remove(key)
        self._done.pop(key, None)
        self._reschedule()

    def _remove(self, key: int) -> None:
        """Swap the last transfer in flight into ``key``'s slot."""
        i, last = int(self._slot[key]), self._count - 1
        self._unreachable -= not self._gamma_hz[i] > 0
        if i != last:
            moved = int(self._keys[last])
            self._keys[i], self._slot[moved] = moved, i
            self._remaining_bits[i] = self._remaining_bits[last]
            self._gamma_hz[i] = self._gamma_hz[last]
            self._rate_bps[i] = self._rate_bps[last]
        self._slot[key] = -1
        self._count = last

    def _advance(self) -> None:
        """Bring remaining bits to ``now`` at the rates that held since the last change."""
        dt = self.env.now - self._updated_s
        m = self._count
        if dt > 0 and m:
            self._remaining_bits[:m] -= self._rate_bps[:m] * dt
        self._updated_s = self.env.now

    def _reschedule(self) -> None:
        self._generation += 1
        m = self._count
        if m == 0:
            return
        gamma = self._gamma_hz[:m]
        # (counted as transfers come and go, not re-tested: this runs at every start and end)
        sharing = m - self._unreachable
        if sharing == m:  # one positive share for all: the rate helper's fast path
            rates = shannon_rate_bps(self.band_hz / m, gamma)
        else:  # devices with no channel take no share
            reachable = gamma > 0
            rates = np.zeros(m)
            if sharing:
                rates[reachable] = shannon_rate_bps(self.band_hz / sharing, gamma[reachable])
        self._rate_bps[:m] = rates
        if rates.all():  # the usual case, without the cost of entering an errstate
            first = float((self._remaining_bits[:m] / rates).min())
        else:  # a rate of 0 (no channel, or a share too thin to carry a bit): never finishes
            with np.errstate(divide="ignore", invalid="ignore"):
                finish_s = np.where(rates > 0, self._remaining_bits[:m] / rates, math.inf)
            first = float(finish_s.min())
        if math.isfinite(first):
            generation = self._generation
            timer = self.env.timeout(max(first, 0.0))
            timer.callbacks.append(lambda _event: self._on_timer(generation))

    def _on_timer(self, generation: int) -> None:
        if generation != self._generation:  # a later change superseded this timer
            return
        self._advance()
        m = self._count
        rates = self._rate_bps[:m]
        done = (rates > 0) & (self._remaining_bits[:m] <= rates * _FINISH_TOLERANCE_S)
        finished = np.sort(self._keys[:m][done]).tolist()  # ascending device id
        events = [self._done.pop(k) for k in finished]
        for key in finished:
            self._remove(key)
        self._reschedule()
        for event in events:
            event.succeed()


def run(uplink_class, n: int, transfers_each: int, bits: float, seed: int = 0):
    """Wall seconds, the finish time of each transfer, and the mean count in flight at starts
    (second half). Open loop (start times drawn up front, each transfer its own key), so that
    both classes see the same starts and their finish times can be compared to rounding."""
    rng = np.random.default_rng(seed)
    count = n * transfers_each
    start_s = np.cumsum(rng.exponential(UPLOAD_EVERY_S / n, count))
    gamma_hz = 10 ** rng.uniform(7, 10, count)
    env = simpy.Environment()
    band_hz = BAND_PER_DEVICE_HZ * n
    band = (
        uplink_class(env, band_hz, count)
        if uplink_class is RerateAll
        else uplink_class(env, band_hz)
    )
    finish_s = np.full(count, np.nan)
    in_flight: list[int] = []

    def arrivals():
        for key in range(count):
            yield env.timeout(start_s[key] - env.now)
            in_flight.append(band.active)
            band.start(key, bits, gamma_hz[key]).callbacks.append(
                lambda _event, key=key: finish_s.__setitem__(key, env.now)
            )

    env.process(arrivals())
    started = time.perf_counter()
    env.run()
    steady = in_flight[len(in_flight) // 2 :]
    return time.perf_counter() - started, finish_s, float(np.mean(steady))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 devices")
    args = parser.parse_args()
    n = 1000 if args.quick else 10000
    table = Table()
    for bits in (150e3, 200e3, 300e3):
        old_s, old_finish, in_flight = run(RerateAll, n, 5, bits)
        new_s, new_finish, _ = run(SharedUplink, n, 5, bits)
        np.testing.assert_allclose(new_finish, old_finish, rtol=1e-9)
        per_old, per_new = 1e6 * old_s / old_finish.size, 1e6 * new_s / new_finish.size
        table.row(
            f"re-shared uplink, {n:,} devices, {bits / 1e3:.0f} kbit ({in_flight:,.0f} in flight)",
            f"incremental {per_new:,.1f} us, re-rate all {per_old:,.1f} us per transfer"
            f" ({per_old / per_new:.2f}x)",
            "(information)",
            None,
        )
    table.print()


if __name__ == "__main__":
    main()
