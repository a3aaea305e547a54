"""The selection-policy interface: a cohort from a :class:`~fl.selection.view.ServerView`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fl.selection.view import ServerView


@dataclass(frozen=True)
class Choice:
    """The chosen device ids (sorted) and the score each was chosen by (nan: no score, e.g. a
    random pick); the simulator logs one ``selected`` event per device with its score."""

    device_ids: list[int]
    scores: list[float]


def cohort_size(num_available: int, clients_per_round: int | None, fraction: float | None) -> int:
    """m: ``clients_per_round`` (at most the online devices), a ``fraction`` of them (at least
    one), or every online device."""
    if clients_per_round is not None:
        return min(clients_per_round, num_available)
    if fraction is not None:
        return min(num_available, max(1, int(round(fraction * num_available))))
    return num_available


def top_m(ids: NDArray[np.int64], score: NDArray[np.float64], m: int) -> Choice:
    """The ``m`` highest scores among ``ids``; ties go to the smaller device id."""
    order = np.lexsort((ids, -score))[:m]
    chosen = ids[order]
    keep = np.argsort(chosen)
    return Choice(chosen[keep].tolist(), score[order][keep].tolist())


class SelectionPolicy:
    """Base class. ``choose`` may keep state of its own across rounds (e.g. Oort's pacer)."""

    def __init__(self, cfg):
        self.cfg = cfg

    def size(self, num_available: int) -> int:
        return cohort_size(num_available, self.cfg.clients_per_round, self.cfg.fraction)

    def choose(self, view: ServerView, rng: np.random.Generator) -> Choice:
        raise NotImplementedError
