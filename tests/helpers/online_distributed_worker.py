"""One mutual-learning or self-distillation run, launched by `tests/test_online_distributed.py` alone or under `torchrun`.

    torchrun --nproc_per_node 2 tests/helpers/online_distributed_worker.py {mutual,self} OUTPUT_DIR PER_DEVICE_BATCH

Each process writes the final weights of the whole module (every peer; or backbone, exits and
projections) to `OUTPUT_DIR/rank<i>.safetensors`; the main process writes the logged losses to
`OUTPUT_DIR/log.json` and saves the model into `OUTPUT_DIR/saved`.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import safetensors.torch  # noqa: E402
import torch  # noqa: E402
from transformers import BertForSequenceClassification  # noqa: E402

from hf_distill.online import (  # noqa: E402
    MutualLearningConfig,
    MutualLearningTrainer,
    SelfDistillationConfig,
    SelfDistillationTrainer,
)
from tests.conftest import pad_collator, random_classification_dataset, tiny_bert_config  # noqa: E402

STEPS = 4


def main(kind: str, output_dir: str, per_device_batch: int) -> None:
    common = dict(output_dir=output_dir, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1, seed=0,
                  disable_tqdm=True, per_device_train_batch_size=per_device_batch, max_steps=STEPS,
                  learning_rate=1e-2, ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None)
    data = random_classification_dataset(64)  # fixed length: each rank's token means are the global one's
    torch.manual_seed(1)
    if kind == "mutual":
        peers = [BertForSequenceClassification(tiny_bert_config()),
                 BertForSequenceClassification(tiny_bert_config(num_hidden_layers=2, hidden_size=16))]
        trainer = MutualLearningTrainer(model=peers, args=MutualLearningConfig(**common, temperature=2.0),
                                        train_dataset=data, data_collator=pad_collator)
    else:
        backbone = BertForSequenceClassification(tiny_bert_config())
        args = SelfDistillationConfig(**common, exit_layers="1,2", hidden_weight=0.5)
        trainer = SelfDistillationTrainer(model=backbone, args=args, train_dataset=data, data_collator=pad_collator)
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(weights, os.path.join(output_dir, f"rank{trainer.args.process_index}.safetensors"))
    trainer.save_model(os.path.join(output_dir, "saved"))
    if trainer.is_world_process_zero():
        logs = [entry for entry in trainer.state.log_history if "loss" in entry]
        with open(os.path.join(output_dir, "log.json"), "w") as file:
            json.dump({"world_size": trainer.args.world_size, "logs": logs}, file)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
