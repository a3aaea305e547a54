"""Build fl objects from the scenario's ``data``, ``training`` and ``strategy`` sections."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from fl.config import (
    DataConfig,
    DigitsData,
    DirichletPartition,
    FedAsyncConfig,
    FedBuffConfig,
    IIDPartition,
    OrthoFLConfig,
    Partition,
    PrunedPersonalizedConfig,
    StrategyConfig,
    TrainingConfig,
)
from fl.datasets import FederatedData, digits_pool, split_local_tests, synthetic_fedprox
from fl.partition import partition_dirichlet, partition_iid, partition_shards
from fl.staleness import Staleness
from fl.state import ModelState
from fl.strategies.base import Strategy
from fl.strategies.fedasync import FedAsync
from fl.strategies.fedavg import FedAvg
from fl.strategies.fedbuff import FedBuff
from fl.strategies.orthofl import OrthoFL
from fl.strategies.pruned_personalized import PrunedPersonalized
from fl.training import LocalWork

RngFor = Callable[[str], np.random.Generator]

DIGITS_SHAPE = (1, 8, 8)


def data_signature(cfg: DataConfig) -> tuple[tuple[int, ...], int]:
    """(input_shape, num_classes) without loading the data (systems-only runs need the model)."""
    if isinstance(cfg, DigitsData):
        return DIGITS_SHAPE, 10
    return (cfg.dim,), cfg.num_classes


def partition(cfg: Partition, labels: np.ndarray, num_devices: int, rng: np.random.Generator):
    """Index lists per device. Raises ValueError when the data cannot be split as asked."""
    if isinstance(cfg, IIDPartition):
        return partition_iid(len(labels), num_devices, rng)
    if isinstance(cfg, DirichletPartition):
        return partition_dirichlet(labels, num_devices, cfg.alpha, rng, cfg.min_samples)
    return partition_shards(labels, num_devices, cfg.shards_per_device, rng)


def make_data(cfg: DataConfig, num_devices: int, rng_for: RngFor) -> FederatedData:
    """Load and split the configured data set across ``num_devices`` devices."""
    if isinstance(cfg, DigitsData):
        train_x, train_y, test_x, test_y = digits_pool(cfg.test_fraction, rng_for("data_split"))
        parts = partition(cfg.partition, train_y.numpy(), num_devices, rng_for("partition"))
        local_tests = None
        if cfg.local_test_fraction is not None:
            parts, local_tests = split_local_tests(
                parts, cfg.local_test_fraction, rng_for("local_test")
            )
        return FederatedData(train_x, train_y, parts, test_x, test_y, 10, local_tests)
    return synthetic_fedprox(
        num_devices=num_devices,
        alpha=cfg.alpha,
        beta=cfg.beta,
        dim=cfg.dim,
        num_classes=cfg.num_classes,
        samples_median=cfg.samples_median,
        samples_sigma=cfg.samples_sigma,
        test_fraction=cfg.test_fraction,
        rng=rng_for("synthetic"),
    )


def make_local_work(cfg: TrainingConfig, strategy: StrategyConfig) -> LocalWork:
    """Local work per round; the pruned-personalised strategy sets its own step counts."""
    if isinstance(strategy, PrunedPersonalizedConfig):
        steps = strategy.personal_steps + strategy.global_steps
        return LocalWork(batch_size=cfg.batch_size, lr=cfg.lr, steps=steps)
    return LocalWork(
        batch_size=cfg.batch_size, lr=cfg.lr, steps=cfg.local_steps, epochs=cfg.local_epochs
    )


def strategy_class(cfg: StrategyConfig) -> type[Strategy]:
    """The strategy class a ``strategy`` section configures (for its class-level hooks)."""
    classes: dict[type, type[Strategy]] = {
        FedAsyncConfig: FedAsync,
        FedBuffConfig: FedBuff,
        OrthoFLConfig: OrthoFL,
        PrunedPersonalizedConfig: PrunedPersonalized,
    }
    return classes.get(type(cfg), FedAvg)


def make_strategy(
    cfg: StrategyConfig, *, model: nn.Module, initial_state: ModelState, num_devices: int
) -> Strategy:
    if isinstance(cfg, FedAsyncConfig):
        return FedAsync(alpha=cfg.alpha, staleness=Staleness(**cfg.staleness.model_dump()))
    if isinstance(cfg, FedBuffConfig):
        return FedBuff(
            buffer_size=cfg.buffer_size,
            server_lr=cfg.server_lr,
            staleness=Staleness(**cfg.staleness.model_dump()),
            weighting=cfg.weighting,
        )
    if isinstance(cfg, OrthoFLConfig):
        return OrthoFL(
            initial_state=initial_state,
            alpha=cfg.alpha,
            staleness=Staleness(**cfg.staleness.model_dump()),
            shift_source=cfg.shift_source,
            epsilon=cfg.epsilon,
            layerwise=cfg.layerwise,
            first_update_adopts=cfg.first_update_adopts,
        )
    if isinstance(cfg, PrunedPersonalizedConfig):
        return PrunedPersonalized(
            model=model,
            initial_state=initial_state,
            num_devices=num_devices,
            personal_steps=cfg.personal_steps,
            global_steps=cfg.global_steps,
            rho=None if cfg.rho == "adaptive" else float(cfg.rho),
            zero_filled=cfg.aggregation == "zero_filled",
            mask_bitmap=cfg.mask_bitmap,
            clients_per_round=cfg.clients_per_round,
            fraction=cfg.fraction,
        )
    return FedAvg(clients_per_round=cfg.clients_per_round, fraction=cfg.fraction)
