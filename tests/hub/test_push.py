"""Publishing to the Hub, offline: the dry-run file list, one commit through a recording `HfApi`, no token in any file."""

import json
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub import ModelCard

from hf_distill.cli import main
from hf_distill.hub.push import upload_plan
from tests.helpers.run_folders import FAKE_TOKEN, make_tiny_run, tiny_run  # noqa: F401  (module-scoped fixture)
from tests.hub.test_card import EXPORT_REPORT, copy_run

def _tokenizer_files() -> set:
    """The files a saved tokenizer writes on the installed transformers (5.x writes fewer than 4.57)."""
    import tempfile

    from tests.test_cli import tiny_tokenizer

    with tempfile.TemporaryDirectory() as folder:
        tokenizer_folder = os.path.join(folder, "saved")
        tiny_tokenizer(Path(folder) / "vocab").save_pretrained(tokenizer_folder)
        return set(os.listdir(tokenizer_folder))


PUBLISHED = {"README.md", "config.json", "model.safetensors", "results.json"} | _tokenizer_files()
ONNX = {"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/export_report.json"}


class RecordingApi:
    """Stands in for the Hub: records every call of the `HfApi` methods that `push` uses."""

    def __init__(self):
        self.calls = []

    def install(self, monkeypatch):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # this stands in for the Hub: the run is "online"
        for name in ("create_repo", "create_branch", "create_commit", "upload_folder", "upload_file"):
            monkeypatch.setattr(huggingface_hub.HfApi, name, self._recorder(name))

    def _recorder(self, name):
        def record(api, *args, **kwargs):
            if name == "create_commit":  # read the files now, as the Hub would
                kwargs["files"] = {op.path_in_repo: open(op.path_or_fileobj, "rb").read() for op in kwargs["operations"]}
            self.calls.append((name, args, kwargs, api.token))
            return SimpleNamespace(commit_url=f"https://huggingface.co/{args[0]}/commit/0", repo_id=args[0])
        return record

    def named(self, name):
        return [call for call in self.calls if call[0] == name]


def files_holding(folder, secret):
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as file:
                if secret.encode() in file.read():
                    found.append(os.path.join(root, name))
    return found


def test_upload_plan_is_an_allow_list(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path, with_export=True)
    (tmp_path / "student" / "ema_teacher.safetensors").write_bytes(b"ema")
    (tmp_path / "student" / "optimizer.pt").write_bytes(b"opt")
    files, skipped = upload_plan(folder, include_onnx=True)
    assert {f.path_in_repo for f in files} == PUBLISHED | ONNX
    assert "projection heads" in skipped["distillation_heads.safetensors"]
    for name in ("distillation_heads.json", "ema_teacher.safetensors", "optimizer.pt", "training_args.bin",
                 "checkpoint-3/"):
        assert name in skipped
    assert "hub_token" in skipped["training_args.bin"]
    files, _ = upload_plan(folder)
    assert {f.path_in_repo for f in files} == PUBLISHED


def test_dry_run_lists_exactly_what_would_be_uploaded(tiny_run, tmp_path, capsys):
    folder = copy_run(tiny_run, tmp_path, with_export=True)
    before = {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)}
    assert main(["push", folder, "--repo-id", "me/tiny", "--include-onnx", "--dry-run"]) == 0
    out = capsys.readouterr().out
    upload, left_out = out.split("Not uploaded:")
    listed = {line.split()[0] for line in upload.splitlines()[1:]}
    assert listed == PUBLISHED | ONNX
    assert f"Would upload {len(PUBLISHED | ONNX)} files to me/tiny in one commit" in upload
    assert "distillation_heads.safetensors" in left_out and "checkpoint-3/" in left_out
    assert {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)} == before
    assert main(["push", folder, "--repo-id", "me/tiny", "--dry-run"]) == 0
    assert "onnx/" not in capsys.readouterr().out.split("Not uploaded:")[0]


