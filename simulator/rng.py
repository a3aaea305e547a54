"""Independent random streams keyed by purpose, derived from one seed.

``RngStreams(seed).numpy("placement")`` and ``.numpy("train", device_id, round_idx)`` never share
state, and the same key always gives the same stream, whatever else the run asked for before.
Strings in keys are hashed with crc32 (stable across processes), never Python's ``hash()``.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _key_words(key: tuple) -> tuple[int, ...]:
    words = []
    for part in key:
        if isinstance(part, str):
            words.append(zlib.crc32(part.encode("utf-8")))
        elif isinstance(part, int | np.integer) and part >= 0:
            words.append(int(part))
        else:
            raise TypeError(f"RNG key parts must be str or non-negative int, got {part!r}")
    return tuple(words)


class RngStreams:
    """Factory of generators: one :class:`numpy.random.SeedSequence` per key."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def seed_sequence(self, *key: str | int) -> np.random.SeedSequence:
        return np.random.SeedSequence(entropy=self.seed, spawn_key=_key_words(key))

    def numpy(self, *key: str | int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(self.seed_sequence(*key)))

    def torch(self, *key: str | int) -> torch.Generator:
        state = self.seed_sequence(*key).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)

    def integer(self, *key: str | int) -> int:
        """A 63-bit integer seed for counter-based generators (e.g. channel fading)."""
        return int(self.seed_sequence(*key).generate_state(1, dtype=np.uint64)[0]) >> 1
