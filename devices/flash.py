"""FLASH's measured devices as a built-in source (``devices.source: {kind: flash}``).

The tables come from FLASH (Yang et al., WWW 2021; BSD-2, licence in ``data/flash/``): the
AI-Benchmark scores of 307 phones and the measured throughput of 19 users. Each device draws
one phone and one user (seeded, uniformly). The mapping, ours:

* **compute**: ``cpu_hz = reference_cpu_hz * score / median score of the table``, so compute
  times keep the table's spread (a phone with twice the median score trains twice as fast as
  one at ``reference_cpu_hz``);
* **network**: the user's mean upload throughput ``up_u`` (FLASH's "kb/s", read as kbit/s)
  becomes the device's uplink: the simulator sets its transmit power so that an equal share of
  the uplink band, at the device's own path loss and shadowing, carries ``up_u`` on average
  fading (``simulator.engine.world``). Downloads keep the server's physics. The power is an
  *equivalent*: with a narrow band share it can exceed what a phone radiates (a few Mbit/s on
  250 kHz needs ~80 dBm), so give the uplink enough band (``scenarios/flash_devices.yaml``:
  2.5 MHz a device) for the values to stay physical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FLASH_DIR = Path(__file__).resolve().parent / "data" / "flash"


@dataclass(frozen=True)
class FlashDraws:
    """Per device [n]: the phone's benchmark score, its CPU frequency (Hz) and the measured
    mean upload throughput (bit/s)."""

    score: np.ndarray
    cpu_hz: np.ndarray
    up_bps: np.ndarray


def flash_scores() -> dict[str, float]:
    return json.loads((FLASH_DIR / "benchmark2score.json").read_text(encoding="utf-8"))


def flash_upload_bps() -> np.ndarray:
    """The 19 users' mean upload throughput, bit/s, in user-id order."""
    users = json.loads((FLASH_DIR / "speed_distri.json").read_text(encoding="utf-8"))
    return np.array([users[u]["up_u"] * 1e3 for u in sorted(users)])


def draw_flash(n: int, reference_cpu_hz: float, rng_for) -> FlashDraws:
    scores = flash_scores()
    table = np.array([scores[name] for name in sorted(scores)], dtype=float)
    score = table[rng_for("flash_phone").integers(0, table.size, n)]
    up = flash_upload_bps()
    return FlashDraws(
        score=score,
        cpu_hz=reference_cpu_hz * score / float(np.median(table)),
        up_bps=up[rng_for("flash_network").integers(0, up.size, n)],
    )
