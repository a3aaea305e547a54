"""The uplink band re-shared among the transfers in flight (``simulation.uplink_sharing:
reshare``, asynchronous strategies).

FDMA with equal shares that follow the number of active transfers: whenever a transfer starts,
finishes or is cancelled, every active transfer's remaining bits are brought up to date at its
old rate and all rates are recomputed with ``band / n_active`` each. One SimPy timer is pending
at a time, for the earliest finish; a change invalidates it (generation counter) and sets a new
one. Each transfer keeps the channel (``gamma_hz``) of its dispatch, like the fixed slots.
Devices with no channel (gamma 0) take no share: nothing they send gets through.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from channels.link import shannon_rate_bps

# A transfer with less than this much sending time left counts as finished (float rounding).
_FINISH_TOLERANCE_S = 1e-9


class SharedUplink:
    """Transfers keyed by device id (0 <= key < ``num_keys``). The transfers in flight sit in
    compact arrays (slot i holds key ``_keys[i]``; a finished or cancelled one is swapped out
    with the last), so a change costs a few vector operations over the transfers in flight
    only, never over every key."""

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

    def send(self, key: int, bits: float, gamma_hz: float):
        """Process step: transfer ``bits`` for ``key`` (a device id); returns when delivered.
        An interrupt while waiting cancels the transfer (its share goes to the others)."""
        if bits <= 0:
            return
        done = self.start(key, bits, gamma_hz)
        try:
            yield done
        except simpy.Interrupt:
            self.cancel(key)
            raise

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
