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
    """Transfers keyed by device id (0 <= key < ``num_keys``), state in arrays [num_keys] so
    that every change costs a few vector operations over the transfers in flight."""

    def __init__(self, env: simpy.Environment, band_hz: float, num_keys: int):
        self.env, self.band_hz = env, band_hz
        self._remaining_bits = np.zeros(num_keys)
        self._gamma_hz = np.zeros(num_keys)
        self._rate_bps = np.zeros(num_keys)
        self._in_flight = np.zeros(num_keys, dtype=bool)
        self._active = np.zeros(0, dtype=np.int64)  # sorted keys in flight
        self._done: dict[int, simpy.Event] = {}
        self._updated_s = env.now
        self._generation = 0

    @property
    def active(self) -> int:
        return int(self._active.size)

    def send(self, key: int, bits: float, gamma_hz: float):
        """Process step: transfer ``bits`` for ``key`` (a device id); returns when delivered.
        An interrupt while waiting cancels the transfer (its share goes to the others)."""
        if bits <= 0:
            return
        self._advance()
        done = self.env.event()
        self._remaining_bits[key] = float(bits)
        self._gamma_hz[key] = float(gamma_hz)
        self._in_flight[key] = True
        self._done[key] = done
        self._reschedule()
        try:
            yield done
        except simpy.Interrupt:
            self.cancel(key)
            raise

    def cancel(self, key: int) -> None:
        if not self._in_flight[key]:
            return
        self._advance()
        self._in_flight[key] = False
        self._done.pop(key, None)
        self._reschedule()

    def _advance(self) -> None:
        """Bring remaining bits to ``now`` at the rates that held since the last change."""
        dt = self.env.now - self._updated_s
        if dt > 0 and self._active.size:
            a = self._active
            self._remaining_bits[a] -= self._rate_bps[a] * dt
        self._updated_s = self.env.now

    def _reschedule(self) -> None:
        self._generation += 1
        self._active = a = np.flatnonzero(self._in_flight)
        if a.size == 0:
            return
        gamma = self._gamma_hz[a]
        reachable = gamma > 0
        sharing = int(reachable.sum())
        share_hz = self.band_hz / sharing if sharing else 0.0
        rates = shannon_rate_bps(np.where(reachable, share_hz, 0.0), gamma)
        self._rate_bps[a] = rates
        with np.errstate(divide="ignore"):
            finish_s = np.where(rates > 0, self._remaining_bits[a] / rates, math.inf)
        first = float(finish_s.min())
        if math.isfinite(first):
            generation = self._generation
            timer = self.env.timeout(max(first, 0.0))
            timer.callbacks.append(lambda _event: self._on_timer(generation))

    def _on_timer(self, generation: int) -> None:
        if generation != self._generation:  # a later change superseded this timer
            return
        self._advance()
        a = self._active
        rates = self._rate_bps[a]
        finished = a[(rates > 0) & (self._remaining_bits[a] <= rates * _FINISH_TOLERANCE_S)]
        events = [self._done.pop(k) for k in finished.tolist()]  # ascending device id
        self._in_flight[finished] = False
        self._reschedule()
        for event in events:
            event.succeed()