def test_push_is_one_commit_and_never_shows_the_token(tiny_run, tmp_path, monkeypatch, capsys, caplog):
    folder = copy_run(tiny_run, tmp_path, with_export=True)
    hub = RecordingApi()
    hub.install(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    assert main(["push", folder, "--repo-id", "me/tiny", "--private", "--revision", "v1", "--include-onnx",
                 "--commit-message", "first"]) == 0
    assert [call[0] for call in hub.calls] == ["create_repo", "create_branch", "create_commit"]
    (_, args, repo_kwargs, _), (_, _, branch_kwargs, _), (_, commit_args, commit, _) = hub.calls
    assert args == ("me/tiny",) and repo_kwargs["private"] is True and repo_kwargs["exist_ok"] is True
    assert branch_kwargs["branch"] == "v1" and commit["revision"] == "v1" and commit["commit_message"] == "first"
    assert set(commit["files"]) == PUBLISHED | ONNX
    card = commit["files"]["README.md"].decode()
    assert "model-index" in card and 'pipeline("text-classification", model="me/tiny")' in card
    assert card == open(os.path.join(folder, "README.md")).read()  # the uploaded card is the local one
    assert "`onnx/model_quantized.onnx`" in card and "not part of this repository" not in card
    captured = capsys.readouterr()
    assert "https://huggingface.co/me/tiny/commit/0" in captured.out
    assert FAKE_TOKEN not in captured.out + captured.err + caplog.text
    assert all(FAKE_TOKEN.encode() not in content for content in commit["files"].values())
    assert files_holding(folder, FAKE_TOKEN) == []


def test_push_without_a_token_is_a_clear_error(tiny_run, tmp_path, monkeypatch, capsys):
    folder = copy_run(tiny_run, tmp_path)
    hub = RecordingApi()
    hub.install(monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", folder, "--repo-id", "me/tiny"]) == 2
    assert "No Hugging Face token found" in capsys.readouterr().err and hub.calls == []


def test_push_include_onnx_without_an_export_is_an_error(tiny_run, tmp_path, capsys):
    folder = copy_run(tiny_run, tmp_path)
    assert main(["push", folder, "--repo-id", "me/tiny", "--include-onnx", "--dry-run"]) == 2
    assert "run `hf-distill export" in capsys.readouterr().err


def test_training_writes_no_token_anywhere(tiny_run):
    """The run got the token as --hub_token and as HF_TOKEN: no file of the run folder holds it."""
    assert files_holding(os.path.dirname(tiny_run), FAKE_TOKEN) == []
    import torch

    args = torch.load(os.path.join(tiny_run, "training_args.bin"), weights_only=False)
    assert args.hub_token is None


def test_push_to_hub_in_the_config_publishes_the_student_with_its_card(tmp_path, monkeypatch):
    """`push_to_hub=True`: every save and the end of the run push only the published files, the last with the card."""
    hub = RecordingApi()
    hub.install(monkeypatch)
    # transformers 4.57's Trainer calls the module-level `create_repo` (5.x goes through HfApi, recorded above).
    monkeypatch.setattr("transformers.trainer.create_repo", lambda repo_id, **kwargs: SimpleNamespace(repo_id=repo_id),
                        raising=False)

    def main_with_push(argv):  # the student run (not the teacher's) pushes
        is_student = any(token.endswith("distilbert.yaml") for token in argv)
        return main([*argv, "--push_to_hub", "true", "--hub_model_id", "me/tiny-student"] if is_student else argv)

    monkeypatch.setattr("tests.helpers.run_folders.main", main_with_push)
    folder = make_tiny_run(tmp_path)
    commits = hub.named("create_commit")
    student_commits = [c for c in commits if c[1][0] == "me/tiny-student"]
    assert len(student_commits) == len(commits) == 3  # at the checkpoint saves (steps 2, 3), and once at the end
    for _, _, kwargs, token in student_commits:
        assert set(kwargs["files"]) <= PUBLISHED
        assert token == FAKE_TOKEN  # the run's --hub_token reached HfApi, not a file
        assert all(FAKE_TOKEN.encode() not in content for content in kwargs["files"].values())
    final = student_commits[-1][2]
    assert set(final["files"]) == PUBLISHED
    card = ModelCard(final["files"]["README.md"].decode())
    assert card.data.eval_results and "distillation" in card.data.tags
    assert json.loads(final["files"]["results.json"])["student"]["num_layers"] == 2
    assert files_holding(str(tmp_path), FAKE_TOKEN) == []


def test_checkpoint_hub_strategies_are_refused(tmp_path, monkeypatch):
    from hf_distill import DistillationTrainer
    from tests.conftest import offline_config, random_classification_dataset, tiny_teacher

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = offline_config(tmp_path, push_to_hub=True, hub_strategy="checkpoint", hub_model_id="me/x")
    with pytest.raises(ValueError, match="hub_strategy='checkpoint' uploads whole checkpoints"):
        DistillationTrainer(model=tiny_teacher(1, num_hidden_layers=2), teacher_model=tiny_teacher(),
                            args=config, train_dataset=random_classification_dataset())


def test_push_to_hub_of_a_mutual_learning_run_uploads_only_the_allow_listed_parts(tmp_path, monkeypatch):
    """`push_to_hub=True` on a deep-mutual-learning run (a model made of parts): each peer's model files, the layout
    file, the card and results.json; never training_args.bin, checkpoints or the token."""
    from hf_distill.online import MutualLearningModel, MutualLearningTrainer
    from tests.conftest import pad_collator, random_classification_dataset
    from tests.online.test_mutual import dml_args, tiny_peers

    hub = RecordingApi()
    hub.install(monkeypatch)
    monkeypatch.setattr("transformers.trainer.create_repo", lambda repo_id, **kwargs: SimpleNamespace(repo_id=repo_id),
                        raising=False)
    args = dml_args(tmp_path / "dml", max_steps=2, save_strategy="steps", save_steps=1, push_to_hub=True,
                    hub_model_id="me/tiny-peers", hub_token=FAKE_TOKEN)
    trainer = MutualLearningTrainer(model=MutualLearningModel(tiny_peers()), args=args,
                                    train_dataset=random_classification_dataset(8), data_collator=pad_collator)
    trainer.train()
    trainer.push_to_hub()
    commits = hub.named("create_commit")
    assert commits and all(call[1][0] == "me/tiny-peers" for call in commits)
    peer_files = {f"peer_{i}/{name}" for i in (0, 1) for name in ("config.json", "model.safetensors")}
    expected = peer_files | {"mutual_learning.json", "README.md", "results.json"}
    for _, _, kwargs, token in commits:
        assert set(kwargs["files"]) <= expected
        assert token == FAKE_TOKEN and all(FAKE_TOKEN.encode() not in c for c in kwargs["files"].values())
    assert set(commits[-1][2]["files"]) == expected
    card = commits[-1][2]["files"]["README.md"].decode()
    assert "subfolder=" in card and "peer_0/" in card  # each peer loads on its own
    assert files_holding(str(tmp_path), FAKE_TOKEN) == []


OPENVINO = {"openvino/openvino_model.xml", "openvino/openvino_model.bin", "openvino/openvino_model_int8.xml",
            "openvino/openvino_model_int8.bin", "openvino/export_report.json"}


def test_include_export_uploads_every_export_and_include_onnx_still_only_onnx(tiny_run, tmp_path, capsys):
    from tests.hub.test_card import add_openvino_export

    folder = copy_run(tiny_run, tmp_path, with_export=True)
    add_openvino_export(folder)
    (tmp_path / "student" / "benchmark_report.json").write_text("{}")
    files, skipped = upload_plan(folder, include_export=True)
    assert {f.path_in_repo for f in files} == PUBLISHED | ONNX | OPENVINO | {"benchmark_report.json"}
    files, skipped = upload_plan(folder, include_onnx=True)
    assert {f.path_in_repo for f in files} == PUBLISHED | ONNX
    assert "openvino/" in skipped and "benchmark_report.json" in skipped
    assert main(["push", folder, "--repo-id", "me/tiny", "--include-export", "--dry-run"]) == 0
    upload = capsys.readouterr().out.split("Not uploaded:")[0]
    assert "openvino/openvino_model_int8.xml" in upload and "onnx/model_quantized.onnx" in upload

    only_openvino = copy_run(tiny_run, tmp_path / "ov", with_export=False)
    add_openvino_export(only_openvino, benchmarked=False)
    files, _ = upload_plan(only_openvino, include_export=True)
    assert {f.path_in_repo for f in files} == PUBLISHED | OPENVINO
    assert main(["push", only_openvino, "--repo-id", "me/tiny", "--include-onnx", "--dry-run"]) == 2
    assert "--include-onnx: no ONNX export" in capsys.readouterr().err
