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
    def __init__(self, env: simpy.Environment, band_hz: float):
        self.env, self.band_hz = env, band_hz
        self._remaining_bits: dict[int, float] = {}
        self._gamma_hz: dict[int, float] = {}
        self._rate_bps: dict[int, float] = {}
        self._done: dict[int, simpy.Event] = {}
        self._updated_s = env.now
        self._generation = 0

    @property
    def active(self) -> int:
        return len(self._remaining_bits)

    def rate_bps(self, key: int) -> float:
        """Current rate of an active transfer (bit/s)."""
        return self._rate_bps[key]

    def send(self, key: int, bits: float, gamma_hz: float):
        """Process step: transfer ``bits`` for ``key`` (a device id); returns when delivered.
        An interrupt while waiting cancels the transfer (its share goes to the others)."""
        if bits <= 0:
            return
        self._advance()
        done = self.env.event()
        self._remaining_bits[key] = float(bits)
        self._gamma_hz[key] = float(gamma_hz)
        self._done[key] = done
        self._reschedule()
        try:
            yield done
        except simpy.Interrupt:
            self.cancel(key)
            raise

    def cancel(self, key: int) -> None:
        if key not in self._remaining_bits:
            return
        self._advance()
        self._drop(key)
        self._reschedule()

    def _drop(self, key: int) -> None:
        for table in (self._remaining_bits, self._gamma_hz, self._rate_bps):
            table.pop(key, None)
        self._done.pop(key, None)

    def _advance(self) -> None:
        """Bring remaining bits to ``now`` at the rates that held since the last change."""
        dt = self.env.now - self._updated_s
        if dt > 0:
            for key, rate in self._rate_bps.items():
                self._remaining_bits[key] -= rate * dt
        self._updated_s = self.env.now

    def _reschedule(self) -> None:
        self._generation += 1
        keys = sorted(self._remaining_bits)
        if not keys:
            self._rate_bps.clear()
            return
        gamma = np.array([self._gamma_hz[k] for k in keys])
        sharing = int((gamma > 0).sum())
        share_hz = self.band_hz / sharing if sharing else 0.0
        rates = shannon_rate_bps(np.where(gamma > 0, share_hz, 0.0), gamma)
        self._rate_bps = dict(zip(keys, rates.tolist(), strict=True))
        finish_s = [
            self._remaining_bits[k] / r if r > 0 else math.inf for k, r in self._rate_bps.items()
        ]
        first = min(finish_s)
        if math.isfinite(first):
            generation = self._generation
            timer = self.env.timeout(max(first, 0.0))
            timer.callbacks.append(lambda _event: self._on_timer(generation))

    def _on_timer(self, generation: int) -> None:
        if generation != self._generation:  # a later change superseded this timer
            return
        self._advance()
        finished = [
            k
            for k, r in self._rate_bps.items()
            if r > 0 and self._remaining_bits[k] <= r * _FINISH_TOLERANCE_S
        ]
        events = [self._done[k] for k in sorted(finished)]
        for k in finished:
            self._drop(k)
        self._reschedule()
        for event in events:
            event.succeed()
