"""One retrieval distillation run under `torchrun` (gloo, CPU), launched by `tests/test_retrieval_distributed.py`.

    torchrun --nproc_per_node 2 tests/helpers/retrieval_distributed_worker.py OUTPUT_DIR

A tiny CLIP teacher is distilled into a narrower student with a smaller embedding space (so it has
projection heads) with every retrieval loss on. Each process writes its final student + heads to
`OUTPUT_DIR/rank<i>.safetensors` and the initial ones to `initial.safetensors` (main process).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import safetensors.torch  # noqa: E402

from tests.retrieval.test_trainer import ALL_RETRIEVAL_TERMS, make_trainer, narrow_student, tiny_clip  # noqa: E402


def main(output_dir: str) -> None:
    teacher = tiny_clip()
    student = narrow_student(teacher)
    trainer = make_trainer(output_dir, student, teacher, max_steps=3, ddp_backend="gloo", **ALL_RETRIEVAL_TERMS)
    if trainer.is_world_process_zero():
        initial = {k: v.detach().clone().contiguous() for k, v in student.state_dict().items()}
        safetensors.torch.save_file(initial, os.path.join(output_dir, "initial.safetensors"))
    trainer.train()
    weights = {k: v.detach().contiguous() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
    safetensors.torch.save_file(weights, os.path.join(output_dir, f"rank{trainer.args.process_index}.safetensors"))
    if trainer.is_world_process_zero():
        logs = [entry for entry in trainer.state.log_history if "loss" in entry]
        with open(os.path.join(output_dir, "log.json"), "w") as file:
            json.dump({"world_size": trainer.args.world_size, "logs": logs}, file)


if __name__ == "__main__":
    main(sys.argv[1])
