"""The model and data arguments of a task recipe (the third dataclass is `DistillationConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..students import LAYER_SELECTIONS


def parse_layer_numbers(value: Optional[str], key: str) -> Optional[list[int]]:
    """0-based layer numbers written as `"0,2,4"` (or `"[0, 2, 4]"`), `None` when unset.

    Raises:
        ValueError: Naming `key` and the expected form, for anything else.
    """
    if value is None:
        return None
    parts = [part.strip() for part in str(value).strip("[]").split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"{key} must be 0-based layer numbers separated by commas, such as '0,2,4'; got {value!r}.")
    return [int(part) for part in parts]


@dataclass
class ModelArguments:
    """Which models a recipe trains and how the student is built.

    Parameters:
        model_name_or_path (`str`, *optional*):
            The model to fine-tune (teacher recipes, no-teacher baselines), or the base the student is
            built from when `student_model_name_or_path` is not set. Defaults to the teacher.
        student_model_name_or_path (`str`, *optional*):
            A ready student, e.g. the output of TinyBERT's intermediate stage.
        student_layers (`str`, *optional*):
            0-based layers of the base to copy into the student, e.g. `"0,2,4"` (DistilBERT-style).
        student_num_layers (`int`, *optional*):
            Number of student layers: layers of the base picked by `student_layer_selection`, or the
            depth of a narrower student with `student_hidden_size`.
        student_layer_selection (`str`, defaults to `"uniform"`):
            Which layers `student_num_layers` copies: `"uniform"` (evenly spaced, first and last
            included: DistilBERT's choice) or `"block_top"` (the top layer of each of M equal blocks:
            the layers TinyBERT's uniform layer map matches, e.g. 1,3,5 of 6). `student_layers` wins.
        student_hidden_size (`int`, *optional*):
            Width of a randomly initialised, narrower student (TinyBERT-style).
        student_intermediate_size (`int`, *optional*):
            Feed-forward width of the narrower student (defaults to 4 x hidden).
        student_num_attention_heads (`int`, *optional*):
            Heads of the narrower student (defaults to the teacher's).
        tokenizer_name (`str`, *optional*):
            Tokenizer to use, defaults to the one saved with the teacher (or the model).
        attn_implementation (`str`, defaults to `"eager"`):
            Attention implementation of the loaded models.
        trust_remote_code (`bool`, defaults to `False`):
            Allow models whose code lives on the Hub. Off unless you trust the repository.
        use_safetensors (`bool`, defaults to `True`):
            Load safetensors weights only; set to false to allow pickle (.bin) weights you trust.
    """

    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "Model to fine-tune, or the base the student is built from (defaults to the teacher)."},
    )
    student_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "A ready student, e.g. the output of TinyBERT's intermediate stage."}
    )
    student_layers: Optional[str] = field(
        default=None, metadata={"help": "0-based layers of the base to copy into the student, e.g. '0,2,4'."}
    )
    student_num_layers: Optional[int] = field(
        default=None,
        metadata={"help": "Student depth: evenly spaced layers of the base, or the depth of a narrower student."},
    )
    student_layer_selection: str = field(
        default="uniform",
        metadata={"help": "Layers student_num_layers copies: 'uniform' (evenly spaced, DistilBERT) or 'block_top' "
                          "(the layers TinyBERT's uniform layer map matches, e.g. 1,3,5 of 6).",
                  "choices": list(LAYER_SELECTIONS)},
    )
    student_hidden_size: Optional[int] = field(
        default=None, metadata={"help": "Width of a randomly initialised, narrower student (TinyBERT-style)."}
    )
    student_intermediate_size: Optional[int] = field(
        default=None, metadata={"help": "Feed-forward width of the narrower student (defaults to 4 x hidden)."}
    )
    student_num_attention_heads: Optional[int] = field(
        default=None, metadata={"help": "Attention heads of the narrower student (defaults to the teacher's)."}
    )
    tokenizer_name: Optional[str] = field(
        default=None, metadata={"help": "Tokenizer to use; defaults to the teacher's (or the model's)."}
    )
    attn_implementation: str = field(
        default="eager", metadata={"help": "Attention implementation of the loaded models (eager, sdpa)."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow model code from the Hub. Off unless you trust the repository."}
    )
    use_safetensors: bool = field(
        default=True, metadata={"help": "Load safetensors weights only; false allows pickle weights you trust."}
    )

    @property
    def layer_list(self) -> Optional[list[int]]:
        """`student_layers` as 0-based layer numbers (`None` when unset)."""
        return parse_layer_numbers(self.student_layers, "student_layers")

    def __post_init__(self):
        self.layer_list  # checks student_layers now, when the recipe is parsed


@dataclass
class DataArguments:
    """What a recipe trains and evaluates on.

    Parameters:
        task_name (`str`):
            A GLUE task (`cola`, `sst2`, `mrpc`, `stsb`, `qqp`, `mnli`, `qnli`, `rte`, `wnli`), `imdb`
            (the offline IMDB reviews that pip installs), or `squad` / `squad_v2` (question answering, with
            `*ForQuestionAnswering` models; `data_dir` holds the official JSON files).
        data_dir (`str`, *optional*):
            Local GLUE data in the original release layout (`<dir>/SST-2/train.tsv`, ...). Without it
            (and without files), GLUE comes from the Hub (`nyu-mll/glue`).
        train_file (`str`, *optional*):
            CSV or JSON training file with the task's columns. With `data_dir`, it replaces the folder's
            `train.tsv` (e.g. the output of `hf-distill augment`) and the folder still gives the dev set.
        validation_file (`str`, *optional*):
            CSV or JSON validation file with the task's columns (with `data_dir`, it replaces the dev set).
        max_seq_length (`int`, defaults to 128):
            Tokens per example after truncation.
        max_train_samples (`int`, *optional*):
            Train on a random subset of this size (seeded), to fit CPU time.
        max_eval_samples (`int`, *optional*):
            Evaluate on a random subset of this size (seeded).
        align_teacher_tokens (`bool`, defaults to `False`):
            With a teacher that has its own tokenizer (`teacher_tokenizer_name_or_path`): also align each
            student token with the teacher token holding its first character (`teacher_token_index`), which the
            hidden-state terms (`hidden_weight`, `embedding_weight`, `cosine_weight`) need across tokenizers.
        doc_stride (`int`, defaults to 128):
            SQuAD: tokens shared by two consecutive windows of a context longer than `max_seq_length`.
        n_best_size (`int`, defaults to 20):
            SQuAD: start and end candidates per window when picking the answer span.
        max_answer_length (`int`, defaults to 30):
            SQuAD: the longest answer, in tokens.
        null_score_diff_threshold (`float`, defaults to 0.0):
            SQuAD v2.0: answer "no answer" when the null score beats the best span by more than this.
    """

    task_name: str = field(
        default="sst2",
        metadata={"help": "GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli), 'imdb' (offline), or "
                          "'squad' / 'squad_v2' (question answering)."},
    )
    data_dir: Optional[str] = field(
        default=None, metadata={"help": "Local GLUE data in the original layout (<dir>/SST-2/train.tsv, ...)."}
    )
    train_file: Optional[str] = field(default=None, metadata={"help": "CSV/JSON training file with the task's columns."})
    validation_file: Optional[str] = field(
        default=None, metadata={"help": "CSV/JSON validation file with the task's columns."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per example after truncation."})
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Train on a seeded random subset of this size (to fit CPU time)."}
    )
    max_eval_samples: Optional[int] = field(
        default=None, metadata={"help": "Evaluate on a seeded random subset of this size."}
    )
    align_teacher_tokens: bool = field(
        default=False,
        metadata={"help": "With teacher_tokenizer_name_or_path: align each student token with a teacher token (the "
                          "hidden-state terms need it across tokenizers)."},
    )

    doc_stride: int = field(
        default=128, metadata={"help": "SQuAD: tokens shared by consecutive windows of a long context."}
    )
    n_best_size: int = field(default=20, metadata={"help": "SQuAD: start/end candidates per window."})
    max_answer_length: int = field(default=30, metadata={"help": "SQuAD: the longest answer, in tokens."})
    null_score_diff_threshold: float = field(
        default=0.0, metadata={"help": "SQuAD v2.0: predict no answer when the null score beats the best span by more."}
    )

    def __post_init__(self):
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8, got {self.max_seq_length}.")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number of examples, got {value}.")
