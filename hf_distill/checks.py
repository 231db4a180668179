"""Setup checks that run before the first training step, as pure functions.

Each takes the models, the data or the config, and raises `ValueError` (or `TypeError`) with one
message that names the problem and the fix; none trains or changes anything. The trainers call them
from `__init__`, the recipe runners before loading what they do not need yet.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from typing import TYPE_CHECKING, Any, Optional, Sequence

from .runs import PARTIAL_CHECKPOINT_PREFIX, RESULTS_NAME, RUN_FINGERPRINT_NAME
from .terms import TEACHER_LOGITS

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import TrainingArguments

    from .config import DistillationConfigBase

LABEL_COLUMNS = ("labels", "label", "label_ids", "start_positions")
# What marks a folder as holding a run: its record, a saved model (or the peers of a mutual-learning run), checkpoints.
_RUN_FILES = (RESULTS_NAME, "model.safetensors", "model-*-of-*.safetensors", "pytorch_model.bin", "peer_*",
              "checkpoint-*", "early_exit_heads.safetensors")


class RunFolderError(FileExistsError):
    """An output folder that holds another run, which training would overwrite or mix with."""


def previous_run_entries(output_dir: str) -> list[str]:
    """The entries of `output_dir` that belong to an earlier run (its record, its model, its checkpoints)."""
    if not os.path.isdir(output_dir):
        return []
    return sorted(name for name in os.listdir(output_dir) if any(fnmatch.fnmatch(name, p) for p in _RUN_FILES))


def check_output_dir(output_dir: str, overwrite: bool, resume: Any) -> None:
    """Refuses an `output_dir` that holds a finished run or checkpoints of another run (unless resuming one).

    Args:
        output_dir (`str`): The run's output folder.
        overwrite (`bool`): `overwrite_output_dir`: the earlier run is replaced (`clear_previous_run`).
        resume: `resume_from_checkpoint`: resuming continues the run of the folder (checked against its
            fingerprint when training starts).

    Raises:
        RunFolderError: Naming what the folder holds and the two ways out.
    """
    if resume or overwrite:
        return
    found = previous_run_entries(output_dir)
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise RunFolderError(
            f"{output_dir} already holds a run ({shown}); training into it would overwrite that run or mix with its "
            "checkpoints. Write to a new folder (--output_dir NEW), or pass --overwrite_output_dir true to replace it "
            "(its checkpoints and results.json are deleted first)."
        )


def clear_previous_run(output_dir: str) -> list[str]:
    """With `overwrite_output_dir`: deletes the earlier run's checkpoints (complete and partial), its `results.json`
    and its fingerprint, so nothing of it mixes with the new run. Returns what was deleted."""
    if not os.path.isdir(output_dir):
        return []
    removed = []
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        is_checkpoint = os.path.isdir(path) and (name.startswith("checkpoint-") or name.startswith(PARTIAL_CHECKPOINT_PREFIX))
        if is_checkpoint:
            shutil.rmtree(path)
            removed.append(name)
        elif name in (RESULTS_NAME, RUN_FINGERPRINT_NAME) and os.path.isfile(path):
            os.remove(path)
            removed.append(name)
    return removed


def check_writable(output_dir: str, needed_bytes: Optional[int] = None) -> None:
    """The output folder can be written (or created), and its disk has room for one checkpoint. Creates nothing.

    Args:
        output_dir (`str`): The run's output folder.
        needed_bytes (`int`, *optional*): The estimated size of one checkpoint.

    Raises:
        PermissionError: When the folder (or the folder it would be created in) cannot be written.
        OSError: When the disk has less free space than one checkpoint needs.
    """
    folder = os.path.abspath(os.path.expanduser(output_dir))
    existing = folder
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    writable = os.access(existing, os.W_OK | os.X_OK)
    if writable and existing == folder:  # access() can say yes on read-only mounts: try a file
        probe = os.path.join(folder, f".hf-distill-write-test-{os.getpid()}")
        try:
            with open(probe, "w") as file:
                file.write("ok")
            os.remove(probe)
        except OSError:
            writable = False
    if not writable:
        where = output_dir if existing == folder else f"{existing} (where {output_dir} would be created)"
        raise PermissionError(
            f"Cannot write to {where}: the run could not save its model. Choose a folder you can write to "
            "(--output_dir)."
        )
    if needed_bytes:
        free = shutil.disk_usage(existing).free
        if free < needed_bytes:
            raise OSError(
                f"The disk holding {output_dir} has {free / 1e6:,.0f} MB free but one checkpoint of this run needs about "
                f"{needed_bytes / 1e6:,.0f} MB (weights and optimizer state): free space, or choose another --output_dir."
            )


def checkpoint_bytes(num_parameters: int, save_only_model: bool = False, bytes_per_parameter: int = 4) -> int:
    """The size of one checkpoint: the weights, and Adam's two moments unless `save_only_model`."""
    return num_parameters * bytes_per_parameter * (1 if save_only_model else 3)


