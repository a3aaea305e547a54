"""Client selection as its own component: a policy picks each synchronous round's cohort from
what the server knows (:mod:`fl.selection.view`). Policies: random, power-of-choice, Oort,
channel-aware, age-of-update and energy-aware."""

from __future__ import annotations

from fl.selection.age_of_update import AgeOfUpdatePolicy
from fl.selection.base import Choice, SelectionPolicy
from fl.selection.channel_aware import ChannelAwarePolicy
from fl.selection.config import SelectionConfig
from fl.selection.energy_aware import EnergyAwarePolicy
from fl.selection.oort import OortPolicy
from fl.selection.power_of_choice import PowerOfChoicePolicy
from fl.selection.random_selection import RandomSelectionPolicy
from fl.selection.view import ServerView, jain_index

POLICIES: dict[str, type[SelectionPolicy]] = {
    "random": RandomSelectionPolicy,
    "power_of_choice": PowerOfChoicePolicy,
    "oort": OortPolicy,
    "channel_aware": ChannelAwarePolicy,
    "age_of_update": AgeOfUpdatePolicy,
    "energy_aware": EnergyAwarePolicy,
}


def make_selection_policy(cfg: SelectionConfig) -> SelectionPolicy:
    return POLICIES[cfg.kind](cfg)


__all__ = ["Choice", "SelectionPolicy", "ServerView", "jain_index", "make_selection_policy"]
