"""DDP on CPU for the online trainers: `torchrun --nproc_per_node 2` (gloo) against one process with the same global batch."""

import os
import sys

import pytest
import safetensors.torch
import torch
from transformers import AutoModelForSequenceClassification

from tests.test_distributed import free_port, launch

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "helpers", "online_distributed_worker.py")
# Same data, same global batch (2 x 4 vs 1 x 8): float32 round-off in the all-reduce is all that may differ.
WEIGHT_ATOL = 1e-5


@pytest.mark.parametrize("kind", ["mutual", "self"])
def test_ddp_trains_every_part_like_one_process(kind, tmp_path):
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp_dir.mkdir()
    single_dir.mkdir()
    ddp = launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                  free_port(), WORKER, kind, str(ddp_dir), "4"], ddp_dir)
    single = launch([sys.executable, WORKER, kind, str(single_dir), "8"], single_dir)
    assert ddp["world_size"] == 2 and len(ddp["logs"]) == len(single["logs"]) == 4
    terms = [key for key in single["logs"][0] if key.startswith("loss_")]
    assert len(terms) >= 4  # per-peer task and kd terms, or per-exit task, kd and hidden terms
    for a, b in zip(ddp["logs"], single["logs"]):
        for key in terms:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=2e-6), key  # logged with 6 decimals
    rank0 = safetensors.torch.load_file(ddp_dir / "rank0.safetensors")
    rank1 = safetensors.torch.load_file(ddp_dir / "rank1.safetensors")
    reference = safetensors.torch.load_file(single_dir / "rank0.safetensors")
    prefixes = ("peers.0.", "peers.1.") if kind == "mutual" else ("backbone.", "exit_heads.", "projections.")
    assert all(any(name.startswith(prefix) for name in rank0) for prefix in prefixes)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
        torch.testing.assert_close(rank0[name], reference[name], atol=WEIGHT_ATOL, rtol=0, msg=name)
    saved = ddp_dir / "saved" / ("peer_1" if kind == "mutual" else "")
    loaded, info = AutoModelForSequenceClassification.from_pretrained(str(saved), output_loading_info=True)
    assert all(not v for v in info.values()), info