def weights_bytes(path: Optional[str]) -> int:
    """The size of a local model folder's weight files (0 for a Hub id or a missing folder)."""
    if not path or not os.path.isdir(os.path.expanduser(path)):
        return 0
    folder = os.path.expanduser(path)
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)
               if name.endswith((".safetensors", ".bin")) and name != "training_args.bin")


def check_run_folder(args: Any, model_paths: tuple = ()) -> None:
    """What a recipe runner checks before it loads anything: the output folder is free (or resumed, or to be
    overwritten) and writable, with room for a checkpoint of the largest model among `model_paths` (local folders)."""
    check_output_dir(args.output_dir, args.overwrite_output_dir, args.resume_from_checkpoint)
    largest = max((weights_bytes(path) for path in model_paths), default=0)
    saves = str(getattr(args.save_strategy, "value", args.save_strategy)) != "no"
    check_writable(args.output_dir, largest * (1 if args.save_only_model or not saves else 3))


def is_masked_lm(model: "nn.Module") -> bool:
    """Whether the model is a `*ForMaskedLM` (its own loss is the masked-LM loss)."""
    return type(model).__name__.endswith("ForMaskedLM")


def is_classifier(model: "nn.Module") -> bool:
    """Whether the model is a sequence or token classifier (soft targets need the same label space)."""
    return type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification"))


def check_teacher_need(config: "DistillationConfigBase", has_teacher: bool, cached_logits: bool = False) -> None:
    """A teacher is there exactly when a term that needs one is on (over the whole schedule).

    Args:
        config (`DistillationConfigBase`): The family's config; its `TERMS` say which need a teacher.
        has_teacher (`bool`): Whether the trainer has a live teacher (a model, an ensemble or the EMA).
        cached_logits (`bool`, defaults to `False`): Whether the training set carries the teacher's logits,
            which serve the terms that need only logits.

    Raises:
        ValueError: When a teacher term is on without a teacher, or a teacher is given that no term uses.
    """
    maxima = config.max_loss_weights
    on = [term for term in config.TERMS if term.needs_teacher and maxima[term.weight_field] > 0]
    live = [term for term in on if not (cached_logits and term.teacher == TEACHER_LOGITS)]
    if not has_teacher and live:
        cached = (f" (the teacher_logits column serves {', '.join(t.weight_field for t in on if t not in live)} only)"
                  if cached_logits else "")
        raise ValueError(
            f"{', '.join(term.weight_field for term in live)} > 0 needs a teacher{cached}: pass teacher_model=... "
            "(a model or a path) or set teacher_model_name_or_path, or set those weights to 0 for a no-teacher "
            "baseline."
        )
    if has_teacher and not on:
        teacher_terms = [term.weight_field for term in config.TERMS if term.needs_teacher]
        raise ValueError(
            f"A teacher was given but every teacher-based weight ({', '.join(teacher_terms) or 'none in this family'}) "
            "is 0: set one of them > 0, or drop the teacher for a no-teacher baseline."
        )


