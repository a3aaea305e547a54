"""Energy-aware selection (ours): leave out the online devices whose predicted energy this
round, compute ``kappa f^2 cycles`` plus transmit power x ``bits / rate`` at the pilot rate,
is over ``budget_j``; then m at random among the rest (fewer when fewer qualify). The score
logged is the predicted energy in J."""

from __future__ import annotations

import numpy as np

from fl.selection.base import Choice, SelectionPolicy
from fl.selection.view import ServerView


class EnergyAwarePolicy(SelectionPolicy):
    def choose(self, view: ServerView, rng: np.random.Generator) -> Choice:
        energy = view.energy_j[view.available]
        eligible = view.available[energy <= self.cfg.budget_j]
        m = min(view.cohort_size, eligible.size)
        if m == eligible.size:
            chosen = eligible
        else:
            chosen = np.sort(rng.choice(eligible, size=m, replace=False))
        return Choice(chosen.tolist(), view.energy_j[chosen].tolist())
