"""Scenario sections ``data``, ``model``, ``training`` and ``strategy``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

MAX_WIDTH = 8192  # widest layer a scenario may ask for


class _Frozen(BaseModel):
    # no NaN or infinity anywhere: a non-finite power or bound only fails deep in a run
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class IIDPartition(_Frozen):
    kind: Literal["iid"]


class DirichletPartition(_Frozen):
    """Label proportions per device ~ Dirichlet(alpha): small alpha = strongly non-IID."""

    kind: Literal["dirichlet"]
    alpha: PositiveFloat = 0.5
    min_samples: PositiveInt = 2


class ShardsPartition(_Frozen):
    """Sort by label, cut into ``shards_per_device * devices`` shards, deal them out."""

    kind: Literal["shards"]
    shards_per_device: int = Field(default=2, gt=0, le=10_000)


class ClusteredPartition(_Frozen):
    """G groups of devices (device k in group k mod G), each with its own shift of the data
    (fl/clustered.py); ``within`` splits the pool across all devices first."""

    kind: Literal["clustered"]
    groups: int = Field(default=4, gt=0, le=1000)
    shift: Literal["label_permutation", "rotation", "feature_noise"] = "label_permutation"
    permutation: Literal["shift", "random"] = Field(
        default="shift",
        description="label_permutation: y -> (y + g) mod classes, or a seeded permutation per "
        "group",
    )
    noise_std: PositiveFloat = Field(default=0.5, description="feature_noise: pattern scale")
    within: Annotated[IIDPartition | DirichletPartition, Field(discriminator="kind")] = (
        IIDPartition(kind="iid")
    )


class NaturalPartition(_Frozen):
    """The data's own owners: FEMNIST's writers, or the ``device`` array of an ``.npz``; one
    owner per device (devices.count may not exceed the owners)."""

    kind: Literal["natural"]


Partition = Annotated[
    IIDPartition | DirichletPartition | ShardsPartition | ClusteredPartition | NaturalPartition,
    Field(discriminator="kind"),
]

LOCAL_TEST = Field(
    default=None,
    gt=0,
    lt=1,
    description="hold out this share of each device's data to measure personalised accuracy",
)


class DigitsData(_Frozen):
    """scikit-learn's bundled handwritten digits: 1,797 8x8 images, 10 classes."""

    kind: Literal["digits"]
    partition: Partition = DirichletPartition(kind="dirichlet")
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    local_test_fraction: float | None = LOCAL_TEST


class MnistData(_Frozen):
    """MNIST or Fashion-MNIST from the four IDX files (raw or .gz) in ``path``; their own
    test split."""

    kind: Literal["mnist", "fashion_mnist"]
    path: str = Field(min_length=1)
    partition: Partition = DirichletPartition(kind="dirichlet")
    local_test_fraction: float | None = LOCAL_TEST


class Cifar10Data(_Frozen):
    """CIFAR-10's python batches (data_batch_1..5, test_batch) in ``path``."""

    kind: Literal["cifar10"]
    path: str = Field(min_length=1)
    partition: Partition = DirichletPartition(kind="dirichlet")
    local_test_fraction: float | None = LOCAL_TEST


class FemnistData(_Frozen):
    """FEMNIST in LEAF's JSON layout (train/, test/ under ``path``); by default one writer per
    device."""

    kind: Literal["femnist"]
    path: str = Field(min_length=1)
    partition: Partition = NaturalPartition(kind="natural")
    local_test_fraction: float | None = LOCAL_TEST


class ArraysData(_Frozen):
    """Any ``.npz`` with ``x`` [N, ...] and ``y`` [N] (and optional ``device`` [N], used by
    ``partition: natural``)."""

    kind: Literal["arrays"]
    path: str = Field(min_length=1)
    partition: Partition = IIDPartition(kind="iid")
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    local_test_fraction: float | None = LOCAL_TEST