def check_student_and_teacher(
    student: "nn.Module", teacher: Optional["nn.Module"], config: "DistillationConfigBase",
    teacher_has_own_tokenizer: bool = False,
) -> None:
    """The task and general families: the student's head and the teacher fit the terms that are on.

    With `teacher_has_own_tokenizer` the vocabularies may differ (`check_teacher_tokenizer` checks the terms).

    Raises:
        ValueError: For an MLM term on a model that has no masked-LM head (or a task term on one), teachers
            whose vocabulary, label space, label order or head differ from the student's, or an attention
            term between models of different head counts.
    """
    maxima = config.max_loss_weights
    check_supported_head(student, "student", needs_head=any(maxima[f] > 0 for f in ("kd_weight", "task_weight", "mlm_weight")))
    if teacher is not None and not isinstance(teacher, str):
        check_supported_head(teacher, "teacher", needs_head=maxima["kd_weight"] > 0)
    if maxima["mlm_weight"] > 0 and not is_masked_lm(student):
        raise ValueError(
            f"mlm_weight > 0 needs a *ForMaskedLM student, got {type(student).__name__}: set mlm_weight=0."
        )
    if maxima["task_weight"] > 0 and is_masked_lm(student):
        raise ValueError(
            "The student is a masked LM: its own loss is the MLM loss. Use mlm_weight instead of task_weight."
        )
    if teacher is None:
        return
    s_cfg, t_cfg = student.config, teacher.config
    s_vocab, t_vocab = getattr(s_cfg, "vocab_size", None), getattr(t_cfg, "vocab_size", None)
    if s_vocab != t_vocab and not teacher_has_own_tokenizer:
        raise ValueError(
            f"Teacher and student vocabularies differ (teacher vocab_size={t_vocab}, student {s_vocab}): give the "
            "teacher its own tokenizer (teacher_tokenizer_name_or_path, or teacher_processing_class in Python) for "
            "soft targets and pooled_weight across vocabularies, or build the student with create_student(teacher)."
        )
    if maxima["kd_weight"] > 0 and is_classifier(student):
        if s_cfg.num_labels != t_cfg.num_labels:
            raise ValueError(
                f"Teacher has num_labels={t_cfg.num_labels}, student {s_cfg.num_labels}: soft targets need the "
                "same label space. Build the student from the teacher (create_student) or fix num_labels."
            )
        if dict(s_cfg.id2label) != dict(t_cfg.id2label):
            raise ValueError(
                f"Teacher and student label orders differ: teacher id2label={dict(t_cfg.id2label)}, student "
                f"{dict(s_cfg.id2label)}. Give the student the teacher's id2label/label2id."
            )
    if maxima["kd_weight"] > 0 and type(student).__name__.split("For")[-1] != type(teacher).__name__.split("For")[-1]:
        raise ValueError(
            f"Teacher {type(teacher).__name__} and student {type(student).__name__} have different heads: "
            "soft targets need the same kind of head (e.g. both *ForSequenceClassification)."
        )
    if maxima["attention_weight"] > 0 and s_cfg.num_attention_heads != t_cfg.num_attention_heads:
        raise ValueError(
            f"attention_weight > 0 needs equal head counts (teacher {t_cfg.num_attention_heads}, student "
            f"{s_cfg.num_attention_heads}): build the student with num_attention_heads="
            f"{t_cfg.num_attention_heads}, or set attention_weight=0."
        )


