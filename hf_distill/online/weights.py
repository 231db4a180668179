"""Reading a `save_pretrained` folder's weights back into a model already built (resume, best model)."""

from __future__ import annotations

import os

import safetensors.torch
from torch import nn
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from ..compat import load_sharded_checkpoint


def load_saved_weights(model: nn.Module, folder: str) -> None:
    """Loads `model.safetensors` (or its sharded index) from `folder` into `model`, every key checked.

    Raises:
        FileNotFoundError: When the folder holds no safetensors weights.
        RuntimeError: When keys are missing or unexpected (other than weights tied to another one).
    """
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
