"""Build fl objects from the scenario's ``data``, ``training`` and ``strategy`` sections."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from fl.clustered import clustered_split
from fl.config import (
    ArraysData,
    Cifar10Data,
    ClusteredPartition,
    CoalitionConfig,
    DataConfig,
    DigitsData,
    DirichletPartition,
    FedAsyncConfig,
    FedBuffConfig,
    FeDLRTConfig,
    FedProxConfig,
    FemnistData,
    FloralConfig,
    HierFAVGConfig,
    IIDPartition,
    MnistData,
    NaturalPartition,
    OrthoFLConfig,
    Partition,
    PrunedPersonalizedConfig,
    ScaffoldConfig,
    ServerOptimizerConfig,
    StrategyConfig,
    SyntheticData,
    TrainingConfig,
)
from fl.data_files import (
    ImagePool,
    load_arrays,
    load_cifar10,
    load_femnist,
    load_mnist_like,
)
from fl.datasets import (
    FederatedData,
    digits_pool,
    split_local_tests,
    split_train_test,
    synthetic_fedprox,
)
from fl.partition import partition_dirichlet, partition_iid, partition_shards
from fl.server_optimizers import ServerOptimizer
from fl.staleness import Staleness
from fl.state import ModelState
from fl.strategies.base import Strategy
from fl.strategies.coalition import CoalitionFL
from fl.strategies.fedasync import FedAsync
from fl.strategies.fedavg import FedAvg
from fl.strategies.fedbuff import FedBuff
from fl.strategies.fedlrt import FeDLRT
from fl.strategies.fedprox import FedProx
from fl.strategies.floral import Floral
from fl.strategies.hierfavg import HierFAVG
from fl.strategies.orthofl import OrthoFL
from fl.strategies.pruned_personalized import PrunedPersonalized
from fl.strategies.scaffold import Scaffold
from fl.training import LocalWork

RngFor = Callable[[str], np.random.Generator]

DIGITS_SHAPE = (1, 8, 8)


def data_signature(cfg: DataConfig) -> tuple[tuple[int, ...], int]:
    """(input_shape, num_classes) without loading the data where the format fixes them
    (systems-only runs need the model, not the data)."""
    if isinstance(cfg, DigitsData):
        return DIGITS_SHAPE, 10
    if isinstance(cfg, MnistData):
        return (1, 28, 28), 10
    if isinstance(cfg, Cifar10Data):
        return (3, 32, 32), 10
    if isinstance(cfg, FemnistData):
        return (1, 28, 28), 62
    if isinstance(cfg, ArraysData):
        pool = load_arrays(cfg.path)
        return tuple(pool.train_x.shape[1:]), pool.num_classes
    return (cfg.dim,), cfg.num_classes


def partition(
    cfg: Partition,
    labels: np.ndarray,
    num_devices: int,
    rng: np.random.Generator,
    owner: np.ndarray | None = None,
):
    """Index lists per device. Raises ValueError when the data cannot be split as asked."""
    if isinstance(cfg, ClusteredPartition):
        cfg = cfg.within
    if isinstance(cfg, IIDPartition):
        return partition_iid(len(labels), num_devices, rng)
    if isinstance(cfg, DirichletPartition):
        return partition_dirichlet(labels, num_devices, cfg.alpha, rng, cfg.min_samples)
    if isinstance(cfg, NaturalPartition):
        if owner is None:
            raise ValueError("partition natural needs data with owners (femnist, or arrays with a "
                             "'device' array)")  # fmt: skip
        owners = np.unique(owner)
        if num_devices > owners.size:
            raise ValueError(f"{owners.size} writers/owners in the data cannot give "
                             f"{num_devices} devices one each")  # fmt: skip
        return [np.flatnonzero(owner == o) for o in owners[:num_devices]]
    return partition_shards(labels, num_devices, cfg.shards_per_device, rng)


def _pool(cfg: DataConfig, rng_for: RngFor) -> ImagePool:
    """The configured data set as arrays, with a test split (drawn where the files have none)."""
    if isinstance(cfg, DigitsData):
        train_x, train_y, test_x, test_y = digits_pool(cfg.test_fraction, rng_for("data_split"))
        return ImagePool(train_x.numpy(), train_y.numpy(), test_x.numpy(), test_y.numpy(), 10)
    if isinstance(cfg, MnistData):
        return load_mnist_like(cfg.path)
    if isinstance(cfg, Cifar10Data):
        return load_cifar10(cfg.path)
    if isinstance(cfg, FemnistData):
        return load_femnist(cfg.path)
    assert isinstance(cfg, ArraysData)
    pool = load_arrays(cfg.path)
    train, test = split_train_test(len(pool.train_y), cfg.test_fraction, rng_for("data_split"))
    owner = pool.writer
    return ImagePool(
        pool.train_x[train], pool.train_y[train], pool.train_x[test], pool.train_y[test],
        pool.num_classes, None if owner is None else owner[train],
    )  # fmt: skip


def make_data(cfg: DataConfig, num_devices: int, rng_for: RngFor) -> FederatedData:
    """Load and split the configured data set across ``num_devices`` devices.

    Raises :class:`fl.data_files.DataFileError` for a missing or malformed file and ValueError
    when the data cannot be split as asked."""
    if isinstance(cfg, SyntheticData):
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
    pool = _pool(cfg, rng_for)
    train_x, train_y, test_x, test_y = pool.train_x, pool.train_y, pool.test_x, pool.test_y
    assert test_x is not None and test_y is not None
    parts = partition(cfg.partition, train_y, num_devices, rng_for("partition"), pool.writer)
    groups = test_groups = None
    if isinstance(cfg.partition, ClusteredPartition):
        p = cfg.partition
        test_groups = np.repeat(np.arange(p.groups), len(test_y))
        train_x, train_y, parts, test_x, test_y, groups = clustered_split(
            train_x, train_y, test_x, test_y, parts,
            groups=p.groups, shift=p.shift, num_classes=pool.num_classes,
            permutation=p.permutation, noise_std=p.noise_std, rng=rng_for("clustered"),
        )  # fmt: skip
    empty = sum(len(p) == 0 for p in parts)
    if empty:
        raise ValueError(
            f"{empty} of {num_devices} devices would get no training data "
            f"({len(train_y)} examples in the pool)"
        )
    local_tests = None
    if cfg.local_test_fraction is not None:
        parts, local_tests = split_local_tests(
            parts, cfg.local_test_fraction, rng_for("local_test")
        )
    return FederatedData(
        torch.from_numpy(np.ascontiguousarray(train_x)),
        torch.from_numpy(np.ascontiguousarray(train_y)),
        parts,
        torch.from_numpy(np.ascontiguousarray(test_x)),
        torch.from_numpy(np.ascontiguousarray(test_y)),
        pool.num_classes,
        local_tests,
        device_groups=groups,
        test_groups=test_groups,
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
        CoalitionConfig: CoalitionFL,
        FeDLRTConfig: FeDLRT,
        FloralConfig: Floral,
        FedProxConfig: FedProx,
        ScaffoldConfig: Scaffold,
        HierFAVGConfig: HierFAVG,
    }
    return classes.get(type(cfg), FedAvg)


def make_strategy(
    cfg: StrategyConfig,
    *,
    model: nn.Module,
    initial_state: ModelState,
    num_devices: int,
    scenario=None,
) -> Strategy:
    """The configured strategy; ``scenario`` gives strategies that need other sections (the
    model's low-rank settings, the local steps) what they read."""
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
    if isinstance(cfg, FloralConfig):
        return Floral(cfg, model=model, num_devices=num_devices)
    if isinstance(cfg, HierFAVGConfig):
        return HierFAVG(
            initial_state=initial_state, edge_rounds=cfg.edge_rounds,
            clients_per_round=cfg.clients_per_round, fraction=cfg.fraction,
        )  # fmt: skip
    if isinstance(cfg, FeDLRTConfig):
        assert scenario is not None and scenario.model.low_rank is not None  # build_model checked
        return FeDLRT(
            cfg, model=model, low_rank=scenario.model.low_rank,
            local_steps=scenario.training.local_steps or 1,
        )  # fmt: skip
    if isinstance(cfg, CoalitionConfig):
        return CoalitionFL(cfg, initial_state=initial_state, num_devices=num_devices)
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
    server = _server_optimizer(cfg.server_optimizer)
    k, fraction = cfg.clients_per_round, cfg.fraction
    if isinstance(cfg, FedProxConfig):
        return FedProx(mu=cfg.mu, server_optimizer=server, clients_per_round=k, fraction=fraction)
    if isinstance(cfg, ScaffoldConfig):
        return Scaffold(
            initial_state=initial_state, num_devices=num_devices, weighting=cfg.weighting,
            server_optimizer=server, clients_per_round=k, fraction=fraction,
        )  # fmt: skip
    return FedAvg(server_optimizer=server, clients_per_round=k, fraction=fraction)


def _server_optimizer(cfg: ServerOptimizerConfig | None) -> ServerOptimizer | None:
    return None if cfg is None else ServerOptimizer(cfg)