def check_supported_head(model: "nn.Module", what: str, needs_head: bool) -> None:
    """The model has a head `DistillationTrainer` distils (`hf_distill.task_heads.HEAD_KINDS`).

    Args:
        model (`nn.Module`): The student or a teacher.
        what (`str`): `"student"` or `"teacher"`, for the message.
        needs_head (`bool`): Whether a term that reads the head's logits or loss is on (kd, task, mlm); a model
            without a head (`AutoModel`) then cannot serve.

    Raises:
        ValueError: For an unsupported head (multiple choice, causal LM, ...), or a bare encoder where a term
            needs logits, naming the supported heads.
    """
    from .task_heads import ENCODER, head_kind, supported_heads

    kind = head_kind(model)
    if kind is None:
        raise ValueError(
            f"The {what} is a {type(model).__name__}, a head DistillationTrainer does not distil. Supported: "
            f"{supported_heads()}, and models without a head (AutoModel) for the hidden-state, embedding, cosine "
            "and attention terms."
        )
    if kind == ENCODER and needs_head:
        raise ValueError(
            f"The {what} is a {type(model).__name__}, which has no task head, but kd_weight/task_weight/mlm_weight "
            f"> 0 read a head's logits or loss: load it with the task's head ({supported_heads()}), or keep only "
            "the hidden-state, embedding, cosine and attention terms."
        )


def check_distributed_setup(has_teacher: bool, args: "TrainingArguments") -> None:
    """Refuses DeepSpeed ZeRO-3 with a teacher: the teacher runs outside the DeepSpeed engine."""
    from transformers.integrations import deepspeed as hf_deepspeed

    if has_teacher and args.deepspeed is not None and hf_deepspeed.is_deepspeed_zero3_enabled():
        raise ValueError(
            "DeepSpeed ZeRO stage 3 partitions every model loaded under it, the teacher included, and the "
            "hf-distill trainers run the teacher outside the DeepSpeed engine. Use ZeRO stage 1 or 2 (the "
            "teacher is kept whole on each device), DDP, or FSDP."
        )


def check_train_columns(
    train_dataset: Any, args: "TrainingArguments", needs_labels: bool, main_input: str = "input_ids",
    why_labels: str = "set task_weight=0 to distil from the teacher alone",
) -> None:
    """A tokenized training set must reach the models: fail now, not at the first step.

    Checked when Trainer drops the columns the model does not take (`remove_unused_columns`, the
    default), so a collator that builds the inputs itself is never in the way.

    Args:
        train_dataset: The training set (a `datasets.Dataset`; anything without `column_names` passes).
        args (`TrainingArguments`): For `remove_unused_columns` and `label_names`.
        needs_labels (`bool`): Whether a term learns from labels.
        main_input (`str`, defaults to `"input_ids"`): The model's main input.
        why_labels (`str`): The way out when labels are missing.
    """
    columns = getattr(train_dataset, "column_names", None)
    if not isinstance(columns, list) or not args.remove_unused_columns:
        return
    if main_input not in columns:
        raise ValueError(
            f"The training dataset has no {main_input} column (columns: {columns}): tokenize the text first, "
            "e.g. dataset.map(lambda batch: tokenizer(batch['sentence'], truncation=True), batched=True)."
        )
    label_columns = {*LABEL_COLUMNS, *(args.label_names or [])}
    if needs_labels and not label_columns & set(columns):
        raise ValueError(
            f"task_weight > 0 but the training dataset has no labels column (columns: {columns}): add a "
            f"'labels' (or 'label') column, or {why_labels}."
        )


def check_cached_logits(student: "nn.Module", dataset: Any, column: str) -> None:
    """The cached logits must fit the student's head: one float per label."""
    first = dataset[0][column] if len(dataset) else None
    num_labels = getattr(student.config, "num_labels", None)
    if first is not None and len(first) != num_labels:
        raise ValueError(
            f"The {column!r} column has {len(first)} values a row but the student has "
            f"num_labels={num_labels}: precompute the logits with a teacher of the same label space."
        )


