"""The model and data arguments of a `retrieval` recipe (the third dataclass is `RetrievalDistillationConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

DATASETS = ("flickr30k", "synthetic_shapes")


@dataclass
class RetrievalModelArguments:
    """Which dual encoders a retrieval recipe trains, and how the student is built.

    Parameters:
        model_name_or_path (`str`, *optional*):
            A dual encoder to train as it is (a teacher recipe, a no-teacher baseline), or the base the
            student is built from. Defaults to the teacher.
        model_config (`str`, *optional*):
            Train a new, randomly initialised `CLIPModel` from this config: a `config.json` path, or
            `"tiny-clip"` (a 2+2-layer, 64-wide CLIP for the offline synthetic check).
        student_model_name_or_path (`str`, *optional*):
            A ready student dual encoder.
        student_vision_layers (`str`, *optional*):
            Student image tower: a depth (`"2"`: evenly spaced teacher layers) or 0-based teacher
            layers (`"0,5,11"`); with `student_vision_hidden_size`, the depth of a narrower tower.
        student_text_layers (`str`, *optional*):
            The same for the text tower.
        student_vision_hidden_size (`int`, *optional*):
            Width of a narrower, randomly initialised image tower.
        student_text_hidden_size (`int`, *optional*):
            Width of a narrower, randomly initialised text tower.
        student_projection_dim (`int`, *optional*):
            Width of the student's embedding space (default: the teacher's).
        text_only (`bool`, defaults to `False`):
            Distil the text tower only: the student keeps the teacher's image tower, frozen.
        tokenizer_name (`str`, *optional*):
            Tokenizer (default: the one saved with the teacher or the model).
        image_processor_name (`str`, *optional*):
            Image processor (default: the one saved with the teacher or the model).
        trust_remote_code (`bool`, defaults to `False`):
            Allow model code from the Hub.
    """

    model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Dual encoder to train as is, or the base of the student (default: teacher)."}
    )
    model_config: Optional[str] = field(
        default=None,
        metadata={"help": "New random CLIPModel from a config.json path, or 'tiny-clip' (offline synthetic check)."},
    )
    student_model_name_or_path: Optional[str] = field(default=None, metadata={"help": "A ready student dual encoder."})
    student_vision_layers: Optional[str] = field(
        default=None,
        metadata={"help": "Student image tower: a depth ('2') or 0-based teacher layers ('0,5,11')."},
    )
    student_text_layers: Optional[str] = field(
        default=None, metadata={"help": "Student text tower: a depth ('2') or 0-based teacher layers ('0,5,11')."}
    )
    student_vision_hidden_size: Optional[int] = field(
        default=None, metadata={"help": "Width of a narrower, randomly initialised image tower."}
    )
    student_text_hidden_size: Optional[int] = field(
        default=None, metadata={"help": "Width of a narrower, randomly initialised text tower."}
    )
    student_projection_dim: Optional[int] = field(
        default=None, metadata={"help": "Width of the student's embedding space (default: the teacher's)."}
    )
    text_only: bool = field(
        default=False, metadata={"help": "Distil the text tower only, against the teacher's frozen image tower."}
    )
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Tokenizer (default: the teacher's)."})
    image_processor_name: Optional[str] = field(
        default=None, metadata={"help": "Image processor (default: the teacher's)."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})

    @property
    def reshapes_student(self) -> bool:
        return any(
            value is not None
            for value in (
                self.student_vision_layers,
                self.student_text_layers,
                self.student_vision_hidden_size,
                self.student_text_hidden_size,
                self.student_projection_dim,
            )
        ) or self.text_only


@dataclass
class RetrievalDataArguments:
    """What a retrieval recipe trains and evaluates on.

    Parameters:
        dataset (`str`, defaults to `"flickr30k"`):
            `"flickr30k"` (Karpathy split) or `"synthetic_shapes"` (drawn in code, offline).
        data_dir (`str`, *optional*):
            Local Flickr30k: a folder with `images/` and Karpathy's `dataset_flickr30k.json`. Without
            it, Flickr30k comes from `dataset_name`.
        dataset_name (`str`, defaults to `"nlphuji/flickr30k"`):
            A parquet copy on the Hub, one row per image with its captions and Karpathy split.
        dataset_config_name (`str`, *optional*, defaults to `"TEST"`):
            Its configuration (`nlphuji/flickr30k`'s parquet export keeps all 31,014 images, with their
            Karpathy `split` column, in configuration `TEST`, split `test`).
        dataset_revision (`str`, *optional*, defaults to `"refs/convert/parquet"`):
            Its revision: the Hub's parquet export (script-based datasets do not load in datasets 4+).
        image_column, caption_column, split_column (`str`):
            Its column names (defaults `image`, `caption`, `split`).
        eval_split (`str`, defaults to `"test"`):
            Split for the recalls: `test` (1,000 images) or `validation` (1,014).
        max_train_images (`int`, *optional*):
            Train on the first this many images (each with its captions).
        max_eval_images (`int`, *optional*):
            Evaluate on the first this many images.
        synthetic_train_images (`int`, defaults to 2000):
            Images of the synthetic training set (5 captions each).
        synthetic_eval_images (`int`, defaults to 200):
            Images of the synthetic evaluation set (another seed).
        synthetic_image_size (`int`, defaults to 32):
            Side of the synthetic images.
        max_caption_length (`int`, defaults to 77):
            Caption length cap in tokens.
        rerank_top_k (`int`, defaults to 0):
            Also evaluate two-stage retrieval (student top-k, teacher re-ranks); 0 = off.
    """

    dataset: str = field(
        default="flickr30k",
        metadata={"help": "'flickr30k' (Karpathy split) or 'synthetic_shapes' (offline).", "choices": list(DATASETS)},
    )
    data_dir: Optional[str] = field(
        default=None, metadata={"help": "Local Flickr30k: images/ + dataset_flickr30k.json (Karpathy split)."}
    )
    dataset_name: str = field(default="nlphuji/flickr30k", metadata={"help": "Parquet copy of Flickr30k on the Hub."})
    dataset_config_name: Optional[str] = field(default="TEST", metadata={"help": "Configuration of dataset_name."})
    dataset_revision: Optional[str] = field(
        default="refs/convert/parquet", metadata={"help": "Revision of dataset_name (the Hub's parquet export)."}
    )
    image_column: str = field(default="image", metadata={"help": "Image column of dataset_name."})
    caption_column: str = field(default="caption", metadata={"help": "Caption-list column of dataset_name."})
    split_column: str = field(default="split", metadata={"help": "Karpathy split column of dataset_name."})
    eval_split: str = field(
        default="test", metadata={"help": "Split for the recalls: test or validation.", "choices": ["test", "validation"]}
    )
    max_train_images: Optional[int] = field(default=None, metadata={"help": "Train on the first N images."})
    max_eval_images: Optional[int] = field(default=None, metadata={"help": "Evaluate on the first N images."})
    synthetic_train_images: int = field(default=2000, metadata={"help": "Images of the synthetic training set."})
    synthetic_eval_images: int = field(default=200, metadata={"help": "Images of the synthetic evaluation set."})
    synthetic_image_size: int = field(default=32, metadata={"help": "Side of the synthetic images in pixels."})
    max_caption_length: int = field(default=77, metadata={"help": "Caption length cap in tokens."})
    rerank_top_k: int = field(
        default=0, metadata={"help": "Also evaluate two-stage retrieval: student top-k, teacher re-ranks (0 = off)."}
    )

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}.")
        for name in ("max_train_images", "max_eval_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number of images, got {value}.")
        if self.rerank_top_k < 0:
            raise ValueError(f"rerank_top_k must be >= 0, got {self.rerank_top_k}.")
