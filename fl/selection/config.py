"""The scenario's ``selection`` section: which devices the server picks each round."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from fl.config import CohortSize


class _Selection(CohortSize):
    """A selection policy's cohort size (as a strategy's): ``clients_per_round`` or
    ``fraction`` of the online devices."""

    clients_per_round: PositiveInt | None = Field(default=None, le=10_000_000)


class RandomSelection(_Selection):
    """Uniformly at random among online devices (the strategies' own default)."""

    kind: Literal["random"]


class PowerOfChoiceSelection(_Selection):
    """Cho, Wang, Joshi (AISTATS 2022): ``candidates`` (d) drawn by data size, the m with the
    highest last reported loss kept (default d = 2m)."""

    kind: Literal["power_of_choice"]
    candidates: PositiveInt | None = Field(default=None, le=10_000_000)
    loss: Literal["last_reported"] = "last_reported"


class OortSelection(_Selection):
    """Lai et al. (OSDI 2021): statistical utility x system penalty, epsilon exploration,
    staleness bonus and a pacer for the preferred round time."""

    kind: Literal["oort"]
    alpha: float = Field(default=2.0, ge=0, le=100)
    epsilon: float = Field(default=0.9, ge=0, le=1)
    epsilon_decay: float = Field(default=0.98, gt=0, le=1)
    epsilon_min: float = Field(default=0.2, ge=0, le=1)
    cutoff: float = Field(default=0.95, gt=0, le=1)
    round_threshold_pct: float = Field(default=30.0, gt=0, le=100)
    pacer_step_rounds: PositiveInt = Field(default=20, le=1_000_000)
    pacer_delta_pct: float = Field(default=5.0, ge=0, le=100)
    preferred_round_s: float | None = Field(default=None, gt=0, le=1e9)


class ChannelAwareSelection(_Selection):
    """Rank by the uplink rate at an equal share under the channel measured at selection
    (``score: rate``), or by the estimated round time ``compute_s + bits / rate``."""

    kind: Literal["channel_aware"]
    score: Literal["rate", "round_time"] = "rate"


class AgeOfUpdateSelection(_Selection):
    """Rank by rounds since a device's last delivered update (optionally x its rate)."""

    kind: Literal["age_of_update"]
    times_channel: bool = False


class EnergyAwareSelection(_Selection):
    """Random among the devices whose predicted compute + transmit energy this round is at
    most ``budget_j``."""

    kind: Literal["energy_aware"]
    budget_j: float = Field(gt=0, le=1e9)


SelectionConfig = Annotated[
    RandomSelection
    | PowerOfChoiceSelection
    | OortSelection
    | ChannelAwareSelection
    | AgeOfUpdateSelection
    | EnergyAwareSelection,
    Field(discriminator="kind"),
]

# selectors that read loss reports, so they need training (not systems-only runs)
LOSS_AWARE = ("power_of_choice", "oort")