def check_gradient_checkpointing(args: "TrainingArguments") -> None:
    """Attention scores recorded by hooks need non-reentrant checkpointing to get their gradients."""
    kwargs = args.gradient_checkpointing_kwargs or {}
    if args.gradient_checkpointing and kwargs.get("use_reentrant", True):
        raise ValueError(
            "attention_weight > 0 with reentrant gradient checkpointing cannot train the attention scores: "
            "set gradient_checkpointing_kwargs={'use_reentrant': False}."
        )


ALIGNABLE_TERMS = ("hidden_weight", "embedding_weight", "cosine_weight")
"""Token-level terms that a token alignment (`teacher_token_index`) makes work across tokenizers."""
SAME_TOKENS_TERMS = ("attention_weight", "attention_relation_weight", "value_relation_weight",
                     "query_relation_weight", "key_relation_weight")
"""Terms between (query, key) token pairs: they need the same tokens on both sides."""


def check_teacher_tokenizer(
    config: "DistillationConfigBase",
    student: "nn.Module",
    datasets: dict[str, Any],
    has_teacher_tokenizer: bool,
    live_teacher: bool,
) -> None:
    """A teacher with its own tokenizer: the terms that are on work across tokenizers, and the data has its tokens.

    Args:
        config (`DistillationConfigBase`): The loss weights.
        student (`nn.Module`): The student (its head decides whether soft targets are per example or per token).
        datasets (`dict[str, Dataset]`): The training set, then the evaluation sets, by name.
        has_teacher_tokenizer (`bool`): Whether the teacher has its own tokenizer.
        live_teacher (`bool`): Whether a teacher runs during training (not only cached logits).

    Raises:
        ValueError: For a term that needs the same tokens on both sides (attention scores, MiniLM relations,
            soft targets of a token-level head), a hidden-state term without an alignment, a dataset without the
            teacher's tokens, or teacher tokens without a teacher tokenizer.
    """
    from .teacher_inputs import TEACHER_INPUT_COLUMNS, TEACHER_TOKEN_INDEX
    from .task_heads import head_kind

    columns = {name: getattr(dataset, "column_names", None) for name, dataset in datasets.items() if dataset is not None}
    if not has_teacher_tokenizer:
        holding = [name for name, names in columns.items() if names and TEACHER_INPUT_COLUMNS[0] in names]
        if holding and live_teacher:  # without a live teacher, Trainer drops the columns
            raise ValueError(
                f"The {holding[0]} has {TEACHER_INPUT_COLUMNS[0]} (the teacher's own tokens) but the trainer has no "
                "teacher tokenizer, so the teacher would read the student's tokens: pass teacher_processing_class=<the teacher's tokenizer> (or set "
                "teacher_tokenizer_name_or_path), or drop the teacher_* columns."
            )
        return
    maxima = config.max_loss_weights
    same_tokens = [name for name in SAME_TOKENS_TERMS if maxima.get(name, 0) > 0]
    if same_tokens:
        raise ValueError(
            f"{', '.join(same_tokens)} > 0 compares the attention of the two models token pair by token pair, but the "
            "teacher has its own tokenizer: set them to 0 (kd_weight and pooled_weight work across tokenizers)."
        )
    kind = head_kind(student)
    if maxima.get("kd_weight", 0) > 0 and kind in ("token", "span", "masked_lm"):
        raise ValueError(
            f"kd_weight > 0 on a {type(student).__name__} compares logits token by token, but the teacher has its own "
            "tokenizer: per-token soft targets need the same tokens. Set kd_weight=0 (pooled_weight works across "
            "tokenizers), or use the teacher's tokenizer for the student."
        )
    train_columns = columns.get("training set") or []
    aligned = [name for name in ALIGNABLE_TERMS if maxima.get(name, 0) > 0]
    if aligned and TEACHER_TOKEN_INDEX not in train_columns:
        raise ValueError(
            f"{', '.join(aligned)} > 0 compares the two models token by token, but the teacher has its own tokenizer "
            f"and the training set has no {TEACHER_TOKEN_INDEX!r} alignment: add it (add_teacher_inputs(..., "
            "student_tokenizer=...) in Python, --align_teacher_tokens true on the command line), or set them to 0 "
            "and use pooled_weight."
        )
    if not live_teacher:
        return
    for name, names in columns.items():
        if names is not None and TEACHER_INPUT_COLUMNS[0] not in names:
            raise ValueError(
                f"The {name} has no {TEACHER_INPUT_COLUMNS[0]} column, but the teacher has its own tokenizer and reads "
                "the text its way: add them with hf_distill.add_teacher_inputs(dataset, teacher_tokenizer, "
                "text_columns=[...]) before removing the text."
            )


