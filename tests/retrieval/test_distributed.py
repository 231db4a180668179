"""Retrieval distillation under DDP on CPU (`torchrun --nproc_per_node 2`, gloo): heads train and stay in sync."""

import os
import sys

import safetensors.torch
import torch

from tests.test_distributed import free_port, launch

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "helpers", "retrieval_distributed_worker.py")


def test_student_logit_scale_and_projection_heads_train_identically_on_both_ranks(tmp_path):
    log = launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                  free_port(), WORKER, str(tmp_path)], tmp_path)
    assert log["world_size"] == 2 and len(log["logs"]) == 3
    assert all(key in log["logs"][0] for key in ("loss_contrastive", "loss_similarity_kd", "loss_embedding", "loss_rkd_distance", "loss_rkd_angle"))
    rank0 = safetensors.torch.load_file(tmp_path / "rank0.safetensors")
    rank1 = safetensors.torch.load_file(tmp_path / "rank1.safetensors")
    initial = safetensors.torch.load_file(tmp_path / "initial.safetensors")
    heads = [name for name in rank0 if name.startswith("distillation_heads.")]
    assert len(heads) == 4  # image and text projections, weight and bias
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    for name in [*heads, "logit_scale", "text_projection.weight", "visual_projection.weight"]:
        assert not torch.allclose(rank0[name], initial[name]), f"{name} did not train"