class SyntheticData(_Frozen):
    """FedProx-style synthetic(alpha, beta): each device has its own model and input law."""

    kind: Literal["synthetic"]
    alpha: float = Field(default=1.0, ge=0, le=100)
    beta: float = Field(default=1.0, ge=0, le=100)
    dim: int = Field(default=60, gt=0, le=100_000)
    num_classes: int = Field(default=10, ge=2, le=10_000)
    samples_median: int = Field(default=100, gt=0, le=1_000_000)
    samples_sigma: float = Field(default=0.5, ge=0, le=5)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)


DataConfig = Annotated[
    DigitsData | SyntheticData | MnistData | Cifar10Data | FemnistData | ArraysData,
    Field(discriminator="kind"),
]


class LowRankConfig(_Frozen):
    """Linear layers kept as ``U S V^T`` (fl/low_rank.py), for ``strategy.kind: fedlrt``.

    ``layers: hidden`` factors every Linear layer but the classifier; a list of indices
    (0 = the first Linear) picks them. ``rank`` is the initial rank, clamped each round to
    ``[r_min, r_max]``; ``r_max`` at most half the layer's smaller side (augmentation doubles
    the rank)."""

    rank: int = Field(default=8, gt=0, le=4096)
    r_min: int = Field(default=2, gt=0, le=4096)
    r_max: int = Field(default=32, gt=0, le=4096)
    layers: Literal["hidden"] | list[Annotated[int, Field(ge=0, le=64)]] = "hidden"

    @model_validator(mode="after")
    def _ordered(self):
        if not self.r_min <= self.rank <= self.r_max:
            raise ValueError(f"r_min <= rank <= r_max, not {self.r_min}, {self.rank}, {self.r_max}")
        return self


class MLPConfig(_Frozen):
    kind: Literal["mlp"]
    # bounded so that one typo cannot ask for a terabyte model (see Scenario's parameter cap)
    hidden: list[Annotated[int, Field(gt=0, le=MAX_WIDTH)]] = Field(default=[64], max_length=32)
    low_rank: LowRankConfig | None = Field(
        default=None, description="factored linear layers (strategy fedlrt)"
    )


class CNNConfig(_Frozen):
    """Two conv(3x3)-ReLU-maxpool(2) blocks and a linear head; image data only."""

    kind: Literal["cnn"]
    channels: tuple[Annotated[int, Field(gt=0, le=1024)], Annotated[int, Field(gt=0, le=1024)]] = (
        8,
        16,
    )


ModelConfig = Annotated[MLPConfig | CNNConfig, Field(discriminator="kind")]


class TrainingConfig(_Frozen):
    """Local SGD. ``mode: none`` (or ``training: none``) is the systems-only mode.

    Work per round is either ``local_steps`` mini-batches (every device processes
    ``local_steps * batch_size`` samples) or ``local_epochs`` passes over its own data.
    """

    mode: Literal["full", "none"] = "full"
    local_steps: Annotated[int, Field(gt=0, le=1_000_000)] | None = 10
    local_epochs: Annotated[int, Field(gt=0, le=10_000)] | None = None
    batch_size: int = Field(default=16, gt=0, le=65_536)
    lr: PositiveFloat = 0.05
    eval_every: PositiveInt = 1
    # A loss above this multiple of the first measured loss means the model blew up (the run
    # stops with status diverged), not only a nan or inf.
    divergence_loss_ratio: float = Field(default=100.0, gt=1)
    # Where tensors live while training. `cpu` by default: results are then bit-identical on
    # every machine; `auto` takes a CUDA GPU when torch sees one (results agree with CPU to
    # about 1e-5, not bit for bit); `cuda` insists on one and is rejected where there is none.
    device: Literal["auto", "cpu", "cuda"] = "cpu"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        # `training: none` / `training: full` are accepted as shorthands for the mode.
        if isinstance(value, str):
            return {"mode": value}
        if isinstance(value, dict) and value.get("local_epochs") is not None:
            value = {**value, "local_steps": value.get("local_steps")}
        return value

    @model_validator(mode="after")
    def _one_work_unit(self):
        if (self.local_steps is None) == (self.local_epochs is None):
            raise ValueError("set exactly one of local_steps and local_epochs")
        return self