def check_same_tokenizer(tokenizer: Any, other_path: str, what: str) -> None:
    """Refuses a model folder whose saved tokenizer maps tokens to ids differently from `tokenizer`."""
    from transformers import AutoTokenizer

    if not any(os.path.isfile(os.path.join(other_path, f)) for f in ("tokenizer.json", "vocab.txt", "vocab.json")):
        return  # no tokenizer saved with it: the teacher's is used
    other = AutoTokenizer.from_pretrained(other_path)
    if other.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"The {what} at {other_path} was saved with a different tokenizer than the "
            f"{'teacher' if what != 'teacher' else 'run'}'s ({len(other)} vs {len(tokenizer)} tokens, or the same tokens "
            "with different ids): teacher and student "
            "must share one tokenizer. Use the teacher's tokenizer (drop tokenizer_name), build the student from the "
            "teacher (student_layers / student_num_layers), or give the teacher its own tokenizer "
            "(teacher_tokenizer_name_or_path) for soft targets and pooled_weight across tokenizers."
        )


def check_text_file(path: str, encoding: str = "utf-8", min_rows: int = 1, header: bool = False) -> int:
    """A data file is there, is text in `encoding`, and has rows; returns its number of non-empty lines.

    Args:
        path (`str`): The file.
        encoding (`str`, defaults to `"utf-8"`): Its text encoding (a UTF-8 byte-order mark is allowed).
        min_rows (`int`, defaults to 1): Rows it must have, besides the header.
        header (`bool`, defaults to `False`): Whether its first non-empty line is a header (CSV, TSV).

    Raises:
        FileNotFoundError: When the file does not exist.
        ValueError: For bytes that are not `encoding` text (naming the line and column), or too few rows.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The data file {path} does not exist.")
    with open(path, "rb") as file:
        data = file.read()
    try:
        data.decode("utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValueError(
            f"{path}, line {line}, column {column}: byte 0x{data[error.start]:02x} is not {encoding} text. Re-save the "
            f"file as {encoding} (e.g. `iconv -f latin1 -t utf-8`), or fix that line."
        ) from None
    lines = sum(1 for line in data.splitlines() if line.strip())
    if lines - (1 if header else 0) < min_rows:
        what = "a header but no rows" if header and lines else "no rows"
        raise ValueError(f"{path} has {what}: give it at least {min_rows} example(s).")
    return lines


def check_text_column(dataset: Any, columns: Sequence[str], source: str) -> None:
    """Every example has text in `columns` (not empty, not null): tokenizers fail on `None` with an unclear error.

    Raises:
        ValueError: Naming the file, the column and the first rows without text (1-based, header not counted).
    """
    for column in columns:
        if column not in dataset.column_names:
            continue
        empty = [index for index, text in enumerate(dataset[column]) if text is None or not str(text).strip()]
        if empty:
            rows = ", ".join(str(index + 1) for index in empty[:5]) + (" ..." if len(empty) > 5 else "")
            raise ValueError(
                f"{source}: {len(empty):,} example(s) have no text in column {column!r} (rows {rows}): fill them in or "
                "drop those rows."
            )


# Models whose position ids start after the padding index: their table holds `max_position_embeddings - 2` tokens.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text")


def position_limit(config: Any) -> Optional[int]:
    """How many tokens a model's position table holds (`None` when it has none, e.g. rotary positions)."""
    config = getattr(config, "text_config", None) or config
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    return int(limit) - (2 if getattr(config, "model_type", "") in _OFFSET_POSITIONS else 0)


