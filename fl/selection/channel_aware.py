"""Channel-aware selection (ours; papers/baselines_selection.md): rank the online devices by
the uplink rate each would get at an equal share of the band, ``B/m log2(1 + gamma m / B)``,
with gamma from the pilot it sends at selection (the coherence block in force then, never the
fading during the round's transfers); or (``score: round_time``) by the shortest estimated
round time ``compute_s + bits / rate`` from the device's announced speed. Ties go to the
smaller device id."""

from __future__ import annotations

import numpy as np

from fl.selection.base import Choice, SelectionPolicy, top_m
from fl.selection.view import ServerView


class ChannelAwarePolicy(SelectionPolicy):
    def choose(self, view: ServerView, rng: np.random.Generator) -> Choice:
        ids = view.available
        if self.cfg.score == "rate":
            score = view.rate_bps[ids]
        else:
            score = -view.round_time_s[ids]  # the fastest first
        return top_m(ids, score, view.cohort_size)