class ServerOptimizerConfig(_Frozen):
    """The server's step on the round's pseudo-gradient (Reddi et al., ICLR 2021;
    fl/server_optimizers.py). ``lr`` defaults to 1 for ``sgd`` (plain FedAvg replacement) and
    to 0.01 for the adaptive ones; ``betas`` = (beta1, beta2), ``tau`` the adaptivity floor
    (the paper's defaults 0.9, 0.99 and 1e-3)."""

    kind: Literal["sgd", "adam", "yogi", "adagrad"]
    lr: float = Field(default=None, gt=0, le=1e3)  # type: ignore[assignment]  # filled below
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.99,
    )
    tau: float = Field(default=1e-3, gt=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _default_lr(cls, value):
        if isinstance(value, dict) and value.get("lr") is None:
            value = {**value, "lr": 1.0 if value.get("kind") == "sgd" else 0.01}
        return value


class CohortSize(_Frozen):
    """How many online devices a round takes: ``clients_per_round``, a ``fraction`` of them,
    or (neither) all."""

    clients_per_round: PositiveInt | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _at_most_one(self):
        if self.clients_per_round is not None and self.fraction is not None:
            raise ValueError("set at most one of clients_per_round and fraction")
        return self


class FedAvgConfig(CohortSize):
    """FedAvg (McMahan et al., 2017). Cohort: ``clients_per_round`` or ``fraction`` of online;
    ``server_optimizer``: an adaptive server step instead of replacing the model."""

    kind: Literal["fedavg"]
    server_optimizer: ServerOptimizerConfig | None = None


class FedProxConfig(FedAvgConfig):
    """FedProx (Li et al., MLSys 2020): local objective ``F_k(w) + mu/2 ||w - w_t||^2``;
    ``mu: 0`` is FedAvg exactly."""

    kind: Literal["fedprox"]  # type: ignore[assignment]
    mu: float = Field(default=0.01, ge=0, le=1e4)


class HierFAVGConfig(_Frozen):
    """HierFAVG (Liu et al., ICC 2020): edge aggregation in every cell each round, cloud
    aggregation over the backhaul every ``edge_rounds`` rounds (needs a ``cells`` section)."""

    kind: Literal["hierfavg"]
    edge_rounds: int = Field(default=5, gt=0, le=1_000_000)
    clients_per_round: PositiveInt | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)


class ScaffoldConfig(FedAvgConfig):
    """SCAFFOLD (Karimireddy et al., ICML 2020), option II control variates. The global step
    ``eta_g`` is ``server_optimizer: {kind: sgd, lr: eta_g}`` (default 1); ``weighting``: the
    paper's plain mean over the cohort (``uniform``) or by examples."""

    kind: Literal["scaffold"]  # type: ignore[assignment]
    weighting: Literal["uniform", "examples"] = "uniform"


class PrunedPersonalizedConfig(_Frozen):
    """Adaptive pruning + partial personalisation (papers/pruning_personalization_kkt.md).

    ``rho: adaptive`` lets the joint allocator (``channel.allocator.kind: joint_pruning``)
    choose each device's pruning ratio every round; a number fixes it for every device
    (0 = partial personalisation without pruning).
    """

    kind: Literal["pruned_personalized"]
    rho: Literal["adaptive"] | Annotated[float, Field(ge=0, lt=1)] = "adaptive"
    personal_steps: int = Field(default=5, gt=0, le=1_000_000)
    global_steps: int = Field(default=5, gt=0, le=1_000_000)
    aggregation: Literal["kept_entries", "zero_filled"] = "kept_entries"
    mask_bitmap: bool = False
    clients_per_round: PositiveInt | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)


