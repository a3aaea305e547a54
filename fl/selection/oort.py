"""Oort: F. Lai, X. Zhu, H. V. Madhyastha, M. Chowdhury, "Oort: Efficient Federated Learning
via Guided Participant Selection", OSDI 2021; notes in papers/baselines_selection.md, details
as in the authors' selector (read, not copied).

* Statistical utility of device i from its last delivered round: ``U_i = |B_i| sqrt(mean
  loss^2)`` over the ``|B_i|`` samples it trained on; normalised to [0, 1] over the explored
  online devices, plus the staleness bonus ``sqrt(0.1 log(t) / t_i)`` (t the round, t_i the
  round it was last selected, both counted from 1).
* System penalty: times ``(T / d_i)^alpha`` when its last round took ``d_i > T``.
* Exploitation: the top ``(1 - epsilon) m`` by score, sampled (proportionally to score) among
  those within ``cutoff`` x the m-th score; exploration: the rest among never-tried online
  devices, the faster (by estimated round time) the likelier. epsilon decays by
  ``epsilon_decay`` per round down to ``epsilon_min``.
* Pacer: T is the ``round_threshold_pct`` percentile of the explored devices' last round
  times; every ``pacer_step_rounds`` rounds, if the exploited utility of the last window fell
  below the window before, the percentile grows by ``pacer_delta_pct``. A fixed
  ``preferred_round_s`` replaces the pacer.

Exploration picks are logged with a nan score.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from fl.selection.base import Choice, SelectionPolicy
from fl.selection.view import ServerView


class OortPolicy(SelectionPolicy):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.epsilon = cfg.epsilon
        self.threshold_pct = cfg.round_threshold_pct
        self.utility_per_round: list[float] = []

    def preferred_round_s(self, view: ServerView) -> float:
        """T: fixed, or the pacer's percentile of the explored devices' last round times."""
        if self.cfg.preferred_round_s is not None:
            return float(self.cfg.preferred_round_s)
        known = np.sort(view.last_duration_s[np.isfinite(view.last_duration_s)])
        if known.size == 0:
            return math.inf
        return float(known[min(int(known.size * self.threshold_pct / 100.0), known.size - 1)])

    def scores(self, view: ServerView, ids: NDArray[np.int64]) -> NDArray:
        """Exploitation scores of explored devices ``ids``."""
        utility = view.last_samples[ids] * np.sqrt(view.last_loss_sq[ids])
        low, high = float(utility.min()), float(utility.max())
        normalised = (utility - low) / (high - low) if high > low else np.zeros(ids.size)
        t = view.round_idx + 1
        bonus = np.sqrt(0.1 * math.log(t) / (view.last_selected_round[ids] + 1))
        score = normalised + bonus
        T, d = self.preferred_round_s(view), view.last_duration_s[ids]
        slow = d > T
        score[slow] *= (T / d[slow]) ** self.cfg.alpha
        return score

    def choose(self, view: ServerView, rng: np.random.Generator) -> Choice:
        ids, m = view.available, view.cohort_size
        tried = view.last_samples[ids] > 0
        explored, fresh = ids[tried], ids[~tried]
        n_explore = min(fresh.size, int(m * self.epsilon))
        n_exploit = min(m - n_explore, explored.size)
        n_explore = min(fresh.size, m - n_exploit)
        chosen: list[int] = []
        scores: list[float] = []
        if n_exploit:
            score = self.scores(view, explored)
            order = np.lexsort((explored, -score))
            cut = self.cfg.cutoff * score[order[n_exploit - 1]]
            pool = order[score[order] >= cut]
            weight = score[pool]
            p = weight / weight.sum() if weight.sum() > 0 else None
            picked = rng.choice(pool, size=n_exploit, replace=False, p=p)
            chosen += explored[picked].tolist()
            scores += score[picked].tolist()
            utility = view.last_samples[explored] * np.sqrt(view.last_loss_sq[explored])
            self.utility_per_round.append(float(utility[picked].sum()))
            self._pace()
        if n_explore:
            speed = 1.0 / view.round_time_s[fresh]  # 0 where no rate serves it
            p = speed / speed.sum() if speed.sum() > 0 else None
            picked = rng.choice(fresh.size, size=n_explore, replace=False, p=p)
            chosen += fresh[picked].tolist()
            scores += [math.nan] * n_explore
        self.epsilon = max(self.epsilon * self.cfg.epsilon_decay, self.cfg.epsilon_min)
        order = np.argsort(chosen)
        return Choice([chosen[i] for i in order], [scores[i] for i in order])

    def _pace(self) -> None:
        """Relax T when the last window's exploited utility fell below the window before."""
        w = self.cfg.pacer_step_rounds
        history = self.utility_per_round
        if len(history) >= 2 * w and len(history) % w == 0:
            if sum(history[-w:]) < sum(history[-2 * w : -w]):
                self.threshold_pct = min(100.0, self.threshold_pct + self.cfg.pacer_delta_pct)
