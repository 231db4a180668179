"""Flickr30k Karpathy loaders (a tiny fake folder, an in-memory table), the synthetic set, the collator."""

import json

import pytest
import torch
from datasets import Dataset
from PIL import Image

from hf_distill.retrieval.data import (
    PairDataset,
    RetrievalCollator,
    karpathy_splits_from_rows,
    load_karpathy_folder,
    synthetic_shapes,
    synthetic_vocabulary,
    word_level_tokenizer,
)

SPLIT_OF_IMAGE = {"a.jpg": "train", "b.jpg": "restval", "c.jpg": "val", "d.jpg": "test", "e.jpg": "test"}


def fake_flickr_folder(root):
    (root / "images").mkdir()
    entries = []
    for index, (name, split) in enumerate(SPLIT_OF_IMAGE.items()):
        Image.new("RGB", (8, 6), (index * 40, 0, 0)).save(root / "images" / name)
        sentences = [{"raw": f" caption {k} of {name} ", "tokens": ["caption"]} for k in range(5)]
        entries.append({"filename": name, "split": split, "sentences": sentences, "imgid": index})
    (root / "dataset_flickr30k.json").write_text(json.dumps({"images": entries, "dataset": "flickr30k"}))
    return root


def test_karpathy_folder_loader_splits_and_captions(tmp_path):
    splits = load_karpathy_folder(str(fake_flickr_folder(tmp_path)))
    assert sorted(splits) == ["test", "train", "validation"]
    assert splits["train"].image_ids == ["a.jpg", "b.jpg"]  # restval counts as train (Karpathy)
    assert splits["validation"].image_ids == ["c.jpg"]
    assert splits["test"].image_ids == ["d.jpg", "e.jpg"]
    assert splits["test"].captions[1] == [f"caption {k} of e.jpg" for k in range(5)]
    pairs = PairDataset(splits["test"])
    assert len(pairs) == 10
    assert pairs[7]["pair_id"] == 1 and pairs[7]["caption"] == "caption 2 of e.jpg"
    assert pairs[7]["image"].endswith("e.jpg")


def test_karpathy_folder_errors_name_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_flickr30k.json"):
        load_karpathy_folder(str(tmp_path))
    fake_flickr_folder(tmp_path)
    (tmp_path / "images" / "c.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="c.jpg"):
        load_karpathy_folder(str(tmp_path))


def test_hub_table_is_grouped_by_its_karpathy_split_column():
    rows = Dataset.from_dict({
        "image": ["img0", "img1", "img2", "img3"],
        "caption": [[f"c{i}{k}" for k in range(5)] for i in range(4)],
        "split": ["train", "test", "val", "train"],
        "filename": ["0.jpg", "1.jpg", "2.jpg", "3.jpg"],
    })
    splits = karpathy_splits_from_rows(rows)
    assert splits["train"].image_ids == ["0.jpg", "3.jpg"]
    assert list(splits["train"].images[:2]) == ["img0", "img3"]
    assert list(splits["train"].select(1).images) == ["img0"]  # stays a lazy column
    assert splits["test"].captions == [[f"c1{k}" for k in range(5)]]
    assert splits["validation"].images[0] == "img2"
    with pytest.raises(ValueError, match="split_column"):
        karpathy_splits_from_rows(rows.remove_columns("split"))


def test_synthetic_shapes_are_deterministic_and_captions_name_the_objects():
    split = synthetic_shapes(6, image_size=32, seed=3)
    again = synthetic_shapes(6, image_size=32, seed=3)
    assert len(split) == 6 and all(len(group) == 5 for group in split.captions)
    assert split.images[0].shape == (3, 32, 32) and -1.0 <= float(split.images[0].min()) < float(split.images[0].max()) <= 1.0
    torch.testing.assert_close(torch.stack(split.images), torch.stack(again.images))
    assert split.captions == again.captions
    assert synthetic_shapes(6, seed=4).captions != split.captions
    first = split.captions[0][0].split()
    assert sum(word in first for word in ("red", "green", "blue", "yellow", "purple", "white")) >= 1


def test_collator_tokenizes_pads_and_stacks():
    tokenizer = word_level_tokenizer(synthetic_vocabulary())
    split = synthetic_shapes(2, seed=0)
    batch = RetrievalCollator(tokenizer, max_length=12)([PairDataset(split)[i] for i in (0, 5, 1)])
    assert batch["pixel_values"].shape == (3, 3, 32, 32)
    assert batch["pair_ids"].tolist() == [0, 1, 0]
    assert batch["input_ids"].shape[0] == 3 and batch["input_ids"].shape[1] <= 12
    assert (batch["input_ids"][:, 0] == 2).all()  # [BOS]
    lengths = batch["attention_mask"].sum(1)
    for row, length in zip(batch["input_ids"], lengths):
        assert row[length - 1] == 3  # [EOS] ends every caption, cut or not
    assert "[UNK]" not in tokenizer.decode(batch["input_ids"][0])


def test_collator_needs_an_image_processor_for_files(tmp_path):
    fake_flickr_folder(tmp_path)
    split = load_karpathy_folder(str(tmp_path))["test"]
    tokenizer = word_level_tokenizer(["caption", "of"])
    with pytest.raises(ValueError, match="image processor"):
        RetrievalCollator(tokenizer)([PairDataset(split)[0]])
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    batch = RetrievalCollator(tokenizer, processor)([PairDataset(split)[0], PairDataset(split)[6]])
    assert batch["pixel_values"].shape == (2, 3, 16, 16)