class StalenessConfig(_Frozen):
    """Staleness weight s(tau): constant 1, polynomial (tau + 1)^-a, or hinge (1 up to b, then
    1 / (a (tau - b) + 1))."""

    kind: Literal["constant", "polynomial", "hinge"] = "polynomial"
    a: float = Field(default=0.5, gt=0, le=1e3)
    b: float = Field(default=4.0, ge=0, le=1e9)


class FedAsyncConfig(_Frozen):
    """FedAsync (Xie et al.): mix every arrival into the global model with alpha * s(tau)."""

    kind: Literal["fedasync"]
    alpha: float = Field(default=0.6, gt=0, le=1)
    staleness: StalenessConfig = StalenessConfig()


class FedBuffConfig(_Frozen):
    """FedBuff (Nguyen et al.): apply the mean of K buffered, staleness-weighted deltas."""

    kind: Literal["fedbuff"]
    buffer_size: int = Field(default=10, gt=0, le=MAX_WIDTH * 1000)
    server_lr: float = Field(default=1.0, gt=0, le=1e6)
    staleness: StalenessConfig = StalenessConfig()
    weighting: Literal["uniform", "examples"] = "uniform"


class OrthoFLConfig(_Frozen):
    """OrthoFL (Zhang et al.): a staleness-weighted moving average is the reported model;
    each device keeps its own model, calibrated on return by the part of the global shift
    orthogonal to its own update (papers/orthofl.md).

    ``shift_source``: ``global_ma`` measures the shift on the moving average (the paper's
    text); ``dispatched_chain`` on the chain of dispatched models (the reference code).
    ``layerwise: false`` projects over the whole model at once (the paper's ablation).
    ``first_update_adopts``: the very first server update takes the arriving model whole.
    """

    kind: Literal["orthofl"]
    alpha: float = Field(default=0.6, gt=0, le=1)
    staleness: StalenessConfig = StalenessConfig()
    shift_source: Literal["global_ma", "dispatched_chain"] = "global_ma"
    epsilon: float = Field(default=1e-19, gt=0, le=1.0)
    layerwise: bool = True
    first_update_adopts: bool = True


class FixedRanks(_Frozen):
    """Systems-only FeDLRT: every layer keeps its initial rank."""

    kind: Literal["fixed"]


class RanksFromMetrics(_Frozen):
    """Systems-only FeDLRT: round r uses the ranks (``rank_<layer>`` columns) of round r of a
    previous full run's ``metrics.parquet`` (its last row after its end)."""

    kind: Literal["from_metrics"]
    path: str = Field(min_length=1)


class FeDLRTConfig(_Frozen):
    """FeDLRT (Schotthoefer and Laiu, 2024; papers/fedlrt.md): global bases, clients train a
    2r x 2r coefficient after server-side basis augmentation; truncation with relative
    threshold ``tau``. ``variance_correction``: ``none``, ``simplified`` (top-left r x r
    block from the basis-gradient pass, no extra exchange; the notes' reconstruction) or
    ``full`` (a third exchange of 2r x 2r gradients). ``gradient_batches``: mini-batches
    averaged for the basis (and correction) gradients. ``weights``: client weights in all
    three averages. Coefficient steps per round = ``training.local_steps``."""

    kind: Literal["fedlrt"]
    tau: float = Field(default=0.1, gt=0, lt=1)
    variance_correction: Literal["none", "simplified", "full"] = "full"
    gradient_batches: int = Field(default=4, gt=0, le=10_000)
    weights: Literal["examples", "uniform"] = "examples"
    systems_ranks: Annotated[FixedRanks | RanksFromMetrics, Field(discriminator="kind")] = (
        FixedRanks(kind="fixed")
    )
    clients_per_round: PositiveInt | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)