def fit_sequence_length(max_seq_length: int, model_paths: dict[str, Optional[str]], trust_remote_code: bool = False) -> int:
    """`max_seq_length` capped to the position table of every model (read from `config.json`, before weights load).

    A longer `max_seq_length` would crash at the first long example (or only at evaluation); texts are truncated
    to the smallest table instead, and a warning says so once.

    Args:
        max_seq_length (`int`): The recipe's truncation length.
        model_paths (`dict[str, str]`): What each model is (`"teacher"`, ...) -> its folder or Hub id.
        trust_remote_code (`bool`, defaults to `False`): Passed to `AutoConfig`.

    Returns:
        `int`: The length the texts are truncated to.
    """
    import logging

    from transformers import AutoConfig

    fitted, limits = max_seq_length, []
    for what, path in model_paths.items():
        if not path:
            continue
        try:
            config = AutoConfig.from_pretrained(os.path.expanduser(path), trust_remote_code=trust_remote_code)
        except (OSError, ValueError):
            continue  # a missing or unreadable model is reported by the code that loads it, with its own fix
        limit = position_limit(config)
        if limit is not None and limit < fitted:
            fitted, limits = limit, [*limits, f"the {what} at {path} reads {limit} positions"]
    if fitted < max_seq_length:
        logging.getLogger(__name__).warning(
            "max_seq_length=%d is longer than %s: texts are truncated to %d tokens.", max_seq_length,
            " and ".join(limits), fitted)
    return fitted


def longest_sequence(dataset: Any, column: str = "input_ids") -> Optional[int]:
    """The longest tokenized example of a `datasets.Dataset` (`None` for other datasets or without the column)."""
    from datasets import Dataset

    if not isinstance(dataset, Dataset) or column not in dataset.column_names or len(dataset) == 0:
        return None
    import pyarrow.compute as pc

    return int(pc.max(pc.list_value_length(dataset.data.column(column))).as_py())


def check_positions(datasets: dict[str, Any], models: dict[str, Any], column: str = "input_ids") -> None:
    """The Python API's check of sequence lengths: no tokenized example (its `column`) is longer than a model's
    position table.

    Raises:
        ValueError: Naming the dataset, its longest example, the model and its limit.
    """
    for name, dataset in datasets.items():
        longest = longest_sequence(dataset, column)
        if longest is None:
            continue
        for what, model in models.items():
            limit = position_limit(getattr(model, "config", None))
            if model is not None and limit is not None and longest > limit:
                raise ValueError(
                    f"The {name} holds an example of {longest} tokens but the {what} reads at most {limit}: tokenize "
                    f"with truncation=True, max_length={limit}."
                )


def check_unlabelled_examples(
    unlabelled: int, total: int, config: "DistillationConfigBase", has_teacher: bool
) -> None:
    """Refuses training examples without a label when no loss term would learn from them.

    Args:
        unlabelled (`int`): Training examples without a label.
        total (`int`): Training examples.
        config (`DistillationConfigBase`): Its terms say which learn from a teacher.
        has_teacher (`bool`): Whether the run has a teacher.
    """
    if not unlabelled:
        return
    maxima = config.max_loss_weights  # over the whole schedule
    teacher_fields = [term.weight_field for term in config.TERMS if term.needs_teacher]
    if has_teacher and any(maxima[name] > 0 for name in teacher_fields):
        return
    raise ValueError(
        f"{unlabelled:,} of the {total:,} training examples have no label, and this run has no teacher term "
        f"({', '.join(teacher_fields)} > 0 with a teacher), so they would train nothing. Distil from a teacher, "
        "give those examples labels, or drop them from the train file."
    )
