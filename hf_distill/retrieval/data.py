"""Image-caption data for retrieval: Flickr30k (Karpathy split), a synthetic shapes set, the collator.

A split is a `RetrievalSplit`: ``N`` images and, for each, its captions (5 on Flickr30k).
Training uses `PairDataset(split)`: one example per (image, caption) pair; evaluation uses the
images and caption groups directly (`hf_distill.retrieval.evaluation`).

Sources:

- `load_karpathy_folder(folder)`: a local folder with ``images/`` (or ``flickr30k-images/``) and
  Karpathy's ``dataset_flickr30k.json`` (29,000 train / 1,014 val / 1,000 test images; "restval"
  counts as train).
- `load_karpathy_hub(name)`: a parquet copy on the Hub (`datasets.load_dataset`), one row per image
  with an image column, a list of captions and a Karpathy `split` column (as in
  `nlphuji/flickr30k`'s parquet export, the default); script-based datasets do not load in datasets 4+.
- `synthetic_shapes(...)`: coloured shapes in the cells of a grid, drawn in code, with captions
  that name them. A functional check that runs offline, not a Flickr30k substitute.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

KARPATHY_JSON = "dataset_flickr30k.json"
IMAGE_FOLDERS = ("images", "flickr30k-images", "flickr30k_images")
SPLITS = ("train", "validation", "test")
_KARPATHY_SPLIT = {"train": "train", "restval": "train", "val": "validation", "test": "test"}


@dataclass
class RetrievalSplit:
    """Images and their caption groups.

    Attributes:
        images (`list`): PIL images, image file paths, or `(3, H, W)` float tensors already normalised.
        captions (`list[list[str]]`): The captions of each image.
        image_ids (`list`): An identifier per image (file name or index).
    """

    images: list
    captions: list[list[str]]
    image_ids: list = field(default_factory=list)

    def __post_init__(self):
        if len(self.images) != len(self.captions):
            raise ValueError(f"{len(self.images)} images but {len(self.captions)} caption groups.")
        if not self.image_ids:
            self.image_ids = list(range(len(self.images)))
        empty = [self.image_ids[i] for i, group in enumerate(self.captions) if not group]
        if empty:
            raise ValueError(f"Images without captions: {empty[:5]}; every image needs at least one caption.")

    def __len__(self) -> int:
        return len(self.images)

    def select(self, count: Optional[int]) -> "RetrievalSplit":
        """The first `count` images (all when `None`)."""
        if count is None or count >= len(self):
            return self
        return RetrievalSplit(self.images[:count], self.captions[:count], self.image_ids[:count])


class PairDataset(Dataset):
    """One training example per (image, caption) pair: ``{"image", "caption", "pair_id"}``.

    `pair_id` is the image's index, so the contrastive loss does not push apart two captions of
    one image that land in the same batch.
    """

    def __init__(self, split: RetrievalSplit):
        self.split = split
        self.index = [(i, j) for i, group in enumerate(split.captions) for j in range(len(group))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Any]:
        image, caption = self.index[item]
        return {"image": self.split.images[image], "caption": self.split.captions[image][caption], "pair_id": image}


class RetrievalCollator:
    """Turns ``{"image", "caption", "pair_id"}`` examples into dual-encoder inputs.

    Output: `pixel_values`, `input_ids`, `attention_mask` (captions padded to the longest, cut at
    `max_length`), and `pair_ids`. Images may be PIL images, file paths (opened as RGB) or float
    tensors that are already the model's pixel values (the synthetic set).

    Args:
        tokenizer: The text tower's tokenizer.
        image_processor (*optional*): The image tower's processor (e.g. `CLIPImageProcessor`); needed
            unless the images are tensors.
        max_length (`int`, defaults to 77): Caption length cap (CLIP's context length).
    """

    def __init__(self, tokenizer, image_processor=None, max_length: int = 77):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.max_length = max_length

    def images(self, images: Sequence[Any]) -> torch.Tensor:
        """`pixel_values` for a list of images."""
        if all(isinstance(image, torch.Tensor) for image in images):
            return torch.stack(list(images)).float()
        if self.image_processor is None:
            raise ValueError(
                "These images are PIL images or paths, which need an image processor: set image_processor_name "
                "(or save the teacher with its processor)."
            )
        return self.image_processor(images=[_open_image(image) for image in images], return_tensors="pt")["pixel_values"]

    def texts(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """`input_ids` and `attention_mask` for a list of captions."""
        encoded = self.tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.texts([example["caption"] for example in examples])
        batch["pixel_values"] = self.images([example["image"] for example in examples])
        batch["pair_ids"] = torch.tensor([int(example["pair_id"]) for example in examples])
        return batch


def _open_image(image: Any):
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        with Image.open(image) as opened:
            return opened.convert("RGB")
    if hasattr(image, "convert"):
        return image.convert("RGB")
    return image


# --------------------------------------------------------------------------- Flickr30k


def load_karpathy_folder(folder: str) -> dict[str, RetrievalSplit]:
    """Flickr30k from a local folder: `images/` plus Karpathy's `dataset_flickr30k.json`.

    The json is the one of Karpathy & Fei-Fei (2015): ``{"images": [{"filename", "split",
    "sentences": [{"raw": ...}, ...]}, ...]}``, split `train`/`restval` (train), `val`, `test`.
    Images are read lazily (their paths are kept).

    Args:
        folder (`str`): The folder.

    Returns:
        `dict[str, RetrievalSplit]`: `train`, `validation` and `test` (those present).

    Raises:
        FileNotFoundError: When the json or the image folder is missing, or an image file is.
    """
    folder = os.path.expanduser(folder)
    json_path = os.path.join(folder, KARPATHY_JSON)
    if not os.path.isfile(json_path):
        raise FileNotFoundError(
            f"No {KARPATHY_JSON} in {folder!r}: put Karpathy's split file there (from the 'caption_datasets' "
            "archive of Karpathy & Fei-Fei, 2015) next to the images/ folder."
        )
    image_dir = next((os.path.join(folder, name) for name in IMAGE_FOLDERS if os.path.isdir(os.path.join(folder, name))), None)
    if image_dir is None:
        raise FileNotFoundError(f"No image folder in {folder!r}: expected one of {', '.join(IMAGE_FOLDERS)}.")
    with open(json_path) as file:
        entries = json.load(file).get("images")
    if not isinstance(entries, list):
        raise ValueError(f"{json_path} has no 'images' list: is it Karpathy's dataset_flickr30k.json?")
    groups: dict[str, tuple[list, list, list]] = {split: ([], [], []) for split in SPLITS}
    for entry in entries:
        split = _KARPATHY_SPLIT.get(entry.get("split"))
        if split is None:
            raise ValueError(f"Unknown split {entry.get('split')!r} for {entry.get('filename')} in {json_path}.")
        path = os.path.join(image_dir, entry["filename"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{json_path} lists {entry['filename']} but {path} does not exist.")
        images, captions, ids = groups[split]
        images.append(path)
        captions.append([sentence["raw"].strip() for sentence in entry["sentences"]])
        ids.append(entry["filename"])
    return {split: RetrievalSplit(*group) for split, group in groups.items() if group[0]}


def karpathy_splits_from_rows(
    rows, image_column: str = "image", caption_column: str = "caption", split_column: str = "split",
    id_column: Optional[str] = "filename",
) -> dict[str, RetrievalSplit]:
    """Groups a table of one row per image (a `datasets.Dataset`) into Karpathy splits by its split column.

    Args:
        rows (`datasets.Dataset`): Columns `image_column` (PIL images), `caption_column` (a list of
            captions), `split_column` (`train`, `restval`, `val`, `test`) and, optionally, `id_column`.

    Returns:
        `dict[str, RetrievalSplit]`: `train`, `validation`, `test` (those present).
    """
    columns = rows.column_names
    missing = [c for c in (image_column, caption_column, split_column) if c not in columns]
    if missing:
        raise ValueError(
            f"The Flickr30k table has no column(s) {missing} (columns: {columns}): set image_column, "
            "caption_column and split_column to its names."
        )
    splits = rows[split_column]
    groups: dict[str, list[int]] = {split: [] for split in SPLITS}
    for index, name in enumerate(splits):
        split = _KARPATHY_SPLIT.get(name, name if name in SPLITS else None)
        if split is None:
            raise ValueError(f"Unknown split {name!r} in column {split_column!r}: expected train, restval, val or test.")
        groups[split].append(index)
    result = {}
    for split, indices in groups.items():
        if not indices:
            continue
        subset = rows.select(indices)
        captions = [[c.strip() for c in group] if isinstance(group, list) else [group] for group in subset[caption_column]]
        ids = subset[id_column] if id_column and id_column in columns else list(indices)
        result[split] = RetrievalSplit(_LazyColumn(subset, image_column), captions, list(ids))
    return result


class _LazyColumn(Sequence):
    """A column of a `datasets.Dataset` read row by row (images are decoded only when used)."""

    def __init__(self, rows, column: str):
        self.rows, self.column = rows, column

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item):
        if isinstance(item, slice):  # still lazy: `RetrievalSplit.select` must not decode 29,000 images
            return _LazyColumn(self.rows.select(range(*item.indices(len(self)))), self.column)
        if not -len(self) <= item < len(self):
            raise IndexError(item)
        return self.rows[item][self.column]


def load_karpathy_hub(
    name: str, config_name: Optional[str] = None, revision: Optional[str] = None, **columns: Any
) -> dict[str, RetrievalSplit]:
    """Flickr30k from a parquet copy on the Hub (one row per image with its 5 captions and Karpathy split).

    Args:
        name (`str`): The dataset repository, e.g. `"nlphuji/flickr30k"` (its parquet export, revision
            `refs/convert/parquet`, configuration `TEST`, has the columns `image`, `caption` (5),
            `sentids`, `split`, `img_id`, `filename`, all 31,014 images in one split).
        config_name (`str`, *optional*): The configuration (`"TEST"` for `nlphuji/flickr30k`).
        revision (`str`, *optional*): Branch, tag or commit (`"refs/convert/parquet"`).
        **columns: `image_column`, `caption_column`, `split_column`, `id_column` for other layouts.
    """
    from datasets import concatenate_datasets, load_dataset

    loaded = load_dataset(name, config_name, revision=revision)
    rows = concatenate_datasets(list(loaded.values())) if len(loaded) > 1 else next(iter(loaded.values()))
    return karpathy_splits_from_rows(rows, **columns)


# --------------------------------------------------------------------------- synthetic shapes

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 190),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "cross")
CELLS = ("top left", "top right", "bottom left", "bottom right")
_TEMPLATES = (
    "a {c1} {s1} at the {p1} and a {c2} {s2} at the {p2}",
    "a {c2} {s2} in the {p2} corner and a {c1} {s1} in the {p1} corner",
    "{c1} {s1} {p1} , {c2} {s2} {p2}",
    "there is a {c2} {s2} at the {p2} and a {c1} {s1} at the {p1}",
    "the {p1} shows a {c1} {s1} and the {p2} shows a {c2} {s2}",
)


def _draw(draw, shape: str, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=color)
    else:
        third_x, third_y = (x1 - x0) // 3, (y1 - y0) // 3
        draw.rectangle((x0 + third_x, y0, x1 - third_x, y1), fill=color)
        draw.rectangle((x0, y0 + third_y, x1, y1 - third_y), fill=color)


def synthetic_shapes(num_images: int, image_size: int = 32, seed: int = 0) -> RetrievalSplit:
    """Images of two coloured shapes in two cells of a 2×2 grid, with 5 captions naming them.

    Colour (6) × shape (4) × cell of each object, two objects in different cells: 24·24·12 =
    6,912 distinct scenes, drawn with PIL on a dark background with a jittered size and position,
    and 5 caption templates (the objects named in either order). Pixel values are returned as
    `(3, image_size, image_size)` float tensors in [-1, 1].

    Args:
        num_images (`int`): Number of images.
        image_size (`int`, defaults to 32): Side in pixels.
        seed (`int`, defaults to 0): Different seeds give different images.

    Returns:
        `RetrievalSplit`: The images (tensors) and their 5 captions each.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    half = image_size // 2
    images, captions = [], []
    for _ in range(num_images):
        cells = rng.sample(range(4), 2)
        objects = [(rng.choice(list(COLORS)), rng.choice(SHAPES), cell) for cell in cells]
        canvas = Image.new("RGB", (image_size, image_size), (20, 20, 20))
        draw = ImageDraw.Draw(canvas)
        for color, shape, cell in objects:
            size = rng.randint(half * 5 // 8, half - 2)
            x = (cell % 2) * half + rng.randint(1, half - size - 1)
            y = (cell // 2) * half + rng.randint(1, half - size - 1)
            _draw(draw, shape, (x, y, x + size, y + size), COLORS[color])
        pixels = torch.from_numpy(np.asarray(canvas, dtype=np.float32).copy())
        images.append(pixels.permute(2, 0, 1) / 127.5 - 1.0)
        (c1, s1, p1), (c2, s2, p2) = [(c, s, CELLS[cell]) for c, s, cell in objects]
        captions.append([t.format(c1=c1, s1=s1, p1=p1, c2=c2, s2=s2, p2=p2) for t in _TEMPLATES])
    return RetrievalSplit(images, captions)


def synthetic_vocabulary() -> list[str]:
    """Every word of the synthetic captions (for a word-level tokenizer)."""
    words = set(COLORS) | set(SHAPES) | {w for cell in CELLS for w in cell.split()}
    for template in _TEMPLATES:
        words |= {w for w in template.split() if not w.startswith("{")}
    return sorted(words)


def word_level_tokenizer(words: Sequence[str], model_max_length: int = 77):
    """A word-level `PreTrainedTokenizerFast` (``[BOS] words [EOS]``) for captions with a closed vocabulary.

    Ids: 0 ``[PAD]``, 1 ``[UNK]``, 2 ``[BOS]``, 3 ``[EOS]``, then the words. CLIP's text tower pools
    the first ``[EOS]`` when `text_config.eos_token_id` = 3 (ids other than 2 select the EOS token
    by id). Saved with `save_pretrained`, it loads with `AutoTokenizer.from_pretrained`.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=model_max_length,
    )