class FloralConfig(_Frozen):
    """FLoRAL (Almansoori, Horvath, Takac, CPAL 2025; papers/floral.md): C low-rank adaptors
    per layer (rank budget ``rho`` of the layer each), a private router per device mixing
    them; base and adaptors federated, adaptors aggregated with p(k | c). Defaults are the
    reference code's: router step 0.1, router noise U[0, 1), preconditioned adaptor
    gradients. ``router: oracle`` fixes each device's mixture on its true group (clustered
    partitions); ``private_adaptors: true`` is the local-adaptor baseline (one adaptor kept
    on the device, only the base federated)."""

    kind: Literal["floral"]
    adaptors: int = Field(default=4, gt=0, le=64)
    rho: float = Field(default=0.1, gt=0, le=1)
    router: Literal["learned", "oracle"] = "learned"
    router_lr: float = Field(default=0.1, ge=0, le=100)
    router_noise: float = Field(default=1.0, ge=0, le=100)
    precondition: bool = True
    private_adaptors: bool = False
    clients_per_round: PositiveInt | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)


class ReformConfig(_Frozen):
    """When coalitions re-form: every ``every_rounds`` rounds, or every ``every_s`` virtual
    seconds (the re-forming then happens at the end of the first round that starts at or after
    each multiple). Round 0 always forms the first coalitions."""

    every_rounds: Annotated[int, Field(gt=0, le=1_000_000)] | None = 5
    every_s: Annotated[float, Field(gt=0, le=1e12)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_clock(cls, value):
        if isinstance(value, dict) and value.get("every_s") is not None:
            value = {**value, "every_rounds": value.get("every_rounds")}
        return value

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.every_rounds is None) == (self.every_s is None):
            raise ValueError("set exactly one of every_rounds and every_s")
        return self


class CoalitionConfig(_Frozen):
    """Weight-driven coalition FL (El Hanjri et al., ICC 2024; papers/coalition.md, all
    switches but the Euclidean weight distance are the notes' inferred recipe).

    ``coalitions``: K for k-means; ``formation: threshold`` lets K emerge (``threshold`` x the
    median pairwise distance). ``barycenter``: members weighted equally or by examples;
    ``combine``: the server weighs barycenters equally, by coalition size or by examples;
    ``returns``: what a device trains from and runs (the global model or its coalition's
    barycenter). ``communication: head_d2d``: members send their model to the coalition's head
    over a D2D link and only heads upload (re-forming rounds upload individually).
    """

    kind: Literal["coalitions"]
    coalitions: int = Field(default=4, gt=0, le=1000)
    formation: Literal["kmeans", "threshold"] = "kmeans"
    init: Literal["kmeans++", "warm"] = "warm"
    n_init: int = Field(default=10, gt=0, le=100, description="k-means++ seedings, best kept")
    max_iter: int = Field(default=10, gt=0, le=1000)
    threshold: float = Field(default=0.5, gt=0, le=100)
    projection_dim: Annotated[int, Field(gt=0, le=100_000)] | None = None
    barycenter: Literal["equal", "examples"] = "equal"
    combine: Literal["equal", "size", "examples"] = "equal"
    returns: Literal["global", "barycenter"] = Field(default="global", validate_default=True)
    communication: Literal["server", "head_d2d"] = "server"
    head: Literal["medoid", "best_channel"] = "medoid"
    reform: ReformConfig = ReformConfig()
    # In a re-forming round, devices train from the global model (weights then differ by
    # their data alone) or from what they run (their barycenter: self-reinforcing). Ours.
    reform_from: Literal["global", "own"] = "global"

    @field_validator("returns")
    @classmethod
    def _not_fedavg(cls, returns, info):
        both = info.data.get("barycenter") == "examples" and info.data.get("combine") == "examples"
        if both and returns == "global":
            raise ValueError(
                "barycenter (not global) when barycenter and combine both weigh by examples: "
                "that combination is exactly FedAvg (the coalitions change nothing)"
            )
        return returns


StrategyConfig = Annotated[
    FedAvgConfig
    | FedProxConfig
    | ScaffoldConfig
    | HierFAVGConfig
    | PrunedPersonalizedConfig
    | FedAsyncConfig
    | FedBuffConfig
    | OrthoFLConfig
    | CoalitionConfig
    | FeDLRTConfig
    | FloralConfig,
    Field(discriminator="kind"),
]
