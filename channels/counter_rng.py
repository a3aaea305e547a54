"""Counter-based random numbers: a draw is a pure function of (seed, stream, link, block).

The design asks that a link's channel depend only on the seed, the link and the coherence block,
so that adding a device never changes another device's channel and a draw can be repeated at any
virtual time in any order. A stateful generator cannot give that cheaply for 10^4 links per
block, so we hash the key with SplitMix64 (Steele et al., 2014), fully vectorised in numpy.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
from numpy.typing import ArrayLike, NDArray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _splitmix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # uint64 array arithmetic wraps modulo 2^64, which is exactly what SplitMix64 needs.
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream_id(name: str) -> int:
    """Stable integer for a purpose name (crc32, never Python's salted ``hash``)."""
    return zlib.crc32(name.encode("utf-8"))


_MASK = 2**64 - 1
# Below this many draws, plain Python integers beat numpy's per-call overhead (~5 us per
# ufunc); both paths give bit-identical results (tested).
_SCALAR_PATH_MAX = 4


def _splitmix64_int(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=256)
def _stream_key(seed: int, stream: int) -> int:
    """The first two hash rounds, which only the (seed, stream) pair enters."""
    return _splitmix64_int(_splitmix64_int(seed % 2**64) ^ (stream % 2**64))


def _uniform01_scalar(seed: int, stream: int, link: int, block: int, component: int) -> float:
    h = _splitmix64_int(_stream_key(seed, stream) ^ (link & _MASK))
    h = _splitmix64_int(h ^ (block & _MASK))
    h = _splitmix64_int(h ^ component)
    return ((h >> 11) + 0.5) * (1.0 / 2**53)


def uniform01(seed: int, stream: int, link_ids: ArrayLike, block: ArrayLike, component: int = 0):
    """Uniform draws in the open interval (0, 1), one per (link, block) pair.

    Parameters
    ----------
    seed, stream : int
        Run seed and purpose stream (see :func:`stream_id`).
    link_ids : array_like of int [n]
    block : int or array_like of int [n]
        Coherence-block index; may be negative (e.g. -1 for time-invariant draws).
    component : int
        Distinguishes several independent draws for the same key (real/imag parts).

    Returns
    -------
    u : ndarray [n], float64 in (0, 1)
    """
    ids = np.asarray(link_ids, dtype=np.int64)
    if ids.ndim == 1 and ids.size <= _SCALAR_PATH_MAX:
        if type(block) is int:  # one block for all (every asynchronous dispatch): no conversion
            return np.array(
                [_uniform01_scalar(seed, stream, link, block, component) for link in ids.tolist()]
            )
        block_arr = np.asarray(block, dtype=np.int64)
        block_list = [int(block_arr)] * ids.size if block_arr.ndim == 0 else block_arr.tolist()
        return np.array(
            [
                _uniform01_scalar(seed, stream, link, b, component)
                for link, b in zip(ids.tolist(), block_list, strict=True)
            ]
        )
    with np.errstate(over="ignore"):
        links: NDArray[np.uint64] = ids.astype(np.uint64)
        blocks = np.broadcast_to(np.asarray(block, dtype=np.int64), links.shape).astype(np.uint64)
        h = _splitmix64(np.full(links.shape, np.uint64(seed % 2**64), dtype=np.uint64))
        h = _splitmix64(h ^ np.uint64(stream % 2**64))
        h = _splitmix64(h ^ links)
        h = _splitmix64(h ^ blocks)
        h = _splitmix64(h ^ np.uint64(component))
    # 53 random mantissa bits, shifted by half a step so 0 and 1 never occur.
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 2**53)


def standard_normal(seed: int, stream: int, link_ids: ArrayLike, block: ArrayLike, pair: int = 0):
    """Standard normal draws via Box-Muller on two counter-based uniforms.

    ``pair`` selects an independent normal for the same key (uses components 2*pair, 2*pair+1).
    """
    u1 = uniform01(seed, stream, link_ids, block, 2 * pair)
    u2 = uniform01(seed, stream, link_ids, block, 2 * pair + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
