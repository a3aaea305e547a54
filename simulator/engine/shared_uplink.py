"""The uplink band re-shared among the transfers in flight (``simulation.uplink_sharing:
reshare``, asynchronous strategies).

FDMA with equal shares that follow the number of transfers sharing the band: with m of them,
transfer i sends at ``r_i(m) = (B / m) log2(1 + gamma_i m / B)``. Each transfer keeps the
channel (``gamma_hz``) of its dispatch, like the fixed slots. Devices with no channel (gamma
0) take no share: nothing they send gets through.

The fluid schedule is kept incrementally: a start or an end costs a few heap operations and
looks at the few transfers at the top of the heap (about 2), never at every transfer in
flight (m of them):

* A journal records each period between changes: the share ``B / m`` it was sent at and its
  length. A transfer's sent bits are folded from the journal only when it is looked at, over
  the periods since its last look, in one vector operation: exact whatever happened in
  between. The journal keeps the periods from the oldest fold still needed.
* A heap holds a lower bound on each transfer's finish time. A start slows everyone, so old
  bounds stay valid. An end that takes the count from m to m' < m speeds each transfer up by
  at most m / m' (a rate grows less than its share), so the remaining time of every one
  shrinks by at most the factor m' / m: one affine map of all the keys, kept as a scale and
  an offset, keeps them valid.
* After every change the top of the heap is looked at until it holds an exact finish time
  (computed in the current state); that is the next finish, and one SimPy timer is set for
  it. A later change invalidates the timer (generation counter) and sets a new one.

Shannon rates at equal shares have no common virtual clock (each rate changes by its own
factor when m changes), so each transfer folds the periods itself.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import simpy

# A transfer with less than this much sending time left counts as finished (float rounding).
_FINISH_TOLERANCE_S = 1e-9
# Rebuild the heap's keys before the scale of their affine map could underflow.
_RESCALE_BELOW = 1e-200
_LN2 = math.log(2.0)


class _Transfer:
    """One transfer in flight: its bits, channel, the bits sent up to journal entry
    ``folded_to`` (a global index), its heap entry and the state its key was exact in."""

    __slots__ = ("bits", "gamma_hz", "sent_bits", "folded_to", "entry", "exact_in", "finish_s")

    def __init__(self, bits: float, gamma_hz: float, folded_to: int):
        self.bits, self.gamma_hz = bits, gamma_hz
        self.sent_bits, self.folded_to = 0.0, folded_to
        self.entry = -1  # serial number of its live heap entry (-1: none, no channel)
        self.exact_in = -1  # the state in which its heap key was its exact finish time
        self.finish_s = math.inf  # that finish time (s)


class SharedUplink:
    """Transfers keyed by device id (any int; one transfer per key at a time)."""

    def __init__(self, env: simpy.Environment, band_hz: float):
        self.env, self.band_hz = env, band_hz
        self._sharing = 0  # transfers in flight with a channel
        # The journal: periods since the oldest fold still needed, as 1 / share (1/Hz) and
        # share x length / ln 2 (bit per unit of log1p), so that a fold is one dot product.
        self._inv_share = np.zeros(256)
        self._weight = np.zeros(256)
        self._length = 0  # entries in use
        self._base = 0  # global index of entry 0
        self._transfers: dict[int, _Transfer] = {}
        self._done: dict[int, simpy.Event] = {}
        self._heap: list[tuple[float, int, int]] = []  # (key, serial, device key)
        self._serial = 0
        self._scale, self._offset = 1.0, 0.0  # heap key k is the bound scale * k + offset (s)
        self._state = 0  # bumped by every start and end
        self._updated_s = env.now
        self._generation = 0

    @property
    def active(self) -> int:
        return len(self._transfers)

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
        self._done[key] = done
        if not gamma_hz > 0:  # takes no share and never finishes
            self._transfers[key] = _Transfer(float(bits), 0.0, -1)
            return done
        self._sharing += 1
        self._state += 1  # everyone slows down: the other bounds stay valid
        transfer = _Transfer(float(bits), float(gamma_hz), self._base + self._length)
        self._transfers[key] = transfer
        rate = self._rate_bps(transfer.gamma_hz)
        self._push_exact(key, transfer, transfer.bits / rate if rate > 0 else math.inf)
        self._reschedule()
        return done

    def cancel(self, key: int) -> None:
        transfer = self._transfers.pop(key, None)
        if transfer is None:
            return
        self._done.pop(key, None)
        if not transfer.gamma_hz > 0:  # no channel: it never took a share
            return
        self._advance()
        self._shrink_to(self._sharing - 1)
        self._reschedule()

    # -- the schedule ------------------------------------------------------------------------

    def _rate_bps(self, gamma_hz: float) -> float:
        """Rate of a transfer with channel ``gamma_hz`` at the current sharing count (the
        one-float form of ``channels.link.shannon_rate_bps``: math, not numpy, on this path)."""
        share = self.band_hz / self._sharing
        return share * math.log2(1.0 + gamma_hz / share)

    def _advance(self) -> None:
        """Journal the period since the last change (at the current share)."""
        now = self.env.now
        if now > self._updated_s and self._sharing:
            if self._length == self._inv_share.size:
                self._make_room()
            share = self.band_hz / self._sharing
            self._inv_share[self._length] = 1.0 / share
            self._weight[self._length] = share * (now - self._updated_s) / _LN2
            self._length += 1
        self._updated_s = now

    def _make_room(self) -> None:
        """Drop the entries every transfer has folded; double the journal if that frees less
        than half of it, or if it is shorter than the transfers in flight (whose scan here is
        then paid for by the half it has free: amortised O(1) per entry)."""
        needed = min((t.folded_to for t in self._transfers.values() if t.gamma_hz > 0),
                     default=self._base + self._length)  # fmt: skip
        drop = needed - self._base
        keep = self._length - drop
        size = self._inv_share.size
        if keep > size // 2 or size < len(self._transfers):
            size *= 2
        for name in ("_inv_share", "_weight"):
            old = getattr(self, name)
            new = old if size == old.size else np.zeros(size)
            new[:keep] = old[drop : self._length]
            setattr(self, name, new)
        self._base, self._length = needed, keep

    def _remaining_s(self, transfer: _Transfer) -> float:
        """Exact sending time left at the current rate (inf when the rate is 0), after folding
        the periods since its last look."""
        first = transfer.folded_to - self._base
        if first < self._length:
            periods = slice(first, self._length)
            log_gain = np.log1p(transfer.gamma_hz * self._inv_share[periods])
            transfer.sent_bits += float(self._weight[periods] @ log_gain)
            transfer.folded_to = self._base + self._length
        rate = self._rate_bps(transfer.gamma_hz)
        return (transfer.bits - transfer.sent_bits) / rate if rate > 0 else math.inf

    def _push_exact(self, key: int, transfer: _Transfer, remaining_s: float) -> None:
        self._serial += 1
        transfer.entry, transfer.exact_in = self._serial, self._state
        finish_s = self.env.now + remaining_s if remaining_s < math.inf else math.inf
        transfer.finish_s = finish_s  # (the heap key gives it back only to rounding)
        heapq.heappush(self._heap, ((finish_s - self._offset) / self._scale, self._serial, key))

    def _shrink_to(self, sharing: int) -> None:
        """The sharing count falls to ``sharing``: every remaining time shrinks by at most
        ``sharing / old`` (one affine map of all the keys about ``now``)."""
        factor = sharing / self._sharing
        self._sharing = sharing
        self._state += 1
        if not sharing:
            self._heap.clear()
            self._scale, self._offset = 1.0, 0.0
            return
        now = self.env.now  # bound' = now + factor (bound - now)
        self._scale *= factor
        self._offset = factor * self._offset + (1.0 - factor) * now
        if self._scale < _RESCALE_BELOW:
            scale, offset = self._scale, self._offset
            self._heap = [(scale * k + offset, s, key) for k, s, key in self._heap]
            heapq.heapify(self._heap)
            self._scale, self._offset = 1.0, 0.0

    def _top(self) -> tuple[float, int, _Transfer] | None:
        """The live entry at the top of the heap as (bound s, key, transfer); stale entries
        (cancelled or superseded) are dropped on the way."""
        heap = self._heap
        while heap:
            k, serial, key = heap[0]
            transfer = self._transfers.get(key)
            if transfer is not None and transfer.entry == serial:
                return self._scale * k + self._offset, key, transfer
            heapq.heappop(heap)
        return None

    def _reschedule(self) -> None:
        """Make the top of the heap exact and set the timer for it."""
        self._generation += 1
        while (top := self._top()) is not None:
            bound_s, key, transfer = top
            if transfer.exact_in == self._state:
                break
            heapq.heappop(self._heap)
            self._push_exact(key, transfer, self._remaining_s(transfer))
        if top is None or not math.isfinite(top[2].finish_s):
            return
        generation = self._generation
        timer = self.env.timeout(max(top[2].finish_s - self.env.now, 0.0))
        timer.callbacks.append(lambda _event: self._on_timer(generation))

    def _on_timer(self, generation: int) -> None:
        if generation != self._generation:  # a later change superseded this timer
            return
        self._advance()
        horizon_s = self.env.now + _FINISH_TOLERANCE_S
        finished: list[int] = []
        while (top := self._top()) is not None and top[0] <= horizon_s:
            _, key, transfer = top
            heapq.heappop(self._heap)
            if transfer.exact_in == self._state:  # computed since the last change
                remaining_s = transfer.finish_s - self.env.now
            else:
                remaining_s = self._remaining_s(transfer)
            if remaining_s <= _FINISH_TOLERANCE_S:
                finished.append(key)
                transfer.entry = -1
                del self._transfers[key]
            else:  # a bound that was not its finish: back with the exact time
                self._push_exact(key, transfer, remaining_s)
        finished.sort()  # ascending device id
        events = [self._done.pop(k) for k in finished]
        if finished:
            self._shrink_to(self._sharing - len(finished))
        self._reschedule()
        for event in events:
            event.succeed()
