"""Loading models and tokenizers safely, and models made of parts.

- Model folders and Hub ids are loaded with safetensors weights only and without remote code unless
  the user opts in (`use_safetensors=False`, `trust_remote_code=True`), with errors that name the
  opt-in.
- `load_saved_weights` reads a `save_pretrained` folder back into a model already built (resume and
  best-model loading of models made of parts).
- `CompositeModel` is the interface of such models (the peers of mutual learning, a backbone with its
  exits): one `nn.Module` for Trainer, saved part by part so that each part loads without hf-distill.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def check_model_path(path: Optional[str], what: str) -> None:
    """Raises a clear error for a local-looking model path (``./x``, ``/x``, ``a/b/c``) that is not a folder.

    Anything else may be a Hub id (``org/name``) and is left to `from_pretrained`.
    """
    if not path:
        return
    path = os.path.expanduser(path)
    if (path.startswith((".", "/")) or path.count("/") > 1) and not os.path.isdir(path):
        raise FileNotFoundError(
            f"The {what} {path!r} does not exist: pass a folder saved with save_pretrained, or a Hub id."
        )


def model_load_kwargs(model_args: Any) -> dict[str, Any]:
    """The `from_pretrained` keyword arguments a recipe's model arguments set (attention, remote code, safetensors)."""
    return {
        "attn_implementation": model_args.attn_implementation,
        "trust_remote_code": model_args.trust_remote_code,
        "use_safetensors": model_args.use_safetensors,
    }


def load_tokenizer(path: str, what: str = "tokenizer folder", trust_remote_code: bool = False) -> "PreTrainedTokenizerBase":
    """`AutoTokenizer.from_pretrained` after checking that a local-looking path exists."""
    from transformers import AutoTokenizer

    path = os.path.expanduser(path)
    check_model_path(path, what)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def load_pretrained(loader: Any, path: str, what: str, opt_in: str = "--use_safetensors false", **kwargs: Any) -> Any:
    """`loader.from_pretrained(path, **kwargs)` with errors that name the file and the fix.

    Args:
        loader: An auto class (`AutoModelForSequenceClassification`, ...).
        path (`str`): A folder saved with `save_pretrained`, or a Hub id.
        what (`str`): What the model is (`"teacher"`, `"student"`, ...), for the messages.
        opt_in (`str`, defaults to `"--use_safetensors false"`): How the user allows pickle weights.
        **kwargs: `from_pretrained` options.

    Raises:
        OSError: For a folder without loadable weights (naming `opt_in` when it holds pickle weights only).
        ValueError: For corrupt weights (naming the file), or a model that needs its own code (naming the opt-in).
    """
    try:
        return loader.from_pretrained(path, **kwargs)
    except OSError as error:
        pickled = os.path.isdir(path) and any(name.endswith(".bin") and name != "training_args.bin"
                                              for name in os.listdir(path))
        hint = (f" It holds pickle (.bin) weights only, which are not loaded by default: if you trust them, pass "
                f"{opt_in}." if pickled and kwargs.get("use_safetensors", True) else "")
        raise OSError(f"Could not load the {what} from {path}: {' '.join(str(error).split()).rstrip('.')}.{hint}") from error
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise ValueError(
                f"The {what} at {path!r} needs its own Python code, which is not run by default: "
                f"{' '.join(str(error).split())} If you trust that code, allow it (trust_remote_code)."
            ) from error
        raise
    except Exception as error:  # safetensors' own errors for a corrupt file
        if type(error).__name__ != "SafetensorError":
            raise
        files = [name for name in os.listdir(path) if name.endswith(".safetensors")] if os.path.isdir(path) else []
        raise ValueError(
            f"The weights of the {what} in {os.path.join(path, files[0]) if len(files) == 1 else path} are corrupt "
            f"({error}): copy the folder again, or re-save the model with save_pretrained."
        ) from error


def auto_class_of(model: "nn.Module") -> Any:
    """The `AutoModelFor<Head>` class of a model's head (`AutoModel` for a base model or an unknown head)."""
    import transformers

    head = type(model).__name__.split("For", 1)
    if len(head) == 2:
        return getattr(transformers, f"AutoModelFor{head[1]}", transformers.AutoModel)
    return transformers.AutoModel


