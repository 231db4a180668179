"""One distillation run, launched by `tests/test_distributed.py` alone or under `torchrun` (gloo, CPU).

    torchrun --nproc_per_node 2 tests/helpers/distributed_worker.py OUTPUT_DIR PER_DEVICE_BATCH

A tiny teacher is distilled into a narrower student (so it has projection heads) with every loss on,
on variable-length examples. Each process writes its final student + heads weights to
`OUTPUT_DIR/rank<i>.safetensors`; the main process writes the logged losses to `OUTPUT_DIR/log.json`.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import safetensors.torch  # noqa: E402
import torch  # noqa: E402

from hf_distill import DistillationTrainer, create_student  # noqa: E402
from tests.conftest import (  # noqa: E402
    ALL_TERMS,
    offline_config,
    pad_collator,
    random_classification_dataset,
    tiny_teacher,
)

STEPS = 6


def main(output_dir: str, per_device_batch: int) -> None:
    teacher = tiny_teacher()
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=16)
    args = offline_config(
        output_dir,
        per_device_train_batch_size=per_device_batch,
        max_steps=STEPS,
        learning_rate=1e-2,
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        **ALL_TERMS,
    )
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=random_classification_dataset(64, variable_length=True),
        data_collator=pad_collator,
    )
    if trainer.is_world_process_zero():
        initial = {k: v.detach().clone().contiguous() for k, v in student.state_dict().items()}
        safetensors.torch.save_file(initial, os.path.join(output_dir, "initial.safetensors"))
    trainer.train()
    weights = {k: v.detach().contiguous() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
    safetensors.torch.save_file(weights, os.path.join(output_dir, f"rank{args.process_index}.safetensors"))
    if trainer.is_world_process_zero():
        logs = [entry for entry in trainer.state.log_history if "loss" in entry]
        with open(os.path.join(output_dir, "log.json"), "w") as file:
            json.dump({"world_size": args.world_size, "logs": logs}, file)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
