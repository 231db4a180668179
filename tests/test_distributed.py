"""DDP on CPU: `torchrun --nproc_per_node 2` (gloo) against one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import safetensors.torch
import torch

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers", "distributed_worker.py")
ROOT = os.path.dirname(os.path.dirname(WORKER))
# Same data, same global batch (2 x 4 vs 1 x 8), different padding per process and a different
# summation order in the all-reduce: float32 round-off is all that may differ (measured: 4e-7).
TERM_RTOL = 1e-5   # loss_<term>, logged with 6 decimals
LOSS_ATOL = 1e-4   # Trainer logs `loss` rounded to 4 decimals
WEIGHT_ATOL = 1e-5


def free_port() -> str:
    """A TCP port nobody listens on now, for torchrun's rendezvous (fixed ports collide between runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def launch(command: list[str], output_dir) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(output_dir / "log.json") as file:
        return json.load(file)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    ddp_dir = tmp_path_factory.mktemp("ddp")
    single_dir = tmp_path_factory.mktemp("single")
    ddp = launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                  free_port(), WORKER, str(ddp_dir), "4"], ddp_dir)
    single = launch([sys.executable, WORKER, str(single_dir), "8"], single_dir)
    return {"ddp": (ddp, ddp_dir), "single": (single, single_dir)}


def test_student_and_projections_are_identical_on_both_ranks(runs):
    log, folder = runs["ddp"]
    assert log["world_size"] == 2
    rank0 = safetensors.torch.load_file(folder / "rank0.safetensors")
    rank1 = safetensors.torch.load_file(folder / "rank1.safetensors")
    assert any(name.startswith("distillation_heads.") for name in rank0), "the student should have projections"
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name


def test_loss_trajectory_and_weights_match_one_process_with_the_same_global_batch(runs):
    ddp, ddp_dir = runs["ddp"]
    single, single_dir = runs["single"]
    assert len(ddp["logs"]) == len(single["logs"]) == 6
    for step, (a, b) in enumerate(zip(ddp["logs"], single["logs"]), start=1):
        assert a["loss"] == pytest.approx(b["loss"], abs=LOSS_ATOL), f"loss at step {step}"
        for key in ("loss_task", "loss_kd", "loss_cosine", "loss_hidden", "loss_embedding", "loss_attention"):
            assert a[key] == pytest.approx(b[key], rel=TERM_RTOL), f"{key} at step {step}"
    ddp_weights = safetensors.torch.load_file(ddp_dir / "rank0.safetensors")
    single_weights = safetensors.torch.load_file(single_dir / "rank0.safetensors")
    for name, value in single_weights.items():
        torch.testing.assert_close(ddp_weights[name], value, atol=WEIGHT_ATOL, rtol=0, msg=name)
    # The projections did train: every one moved away from its initial value.
    initial = safetensors.torch.load_file(ddp_dir / "initial.safetensors")
    heads = [name for name in initial if name.startswith("distillation_heads.")]
    assert len(heads) >= 3
    for name in heads:
        assert not torch.allclose(ddp_weights[name], initial[name]), name
