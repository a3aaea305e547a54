"""Age-of-update selection (ours; the wireless-FL literature's age-aware scheduling): rank the
online devices by rounds since their last delivered update, ``round - last_delivered`` (a
device never heard from has age ``round + 1``); with ``times_channel`` the age is multiplied
by the pilot rate relative to the best online device's. Ties go to the smaller device id."""

from __future__ import annotations

import numpy as np

from fl.selection.base import Choice, SelectionPolicy, top_m
from fl.selection.view import ServerView


class AgeOfUpdatePolicy(SelectionPolicy):
    def choose(self, view: ServerView, rng: np.random.Generator) -> Choice:
        ids = view.available
        age = (view.round_idx - view.last_delivered_round[ids]).astype(np.float64)
        if self.cfg.times_channel:
            rate = view.rate_bps[ids]
            best = rate.max()
            age = age * (rate / best if best > 0 else 0.0)
        return top_m(ids, age, view.cohort_size)
