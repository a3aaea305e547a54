"""What a stage's device jobs achieved: per job (:class:`JobOutcome`) and as arrays
(:class:`StageOutcomes`), whether the jobs ran as processes or as arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class JobOutcome:
    """What a job achieved: time spent per leg (s), and the failure reason if it stopped."""

    device_id: int
    legs_done: int  # legs completed, in order (those the device takes no part in count)
    reason: str
    finished_at_s: float
    spent_s: list[float]

    @property
    def delivered(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class StageOutcomes:
    """A stage's job outcomes as arrays in device order (one pass over the objects)."""

    device_id: np.ndarray  # [n]
    delivered: np.ndarray  # [n] bool
    legs_done: np.ndarray  # [n] legs completed (a delivered job: all of them)
    finished_at_s: np.ndarray  # [n]
    spent_s: np.ndarray  # [n, n_legs]: time actually spent on each leg

    @classmethod
    def of(cls, outcomes: list[JobOutcome], num_legs: int) -> StageOutcomes:
        n = len(outcomes)
        return cls(
            np.fromiter((o.device_id for o in outcomes), np.int64, n),
            np.fromiter((o.delivered for o in outcomes), bool, n),
            np.fromiter((o.legs_done for o in outcomes), np.int64, n),
            np.fromiter((o.finished_at_s for o in outcomes), float, n),
            np.array([o.spent_s for o in outcomes], dtype=float).reshape(n, num_legs),
        )
