"""The README's Python example runs as written (with a tiny teacher in place of the demo's)."""

import os
import re

from transformers import AutoModelForSequenceClassification, BertTokenizerFast

from tests.conftest import tiny_teacher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = "the a and of to is it this that was movie film good bad great awful not".split()


def readme_example() -> str:
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_example_runs_and_saves_a_loadable_student(tmp_path, monkeypatch):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(str(vocab))
    teacher = tiny_teacher(vocab_size=len(tokenizer), num_hidden_layers=6, max_position_embeddings=128)
    teacher.save_pretrained(tmp_path / "runs" / "demo" / "teacher")
    tokenizer.save_pretrained(tmp_path / "runs" / "demo" / "teacher")

    code = readme_example()
    assert len(code.strip().splitlines()) <= 16
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)

    assert namespace["trainer"].state.global_step > 0
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert student.config.num_hidden_layers == 3

    # `hf-distill card` on the folder the example saved: the same card as a CLI run, from the trainer's record.
    from huggingface_hub import ModelCard

    from hf_distill.cli import main

    assert main(["card", "student"]) == 0
    card = ModelCard.load(tmp_path / "student" / "README.md")
    text = card.text
    # the teacher's name_or_path, relative to the run folder (no path of the training machine is published)
    assert "distilled from the 6-layer teacher `../runs/demo/teacher`" in text
    for row in ("loss term `kd`", "loss term `task`", "temperature T | 2", "`reference=distilbert`"):
        assert row in text, row  # the recipe: DistilBERT's task recipe, no cosine term
    assert "loss term `cosine`" not in text
    accuracy = namespace["trainer"].state.log_history[-1]["eval_accuracy"]
    assert f"| eval | accuracy | {accuracy:.4f} |" in text  # the score the trainer measured
    assert "evaluation data" not in text and "None" not in text
    assert card.data.get("model_name") == "student" and "distillation" in card.data.tags
