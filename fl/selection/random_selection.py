"""Uniform random selection: m of the online devices without replacement. Draws exactly as
the strategies' own default does, so ``selection: {kind: random}`` reproduces a run without a
``selection`` section."""

from __future__ import annotations

import numpy as np

from fl.selection.base import Choice, SelectionPolicy
from fl.selection.view import ServerView


class RandomSelectionPolicy(SelectionPolicy):
    def choose(self, view: ServerView, rng: np.random.Generator) -> Choice:
        ids, m = view.available, view.cohort_size
        if m == ids.size:
            chosen = ids.tolist()
        else:
            chosen = sorted(int(i) for i in rng.choice(ids, size=m, replace=False))
        return Choice(chosen, [float("nan")] * len(chosen))