def load_teacher(
    path: str,
    student: "nn.Module",
    init_kwargs: Optional[dict[str, Any]] = None,
    revision: Optional[str] = None,
) -> "PreTrainedModel":
    """Loads a teacher with the auto class of the student's head: safetensors only and no remote code by default.

    Args:
        path (`str`): A folder saved with `save_pretrained`, or a Hub id.
        student (`nn.Module`): The student; its head picks the auto class.
        init_kwargs (`dict`, *optional*): More `from_pretrained` keyword arguments (`teacher_model_init_kwargs`).
        revision (`str`, *optional*): Revision on the Hub.

    Raises:
        FileNotFoundError: For a local-looking path that does not exist.
        ValueError: When the model needs its own code, naming the opt-in.
        OSError: When the weights cannot be read, naming the opt-in for pickle weights.
    """
    kwargs = dict(init_kwargs or {})
    kwargs.setdefault("trust_remote_code", False)
    kwargs.setdefault("use_safetensors", True)
    if revision is not None:
        kwargs.setdefault("revision", revision)
    path = os.path.expanduser(path)
    check_model_path(path, "teacher model path")
    try:
        return auto_class_of(student).from_pretrained(path, **kwargs)
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise ValueError(
            f"The teacher at {path!r} needs its own Python code, which is not run by default: {error}\nIf you "
            "trust that code, set teacher_model_init_kwargs={'trust_remote_code': True}."
        ) from error
    except OSError as error:
        raise OSError(
            f"Could not load the teacher from {path!r}: {error}\nPass a folder saved with save_pretrained "
            "(safetensors weights), or a Hub id while online. For pickle (.bin) weights you trust, set "
            "teacher_model_init_kwargs={'use_safetensors': False}."
        ) from error


def load_saved_weights(model: "nn.Module", folder: str) -> None:
    """Loads `model.safetensors` (or its sharded index) from `folder` into `model`, every key checked.

    Raises:
        FileNotFoundError: When the folder holds no safetensors weights.
        RuntimeError: When keys are missing or unexpected (other than weights tied to another one).
    """
    import safetensors.torch
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

    from .compat import load_sharded_checkpoint

    single = os.path.join(folder, SAFE_WEIGHTS_NAME)
    if os.path.isfile(single):
        state = safetensors.torch.load_file(single)
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = set(getattr(model, "_tied_weights_keys", None) or [])
        missing = [key for key in missing if key not in tied]
        if missing or unexpected:
            raise RuntimeError(
                f"The weights in {single} do not fit this model (missing: {missing}, unexpected: {unexpected})."
            )
        return
    if os.path.isfile(os.path.join(folder, SAFE_WEIGHTS_INDEX_NAME)):
        load_sharded_checkpoint(model, folder, strict=True)
        return
    raise FileNotFoundError(
        f"No {SAFE_WEIGHTS_NAME} in {folder}: resume from a folder written by this trainer (save_model or a checkpoint)."
    )


def load_matching_state(path: str, expected: dict[str, Any], mismatch: str) -> dict[str, Any]:
    """Reads a safetensors file whose keys and shapes must be `expected`'s, cast to their devices and dtypes.

    Args:
        path (`str`): The `.safetensors` file.
        expected (`dict[str, torch.Tensor]`): The state dict the file must fit (e.g. `module.state_dict()`).
        mismatch (`str`): The end of the error message when it does not fit (what to check).

    Raises:
        ValueError: When the keys or a shape differ, naming the file, both key sets and `mismatch`.
    """
    import safetensors.torch

    try:
        state = safetensors.torch.load_file(path)
    except Exception as error:  # SafetensorError (a corrupt or truncated file), or a file that is not safetensors
        raise ValueError(f"{path} is corrupt or not a safetensors file ({error}): copy it again, or start without "
                         "it.") from error
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise ValueError(
            f"The weights in {path} do not fit (saved: { {k: tuple(v.shape) for k, v in state.items()} }, expected: "
            f"{ {k: tuple(v.shape) for k, v in expected.items()} }): {mismatch}"
        )
    return {k: v.to(expected[k].device, expected[k].dtype) for k, v in state.items()}


class CompositeModel:
    """The interface of a model made of parts saved separately (a mixin for an `nn.Module`).

    `DistillationTrainerBase` saves such a model with `save_parts` (in the final output and in every
    checkpoint) and restores it with `load_parts` on resume and for the best model, instead of one
    `model.safetensors`. Each part is written so that it loads without hf-distill.
    """

    def parts(self) -> dict[str, "nn.Module"]:  # pragma: no cover - interface
        """The plain models it is made of, by the subfolder each is saved in (`""` for the run folder itself)."""
        raise NotImplementedError

    def save_parts(self, output_dir: str, processing_class: Any = None) -> None:  # pragma: no cover - interface
        """Writes every part into `output_dir`."""
        raise NotImplementedError

    def load_parts(self, folder: str) -> None:  # pragma: no cover - interface
        """Restores every part from a folder written by `save_parts`."""
        raise NotImplementedError
