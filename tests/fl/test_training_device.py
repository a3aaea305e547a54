"""``training.device``: where training tensors live, and that results do not depend on it.

Without a CUDA GPU (CI) the GPU comparisons skip; the device plumbing is still checked on
torch's ``meta`` device, which refuses to mix with CPU tensors exactly as CUDA does, so a
tensor created on the CPU inside the training or aggregation path fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fl.compute_device import DeviceUnavailable, resolve_device
from fl.pruning import aggregate_kept_entries, magnitude_masks
from fl.strategies.fedavg import weighted_average
from fl.training import LocalWork, cohort_gradients, plan_batches, train_cohort
from tests.conftest import TINY, make_scenario, run_wedge

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine")


def test_cpu_and_auto_resolve_without_a_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_rejected_at_validation(tmp_path):
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda")
    path = tmp_path / "gpu.yaml"
    import yaml

    path.write_text(yaml.safe_dump({**TINY, "training": {**TINY["training"], "device": "cuda"}}))
    for command in (["validate"], ["run", "--out", str(tmp_path / "runs")]):
        done = run_wedge(command[0], str(path), *command[1:])
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "training.device" in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "runs").exists()


def _meta_problem():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).to("meta")
    x = torch.zeros(10, 4, device="meta")
    y = torch.zeros(10, dtype=torch.long, device="meta")
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    plan = plan_batches([np.arange(5), np.arange(5, 10)], LocalWork(2, 0.1, steps=3), rngs)
    return model, dict(model.state_dict()), x, y, plan


def test_training_keeps_every_tensor_on_the_data_device():
    model, start, x, y, plan = _meta_problem()
    trained = train_cohort(model, start, x, y, plan, 0.1)
    assert {t.device.type for t in trained.stacked_state.values()} == {"meta"}
    assert trained.train_loss.device.type == "meta"
    offsets = {k: torch.zeros(2, *v.shape, device="meta") for k, v in start.items()}
    lrs = dict.fromkeys(start, 0.2)
    again = train_cohort(model, start, x, y, plan, 0.1, grad_offsets=offsets, lr_by_name=lrs)
    assert again.train_loss.device.type == "meta"
    grads = cohort_gradients(model, start, x, y, plan)
    assert grads.train_loss.device.type == "meta"


def test_aggregation_keeps_every_tensor_on_the_model_device():
    state = {"w": torch.zeros(3, 2, device="meta")}
    assert weighted_average([state, state], [1.0, 3.0])["w"].device.type == "meta"
    masks = magnitude_masks(state, np.array([0.5, 0.0]))
    stacked = {"w": torch.zeros(2, 3, 2, device="meta")}
    new = aggregate_kept_entries(state, stacked, masks, np.array([1.0, 2.0]))
    assert new["w"].device.type == "meta"


@needs_cuda
def test_quickstart_on_the_gpu_matches_the_cpu_to_1e_5():
    from simulator.engine.runner import simulate
    from simulator.loader import load_scenario

    scenario = load_scenario("scenarios/quickstart.yaml")
    runs = {}
    for device in ("cpu", "cuda"):
        training = scenario.training.model_copy(update={"device": device})
        recorder, ctx, _ = simulate(scenario.model_copy(update={"training": training}))
        runs[device] = recorder.metrics_table().to_pandas()
        assert ctx.world.training_device.type == device
    cpu, gpu = runs["cpu"], runs["cuda"]
    for column in ("accuracy", "loss", "train_loss", "round_latency_s"):
        np.testing.assert_allclose(gpu[column], cpu[column], rtol=0, atol=1e-5)


@needs_cuda
def test_a_small_run_on_the_gpu_reports_its_device():
    from simulator.engine.runner import run

    result = run(make_scenario({"training.device": "cuda"}), out_root=None)
    assert result.summary["training_device"].startswith("cuda")
