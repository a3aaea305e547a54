"""``build(scenario)``: everything a run needs, joined by device id, before time starts."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from channels.allocation import BandwidthAllocator
from channels.cells import Cells, make_cells
from channels.counter_rng import standard_normal, stream_id
from channels.factory import make_allocator, make_d2d_link, make_link
from channels.joint_pruning import JointPruningAllocator
from channels.link import Link
from devices.availability import Availability
from devices.config import FlashSource
from devices.flash import draw_flash
from devices.population import make_availability, make_population, make_round_time
from devices.round_time import RoundTimeProfiles
from devices.spec import Population
from devices.traces import TraceError
from fl.compute_device import DeviceUnavailable, resolve_device
from fl.data_files import DataFileError
from fl.datasets import FederatedData
from fl.factory import data_signature, make_data, make_local_work, make_strategy, strategy_class
from fl.flops import training_flops_per_sample
from fl.models import build_model
from fl.selection import SelectionPolicy, make_selection_policy
from fl.selection.config import LOSS_AWARE
from fl.state import ModelState
from fl.strategies.base import Strategy
from fl.training import LocalWork
from simulator.config import Scenario
from simulator.errors import Problem, ScenarioError
from simulator.rng import RngStreams

_ROUND_TIME = stream_id("round_time")


@dataclass
class World:
    """The built, not-yet-running simulation. Read-only once built except ``global_state``."""

    scenario: Scenario
    streams: RngStreams
    population: Population
    availability: Availability
    uplink: Link
    downlink: Link
    allocator: BandwidthAllocator | JointPruningAllocator
    strategy: Strategy
    model: nn.Module
    global_state: ModelState
    work: LocalWork
    data: FederatedData | None
    num_examples: np.ndarray  # [n_devices] training examples per device
    round_time: RoundTimeProfiles | None = None  # None: natural job times (CPU + channel)
    d2d: Link | None = None  # device-to-device links (``channel.d2d``), keyed by pair id
    measured_up_bps: np.ndarray | None = None  # FLASH source: each device's measured uplink
    training_device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    selection: SelectionPolicy | None = None  # None: the strategy selects
    cells: Cells | None = None  # base stations as edge servers (None: one server)

    @property
    def num_devices(self) -> int:
        return len(self.population)

    @cached_property
    def _round_time_seed(self) -> int:
        return self.streams.integer("round_time")

    def static_device_columns(self) -> dict[str, np.ndarray]:
        """Each device's fixed parameters, columns [n] for ``devices.parquet``: enough to
        recompute any round by hand (``pathloss_db`` includes the uplink's shadowing)."""
        pop = self.population
        ids = np.arange(self.num_devices)
        groups = None if self.data is None else self.data.device_groups
        loss_db = self.uplink.pathloss.loss_db(pop.distance_m) + self.uplink.shadowing.offset_db(
            ids
        )
        return {
            "x_m": pop.position_m[:, 0],
            "y_m": pop.position_m[:, 1],
            "distance_m": pop.distance_m,
            "pathloss_db": loss_db,
            "cpu_hz": pop.cpu_hz,
            "cycles_per_sample": pop.cycles_per_sample,
            "tx_power_dbm": pop.tx_power_dbm,
            "kappa": pop.kappa,
            "num_examples": self.num_examples,
            **({} if groups is None else {"true_group": groups}),
            **({} if self.measured_up_bps is None else {"measured_up_bps": self.measured_up_bps}),
        }

    def profile_job_times_s(self, device_ids: np.ndarray, job_idx) -> np.ndarray:
        """Round-time profile draws [n] s for these devices' ``job_idx``-th jobs: a pure
        function of (seed, device, job) through the counter RNG."""
        assert self.round_time is not None
        ids = np.asarray(device_ids, dtype=np.int64)
        z = standard_normal(self._round_time_seed, _ROUND_TIME, ids, job_idx)
        return self.round_time.job_time_s(ids, z)


@dataclass(frozen=True)
class Preflight:
    """What :func:`preflight` built on the way: the model (on the CPU) and its input shape."""

    model: nn.Module
    input_shape: tuple[int, ...]
    device: torch.device


def preflight(scenario: Scenario, source: str = "scenario") -> Preflight:
    """Every check a scenario implies that needs no data and no population: settings that are
    valid alone but not together, the training device, files named by paths, and the
    strategy's protocol against the channel. Cheap (a model is built, nothing is loaded), so
    sweeps and comparisons run it on every point before anything runs. Raises
    :class:`ScenarioError`."""
    streams = RngStreams(scenario.seed)
    device = _training_device(scenario, source)
    _check_pairing(scenario, source)
    _check_low_rank(scenario, source)
    _check_oracle_router(scenario, source)
    _check_paths(scenario, source)
    try:
        input_shape, num_classes = data_signature(scenario.data)
    except DataFileError as exc:
        where = f"{exc.expected} at {exc.path}"
        raise ScenarioError(source, [Problem("data.path", where, exc.found)]) from None
    try:
        model = build_model(scenario.model, input_shape, num_classes, streams.torch("model_init"))
    except ValueError as exc:
        raise ScenarioError(
            source, [Problem("model", "a model that fits the data", str(exc))]
        ) from None
    # the strategy may train its own parametrisation (low-rank factors, adaptors, routers)
    try:
        model = strategy_class(scenario.strategy).build_model(
            model,
            config=scenario.strategy,
            generator=streams.torch("strategy_model"),
            model_config=scenario.model,
        )
    except ValueError as exc:
        field, _, why = str(exc).partition(": ")
        raise ScenarioError(
            source, [Problem(field, why or "a model it can build", "the model as set")]
        ) from None
    state = {k: v.detach() for k, v in model.state_dict().items()}
    strategy = make_strategy(
        scenario.strategy, model=model, initial_state=state, num_devices=scenario.devices.count,
        scenario=scenario,
    )  # fmt: skip
    strategy.bits_per_param = scenario.bits_per_param
    _check_async_settings(scenario, strategy, source)
    _check_selection(scenario, strategy, source)
    _check_cells(scenario, strategy, source)
    _check_over_the_air(scenario, source)
    check_protocol_needs(scenario, strategy, state, source)
    return Preflight(model, input_shape, device)


def _check_cells(scenario: Scenario, strategy: Strategy, source: str) -> None:
    """Cells run synchronous rounds (each edge plans its own cohort's stage); a strategy that
    aggregates at the edges needs them."""
    kind = scenario.strategy.kind
    if scenario.cells is None:
        if strategy.edge_aggregation:
            why = f"a cells section (strategy {kind!r} aggregates at each cell's edge)"
            raise ScenarioError(source, [Problem("cells", why, "none")])
        return
    if "sync" not in strategy.modes:
        why = f"no cells section with the asynchronous strategy {kind!r} (not modelled)"
        raise ScenarioError(source, [Problem("cells", why, f"{scenario.cells.count} cells")])


# strategies whose aggregate is the example-weighted average of the returned models, which an
# over-the-air sum can deliver
OVER_THE_AIR_STRATEGIES = ("fedavg", "fedprox")


def _check_over_the_air(scenario: Scenario, source: str) -> None:
    """An over-the-air uplink sums everyone's model: it needs a strategy whose aggregate is
    that weighted average, and one cell (it allocates no band, so joint pruning, which needs
    its own strategy, never meets it)."""
    if scenario.channel.aggregation.kind != "over_the_air":
        return
    kind = scenario.strategy.kind
    field, found = "channel.aggregation.kind", "'over_the_air'"
    problems = []
    if kind not in OVER_THE_AIR_STRATEGIES:
        why = f"digital with strategy {kind!r} (over the air needs one of "
        why += f"{', '.join(OVER_THE_AIR_STRATEGIES)}: an example-weighted average of models)"
        problems.append(Problem(field, why, found))
    if scenario.cells is not None:
        why = "digital with a cells section (over the air is modelled for one cell)"
        problems.append(Problem(field, why, found))
    if problems:
        raise ScenarioError(source, problems)


def _check_selection(scenario: Scenario, strategy: Strategy, source: str) -> None:
    """A ``selection`` section picks synchronous cohorts: not with an asynchronous strategy
    (it dispatches whoever is free), not with coalitions (their members make the cohort), not
    together with the strategy's own cohort size, and loss-aware selectors need training."""
    sel = scenario.selection
    if sel is None:
        return
    kind = scenario.strategy.kind
    problems = []
    if "sync" not in strategy.modes:
        problems.append(Problem("selection", f"no selection section with the asynchronous "
                                f"strategy {kind!r} (it dispatches devices as they free up)",
                                f"kind {sel.kind!r}"))  # fmt: skip
    elif strategy.reform_clock() is not None:
        why = f"no selection section with strategy {kind!r} (its coalitions make each cohort)"
        problems.append(Problem("selection", why, f"kind {sel.kind!r}"))
    for name in ("clients_per_round", "fraction"):
        value = getattr(scenario.strategy, name, None)
        if value is not None:
            why = f"unset when a selection section is given (set selection.{name} instead)"
            problems.append(Problem(f"strategy.{name}", why, repr(value)))
    if sel.kind in LOSS_AWARE and scenario.systems_only:
        problems.append(Problem("selection.kind", "a selector that needs no loss reports "
                                "(training: none has no losses): random, channel_aware, "
                                "age_of_update or energy_aware", repr(sel.kind)))  # fmt: skip
    if problems:
        raise ScenarioError(source, problems)


def _load_rank_schedule(scenario: Scenario, strategy: Strategy, source: str) -> None:
    """Systems-only FeDLRT with ``systems_ranks: from_metrics``: the ranks of a previous run."""
    ranks = getattr(scenario.strategy, "systems_ranks", None)
    if not scenario.systems_only or ranks is None or ranks.kind != "from_metrics":
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(ranks.path).expanduser()
    try:
        table = pq.read_table(path).to_pydict()
        strategy.load_rank_schedule(table)  # type: ignore[attr-defined]
    except (OSError, pa.ArrowException, ValueError) as exc:
        where = f"a metrics.parquet with rank_<layer> columns at {path}"
        found = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ScenarioError(
            source, [Problem("strategy.systems_ranks.path", where, found)]
        ) from None


def _check_oracle_router(scenario: Scenario, source: str) -> None:
    """FLoRAL's oracle router puts each device on its true group: only a clustered
    partition has one."""
    if getattr(scenario.strategy, "router", None) != "oracle":
        return
    partition = getattr(scenario.data, "partition", None)
    if getattr(partition, "kind", None) != "clustered":
        expected = "learned (oracle needs the true groups of data.partition.kind: clustered)"
        raise ScenarioError(source, [Problem("strategy.router", expected, "'oracle'")])


def _check_low_rank(scenario: Scenario, source: str) -> None:
    """Factored layers are trained by FeDLRT only (FedAvg would average bases that differ
    from client to client, which means nothing)."""
    low = getattr(scenario.model, "low_rank", None)
    if low is not None and scenario.strategy.kind != "fedlrt":
        expected = f"no low_rank with strategy {scenario.strategy.kind!r} (only fedlrt)"
        raise ScenarioError(source, [Problem("model.low_rank", expected, "a low_rank section")])


def _check_paths(scenario: Scenario, source: str) -> None:
    """Files a scenario names must exist (their contents are checked where they are read)."""
    named = [
        ("data.path", getattr(scenario.data, "path", None)),
        ("devices.source.path", getattr(scenario.devices.source, "path", None)),
        ("devices.availability.path", getattr(scenario.devices.availability, "path", None)),
        (
            "strategy.systems_ranks.path",
            getattr(getattr(scenario.strategy, "systems_ranks", None), "path", None),
        ),
    ]
    problems = [
        Problem(field, "an existing file or folder", f"nothing at {path}")
        for field, path in named
        if path is not None and not Path(path).expanduser().exists()
    ]
    if problems:
        raise ScenarioError(source, problems)


def build(scenario: Scenario, source: str = "scenario") -> World:
    """Build a World. Raises :class:`ScenarioError` for settings that validate field by field
    but cannot work together (e.g. more devices than the data can be split across)."""
    checked = preflight(scenario, source)
    model, input_shape, device = checked.model, checked.input_shape, checked.device
    streams = RngStreams(scenario.seed)
    n = scenario.devices.count
    channel_seed = streams.integer("channel")
    work = make_local_work(scenario.training, scenario.strategy)

    # Systems-only runs skip the data unless compute time depends on it (epoch-based work).
    needs_data = not scenario.systems_only or work.epochs is not None
    data = None
    if needs_data:
        try:
            data = make_data(scenario.data, n, lambda name: streams.numpy("data", name))
        except DataFileError as exc:
            where = f"{exc.expected} at {exc.path}"
            raise ScenarioError(source, [Problem("data.path", where, exc.found)]) from None
        except ValueError as exc:
            raise ScenarioError(
                source, [Problem("data", "a split that gives every device data", str(exc))]
            ) from None
    # counted only where used (cycles_per_sample: auto, or a strategy's flops_share)
    count_flops = functools.cache(lambda: training_flops_per_sample(model, input_shape))
    flops = count_flops() if scenario.devices.cycles_per_sample == "auto" else None
    try:
        population = make_population(
            scenario.devices, lambda name: streams.numpy("devices", name), flops_per_sample=flops
        )
    except TraceError as exc:
        raise ScenarioError(source, [_trace_problem("devices.source.path", exc)]) from None
    num_examples = data.num_examples() if data is not None else np.zeros(n, np.int64)
    if data is None:
        # Steps-based work does not depend on the split; weights are unused without training.
        num_examples = np.ones(n, np.int64)
    # initialised on the CPU from the CPU streams, then moved: a GPU run starts from the same
    # numbers as a CPU run
    model = model.to(device)
    if data is not None:
        data = data.to(device)
    initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    strategy = make_strategy(
        scenario.strategy, model=model, initial_state=initial_state, num_devices=n,
        scenario=scenario,
    )  # fmt: skip
    strategy.bits_per_param = scenario.bits_per_param
    strategy.count_model_flops = count_flops
    strategy.bind_streams(
        lambda *key: streams.numpy("strategy", *key), lambda *key: streams.torch("strategy", *key)
    )
    _load_rank_schedule(scenario, strategy, source)
    uplink = _tabulate(make_link(scenario.channel, channel_seed, "uplink"), n)
    measured_up_bps = None
    if isinstance(scenario.devices.source, FlashSource):
        population, measured_up_bps = _flash_uplink(scenario, streams, population, uplink)
    try:
        availability = make_availability(scenario.devices)
    except TraceError as exc:
        raise ScenarioError(source, [_trace_problem("devices.availability.path", exc)]) from None
    return World(
        scenario=scenario,
        streams=streams,
        population=population,
        availability=availability,
        uplink=uplink,
        downlink=_tabulate(make_link(scenario.channel, channel_seed, "downlink"), n),
        allocator=make_allocator(scenario.channel),
        strategy=strategy,
        model=model,
        global_state=initial_state,
        work=work,
        data=data,
        num_examples=num_examples,
        round_time=make_round_time(scenario.devices, streams.numpy("devices", "round_time")),
        d2d=None if scenario.channel.d2d is None else make_d2d_link(scenario.channel, channel_seed),
        measured_up_bps=measured_up_bps,
        training_device=device,
        selection=None if scenario.selection is None else make_selection_policy(scenario.selection),
        cells=make_cells(scenario.cells),
    )


def _training_device(scenario: Scenario, source: str) -> torch.device:
    """The torch device training runs on (systems-only runs train nothing: the CPU)."""
    if scenario.systems_only:
        return torch.device("cpu")
    try:
        return resolve_device(scenario.training.device)
    except DeviceUnavailable as exc:
        expected = "a CUDA GPU torch can use (or device: auto | cpu)"
        raise ScenarioError(source, [Problem("training.device", expected, str(exc))]) from None


def _flash_uplink(scenario: Scenario, streams: RngStreams, population, uplink: Link):
    """FLASH's measured upload throughput as each device's uplink: the transmit power at which
    an equal share of the uplink band (among all devices) carries it at the device's own path
    loss and shadowing and mean fading, ``p = (2^(r/b) - 1) N0 b / g``. Returns the population
    with those powers and the throughputs [n] bit/s."""
    from dataclasses import replace

    from channels.units import dbm_to_w

    n = scenario.devices.count
    source = scenario.devices.source
    assert isinstance(source, FlashSource)
    flash = draw_flash(n, source.reference_cpu_hz, lambda name: streams.numpy("devices", name))
    ch = scenario.channel
    band_hz = ch.uplink_data_bandwidth_hz / n
    gain = uplink.static_gain(link_ids=np.arange(n), distance_m=population.distance_m)
    noise_w = float(dbm_to_w(ch.noise_psd_dbm_per_hz)) * band_hz
    power_w = (2.0 ** (flash.up_bps / band_hz) - 1.0) * noise_w / gain
    return replace(population, tx_power_dbm=10.0 * np.log10(power_w) + 30.0), flash.up_bps


def _trace_problem(field: str, exc: TraceError) -> Problem:
    where = exc.path if exc.row is None else f"{exc.path} row {exc.row}"
    return Problem(field, f"{exc.expected} at {where}", exc.found)


def check_protocol_needs(scenario: Scenario, strategy: Strategy, state, source: str) -> None:
    """Channel settings and the strategy's round protocol must fit together: D2D links exist
    exactly when the strategy relays between devices; the asynchronous engine runs one-stage
    protocols over unicast slots."""
    problems = []
    ch = scenario.channel
    if ch.d2d is not None and not strategy.uses_d2d:
        problems.append(
            Problem(
                "channel.d2d",
                f"no d2d settings: strategy {scenario.strategy.kind!r} sends no "
                "device-to-device traffic",
                "a d2d section",
            )
        )
    if strategy.uses_d2d and ch.d2d is None:
        problems.append(
            Problem(
                "channel.d2d",
                f"d2d settings (strategy {scenario.strategy.kind!r} relays between devices)",
                "none",
            )
        )
    if "async" in strategy.modes:
        if ch.downlink.mode != "unicast":
            problems.append(
                Problem(
                    "channel.downlink.mode",
                    "unicast with an asynchronous strategy (each dispatch is its own transmission)",
                    repr(ch.downlink.mode),
                )
            )
        protocol = strategy.round_protocol(global_state=state, cohort=np.zeros(1, np.int64))
        if len(protocol.stages) > 1 or protocol.uses_d2d:
            problems.append(
                Problem(
                    "strategy.kind",
                    "an asynchronous strategy with a one-stage protocol and no d2d legs",
                    f"{len(protocol.stages)} stages",
                )
            )
    if problems:
        raise ScenarioError(source, problems)


def _check_pairing(scenario: Scenario, source: str) -> None:
    """Adaptive pruning and the joint allocator only make sense together."""
    adaptive = getattr(scenario.strategy, "rho", None) == "adaptive"
    joint = scenario.channel.allocator.kind == "joint_pruning"
    if adaptive and not joint:
        raise ScenarioError(
            source,
            [
                Problem(
                    "channel.allocator.kind",
                    "joint_pruning (strategy.rho is adaptive)",
                    repr(scenario.channel.allocator.kind),
                )
            ],
        )
    if joint and not adaptive:
        raise ScenarioError(
            source,
            [
                Problem(
                    "strategy.rho",
                    "adaptive (channel.allocator is joint_pruning)",
                    repr(getattr(scenario.strategy, "rho", scenario.strategy.kind)),
                )
            ],
        )


def _check_async_settings(scenario: Scenario, strategy: Strategy, source: str) -> None:
    """Settings only the asynchronous engine reads are an error with a synchronous strategy
    (they would be silently ignored)."""
    if "async" in strategy.modes:
        return
    sim = scenario.simulation
    why = f"with the synchronous strategy {scenario.strategy.kind!r} (the setting applies to "
    why += "fedasync, fedbuff and orthofl)"
    problems = []
    if sim.uplink_sharing != "equal_slots":
        problems.append(
            Problem("simulation.uplink_sharing", f"equal_slots {why}", repr(sim.uplink_sharing))
        )
    if sim.concurrency is not None:
        problems.append(Problem("simulation.concurrency", f"no value {why}", repr(sim.concurrency)))
    if problems:
        raise ScenarioError(source, problems)


def _tabulate(link: Link, num_devices: int) -> Link:
    """The link with its (static) shadowing drawn once for every device."""
    from dataclasses import replace

    from channels.shadowing import Shadowing

    if not isinstance(link.shadowing, Shadowing):
        return link
    return replace(link, shadowing=link.shadowing.tabulated(num_devices))
