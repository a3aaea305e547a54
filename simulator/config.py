"""The scenario schema: one pydantic model joining each package's own section."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from channels.config import CellsConfig, ChannelConfig
from devices.config import DevicesConfig
from fl.config import (
    DataConfig,
    DigitsData,
    MLPConfig,
    ModelConfig,
    StrategyConfig,
    TrainingConfig,
)
from fl.selection.config import SelectionConfig

MAX_TIME_S = 1e12  # virtual seconds (~30,000 years): beyond it float time loses milliseconds


class SimulationConfig(BaseModel):
    """When a run stops and how rounds are timed."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    rounds: int = Field(
        gt=0, le=100_000_000, description="published model versions before stopping"
    )
    deadline_s: Annotated[float, Field(gt=0, le=MAX_TIME_S)] | None = Field(
        default=None, description="round deadline; stragglers are interrupted (None: wait for all)"
    )
    max_time_s: Annotated[float, Field(gt=0, le=MAX_TIME_S)] | None = Field(
        default=None,
        description="virtual-time limit: asynchronous runs stop at it; no synchronous round "
        "starts after it (the last one may end later)",
    )
    idle_retry_s: float = Field(
        default=1.0,
        ge=1e-3,
        le=MAX_TIME_S,
        description="wait before retrying when no device is online",
    )
    concurrency: Annotated[int, Field(gt=0, le=10_000_000)] | None = Field(
        default=None, description="asynchronous strategies: devices training at once (all)"
    )
    device_jobs: Literal["auto", "processes"] = Field(
        default="auto",
        description="auto: a synchronous stage runs as arrays where that gives exactly the "
        "per-device processes' result (simulator/engine/bulk_stage.py), and an asynchronous job "
        "as chained events planned from a per-block population plan "
        "(simulator/engine/async_job.py, dispatch_plans.py); processes: always one SimPy "
        "process per device job, each dispatch planned on its own (the reference both are "
        "tested against)",
    )
    target_accuracy: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="stop once the evaluated test accuracy reaches this (personalised mean for "
        "personalised strategies)",
    )
    uplink_sharing: Literal["equal_slots", "reshare"] = Field(
        default="equal_slots",
        description="asynchronous strategies: each transfer keeps the equal slot (band / "
        "concurrency) it was dispatched with, or the band is re-shared equally among the "
        "transfers in flight whenever one starts or ends",
    )


class OutputConfig(BaseModel):
    """What a run writes. ``events``: every event (``all``), the server's only (``rounds``:
    round starts, barriers, publishes; no per-device rows), or ``none`` (an empty table, for
    runs where a 40-million-row event log is not wanted). Metrics are always written."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    events: Literal["all", "rounds", "none"] = "all"


class Scenario(BaseModel):
    """A whole scenario file. ``name`` names the output folder; ``seed`` fixes every stream."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    # the output folder is <name>-<hash>: short enough for every file system
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=100)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    simulation: SimulationConfig
    devices: DevicesConfig
    channel: ChannelConfig = ChannelConfig()
    data: DataConfig = DigitsData(kind="digits")
    model: ModelConfig = MLPConfig(kind="mlp")
    training: TrainingConfig = TrainingConfig()
    strategy: StrategyConfig
    # base stations as edge servers (None: one server at the origin, no edges)
    cells: CellsConfig | None = None
    # who the server picks each synchronous round (None: the strategy's own, random)
    selection: SelectionConfig | None = None
    bits_per_param: int = Field(default=32, gt=0, le=64)
    output: OutputConfig = OutputConfig()

    @property
    def systems_only(self) -> bool:
        return self.training.mode == "none"
