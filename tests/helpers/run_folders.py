"""A real run folder of a tiny model, made with `hf-distill train` on GLUE-layout data (for card and Hub tests)."""

import json
import os

import pytest
from transformers import AutoModelForSequenceClassification

from hf_distill.cli import main
from tests.conftest import tiny_bert_config
from tests.test_cli import RECIPES, tiny_tokenizer, write

FAKE_TOKEN = "hf_FakeTokenForTestsOnly0123456789abcdef"


def make_tiny_run(root) -> str:
    """Distils a 4-layer teacher into a narrower 2-layer student (projection heads, a schedule, a checkpoint).

    The teacher is a random tiny classifier saved in the GLUE label order (a teacher run would only cost time).

    The student run gets `--hub_token FAKE_TOKEN` on its command line and `HF_TOKEN=FAKE_TOKEN` in the
    environment, so tests can check that no written file holds it. Returns the student folder.
    """
    tokenizer = tiny_tokenizer(root / "tok")
    base = root / "base"
    labels = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    teacher = AutoModelForSequenceClassification.from_config(tiny_bert_config(vocab_size=len(tokenizer), **labels))
    teacher.save_pretrained(base)
    tokenizer.save_pretrained(base)
    rows = [("good w1 w2", 1), ("bad w3", 0), ("w4 good", 1), ("bad bad w5", 0)] * 4
    body = "sentence\tlabel\n" + "".join(f"{s} \t{label}\n" for s, label in rows)
    write(root / "glue" / "SST-2" / "train.tsv", body)
    write(root / "glue" / "SST-2" / "dev.tsv", body)
    common = ["--task_name", "sst2", "--data_dir", str(root / "glue"), "--per_device_train_batch_size", "4",
              "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true", "--eval_strategy", "no"]
    teacher_dir, student_dir = str(base), str(root / "student")
    schedule = json.dumps({"temperature": {"type": "linear", "start": 4, "end": 1}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", FAKE_TOKEN)
        argv = ["train", os.path.join(RECIPES, "glue", "distilbert.yaml"), *common,
                "--teacher_model_name_or_path", teacher_dir, "--student_num_layers", "2", "--student_hidden_size", "16",
                "--student_intermediate_size", "32", "--hidden_weight", "1.0", "--layer_map", "2,4",
                "--schedule", schedule, "--max_steps", "3", "--save_strategy", "steps", "--save_steps", "2",
                "--output_dir", student_dir, "--hub_token", FAKE_TOKEN]
        patch.setattr("sys.argv", ["/usr/bin/hf-distill", *argv])
        assert main(argv) == 0
    return student_dir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> str:
    """The student folder of one tiny run, made once per test module (treat it as read-only)."""
    return make_tiny_run(tmp_path_factory.mktemp("run"))
