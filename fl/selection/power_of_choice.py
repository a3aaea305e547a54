"""Power-of-choice: Y. J. Cho, J. Wang, G. Joshi, "Client Selection in Federated Learning:
Convergence Analysis and Power-of-Choice Selection Strategies", AISTATS 2022
(arXiv:2010.01243).

Draw a candidate set of d devices without replacement with probability proportional to their
data size, then keep the m with the highest local loss. The paper has the candidates evaluate
the current global model; we use each candidate's last reported training loss (the notes'
``last_reported`` switch: no extra round trip is timed), and a device never heard from counts
as the highest loss (it is tried first). Ties go to the smaller device id. d defaults to 2m.
"""

from __future__ import annotations

import numpy as np

from fl.selection.base import Choice, SelectionPolicy, top_m
from fl.selection.view import ServerView


class PowerOfChoicePolicy(SelectionPolicy):
    def choose(self, view: ServerView, rng: np.random.Generator) -> Choice:
        ids, m = view.available, view.cohort_size
        d = min(ids.size, self.cfg.candidates or 2 * m)
        d = max(d, m)
        size = view.num_examples[ids].astype(np.float64)
        p = size / size.sum() if size.sum() > 0 else None
        candidates = np.sort(rng.choice(ids, size=d, replace=False, p=p))
        loss = view.last_loss[candidates]
        return top_m(candidates, np.where(np.isnan(loss), np.inf, loss), m)
