"""Layer maps, learned projection heads (and their files), and capture of pre-softmax attention scores.

The pieces the trainer needs to compare a student's intermediate layers with a teacher's:

- `resolve_layer_map` turns `layer_map` ("uniform", "last" or an explicit list) into the teacher
  layer ``g(m)`` for each student layer ``m``.
- `DistillationHeads` holds the learned projections ``P_h``, ``P_e`` and the cosine one. It hooks
  into the student's own forward, so under DDP the projections are used inside the wrapped
  module's `forward` and their gradients are synchronised like any other parameter.
- `install_heads`, `save_heads` and `load_heads_into` make any such heads module (this one, or the
  retrieval family's) a submodule of the student that is kept out of the saved student and written
  beside it as `distillation_heads.safetensors` + `distillation_heads.json`.
- `AttentionScoreRecorder` (defined in `hf_distill.attention`, one capture per architecture) records
  each layer's pre-softmax attention scores; `find_layer_list` (in `hf_distill.architecture`) finds
  the encoder's layers. Both are importable from here.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence, Union

import safetensors.torch
import torch
from torch import nn

from .architecture import find_layer_list
from .attention import AttentionScoreRecorder, find_query_key_modules
from .modeling import load_matching_state
from .runs import HEADS_ATTRIBUTE, HEADS_CONFIG_NAME, HEADS_WEIGHTS_NAME

LayerMap = Union[str, Sequence[int]]

__all__ = [
    "AttentionScoreRecorder", "DistillationHeads", "LayerMap", "find_layer_list", "find_query_key_modules",
    "install_heads", "load_heads_into", "parse_layer_map", "resolve_layer_map", "save_heads",
]


def parse_layer_map(layer_map: LayerMap) -> Union[str, list[int]]:
    """Normalises a layer map given as a name, a list, or a comma-separated string such as "2,4,6".

    Args:
        layer_map (`str` or `Sequence[int]`): `"uniform"`, `"last"`, a list of 1-based teacher
            layers, or such a list written as a comma-separated string.

    Returns:
        `str` or `list[int]`: `"uniform"`, `"last"`, or a list of ints.
    """
    if isinstance(layer_map, str):
        text = layer_map.strip().strip("[]")
        if text in ("uniform", "last"):
            return text
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(
                f"layer_map={layer_map!r} is not understood: use 'uniform', 'last', or a list of "
                "1-based teacher layers such as '2,4,6'."
            ) from None
    return [int(layer) for layer in layer_map]


def resolve_layer_map(layer_map: LayerMap, num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """Maps each student layer ``m = 1..M`` to a teacher layer ``g(m)`` (1-based, as in TinyBERT).

    - `"uniform"` (TinyBERT): ``g(m) = m · N / M``; needs ``N % M == 0``.
    - `"last"`: ``g(m) = N − M + m``, the teacher's top ``M`` layers.
    - a list of ``M`` teacher layers in ``1..N``, e.g. `[2, 4, 6]`.

    Args:
        layer_map (`str` or `Sequence[int]`): The map, see above.
        num_teacher_layers (`int`): ``N``.
        num_student_layers (`int`): ``M``.

    Returns:
        `list[int]`: ``[g(1), ..., g(M)]``.

    Raises:
        ValueError: When the map does not fit the two models, with the fix in the message.
    """
    n, m = num_teacher_layers, num_student_layers
    parsed = parse_layer_map(layer_map)
    if parsed == "uniform":
        if m > n or n % m != 0:
            raise ValueError(
                f"layer_map='uniform' needs the teacher's {n} layers to be a multiple of the student's {m}. "
                f"Use layer_map='last' or an explicit list of {m} teacher layers in 1..{n}."
            )
        return [k * n // m for k in range(1, m + 1)]
    if parsed == "last":
        if m > n:
            raise ValueError(f"layer_map='last' needs a student ({m} layers) no deeper than the teacher ({n}).")
        return [n - m + k for k in range(1, m + 1)]
    if len(parsed) != m:
        raise ValueError(
            f"layer_map lists {len(parsed)} teacher layers but the student has {m} layers: give one "
            f"teacher layer (1..{n}) per student layer."
        )
    out_of_range = [layer for layer in parsed if not 1 <= layer <= n]
    if out_of_range:
        raise ValueError(
            f"layer_map {parsed} has layers {out_of_range} out of range: teacher layers are numbered 1..{n} "
            "(0 is the embedding output, matched by embedding_weight)."
        )
    return parsed


def _projection(in_features: int, out_features: int) -> Optional[nn.Linear]:
    """A learned `nn.Linear(d_student, d_teacher)`, or `None` (identity) when the widths match."""
    return None if in_features == out_features else nn.Linear(in_features, out_features)


class DistillationHeads(nn.Module):
    """The learned projections from the student's width to the teacher's.

    ``P_h`` (hidden states; one shared across layers, as in the TinyBERT paper, or one per mapped
    layer), ``P_e`` (embedding output), ``P_c`` (the cosine loss's last hidden state) and ``P_p`` (the
    pooled loss's last hidden state) are each
    an `nn.Linear(d_student, d_teacher)`, created only when the widths differ and the loss that
    uses it is on; otherwise the identity.

    `attach(student)` registers a forward hook on the student so the projections run inside the
    student's own forward (and so inside DDP's): after each forward that returns hidden states,
    `projected` holds the projected tensors for the trainer's losses.

    Args:
        student_hidden_size (`int`): ``d_student``.
        teacher_hidden_size (`int`): ``d_teacher``.
        num_layers (`int`): Number of student layers ``M``.
        hidden (`bool`): Whether ``P_h`` is needed (hidden_weight > 0).
        embedding (`bool`): Whether ``P_e`` is needed (embedding_weight > 0).
        cosine (`bool`): Whether ``P_c`` is needed (cosine_weight > 0).
        per_layer (`bool`, defaults to `False`): One ``P_h`` per mapped layer instead of one shared.
        share_embedding (`bool`, defaults to `False`): Project the embedding output with the shared ``P_h``
            instead of its own ``P_e``, as TinyBERT's code does (one `fit_dense` for the embeddings and every
            layer). Needs `per_layer=False`.
        pooled (`bool`, defaults to `False`): Whether ``P_p`` is needed (pooled_weight > 0): it projects the last
            hidden state, which the pooled loss then averages over the real tokens.
    """

    def __init__(
        self,
        student_hidden_size: int,
        teacher_hidden_size: int,
        num_layers: int,
        hidden: bool,
        embedding: bool,
        cosine: bool,
        per_layer: bool = False,
        share_embedding: bool = False,
        pooled: bool = False,
    ):
        super().__init__()
        if share_embedding and per_layer:
            raise ValueError("share_embedding needs one shared hidden-state projection (per_layer=False).")
        self.student_hidden_size = student_hidden_size
        self.teacher_hidden_size = teacher_hidden_size
        self.num_layers = num_layers
        self.use_hidden, self.use_embedding, self.use_cosine = hidden, embedding, cosine
        self.per_layer = per_layer
        self.share_embedding = share_embedding
        d_s, d_t = student_hidden_size, teacher_hidden_size
        count = num_layers if per_layer else 1
        needs_hidden = hidden or (embedding and share_embedding)
        hidden_projections = [_projection(d_s, d_t) for _ in range(count)] if needs_hidden else []
        self.hidden = nn.ModuleList([p for p in hidden_projections if p is not None])
        self.embedding = _projection(d_s, d_t) if embedding and not share_embedding else None
        self.cosine = _projection(d_s, d_t) if cosine else None
        self.use_pooled = pooled
        self.pooled = _projection(d_s, d_t) if pooled else None
        self.active = False
        self.projected: dict[str, object] = {}
        self._handle = None

    def config_dict(self) -> dict:
        """What `from_config_dict` needs to rebuild these heads."""
        return {
            "student_hidden_size": self.student_hidden_size,
            "teacher_hidden_size": self.teacher_hidden_size,
            "num_layers": self.num_layers,
            "hidden": self.use_hidden,
            "embedding": self.use_embedding,
            "cosine": self.use_cosine,
            "per_layer": self.per_layer,
            "share_embedding": self.share_embedding,
            "pooled": self.use_pooled,
        }

    @property
    def has_parameters(self) -> bool:
        return any(True for _ in self.parameters())

    def _apply_hidden(self, index: int, tensor: torch.Tensor) -> torch.Tensor:
        if len(self.hidden) == 0:
            return tensor
        return self.hidden[index if self.per_layer else 0](tensor)

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> dict[str, object]:
        """Projects the student's hidden states.

        Args:
            hidden_states (`Sequence[torch.Tensor]`): The student's `hidden_states`: the embedding
                output then one tensor per layer.

        Returns:
            `dict`: `"hidden"` (list of ``M`` tensors for layers 1..M), `"embedding"`, `"cosine"` and
            `"pooled"` (projected last layer), each present only when its loss is on.
        """
        out: dict[str, object] = {}
        if self.use_hidden:
            out["hidden"] = [self._apply_hidden(i, h) for i, h in enumerate(hidden_states[1:])]
        if self.use_embedding:
            if self.share_embedding:
                out["embedding"] = self._apply_hidden(0, hidden_states[0])
            else:
                out["embedding"] = hidden_states[0] if self.embedding is None else self.embedding(hidden_states[0])
        if self.use_cosine:
            out["cosine"] = hidden_states[-1] if self.cosine is None else self.cosine(hidden_states[-1])
        if self.use_pooled:
            out["pooled"] = hidden_states[-1] if self.pooled is None else self.pooled(hidden_states[-1])
        return out

    def attach(self, student: nn.Module) -> None:
        """Runs these projections inside `student`'s forward (see the class docstring)."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = student.register_forward_hook(self._after_student_forward)

    def _after_student_forward(self, module, args, output):
        hidden_states = getattr(output, "hidden_states", None)
        if self.active and hidden_states is not None:
            self.projected = self(hidden_states)


def install_heads(student: nn.Module, heads: nn.Module, heads_path: Optional[str] = None) -> nn.Module:
    """Makes `heads` part of the student: loaded from `heads_path` if given, on the student's device
    and dtype, a submodule (so the optimizer, DDP and checkpoints see them) kept out of the saved
    student, and run from the student's forward (`heads.attach(student)`). Returns `heads`."""
    if heads_path:
        load_heads_into(heads, heads_path)
    heads.to(device=student.device, dtype=next(student.parameters()).dtype)
    if heads.has_parameters:
        student.add_module(HEADS_ATTRIBUTE, heads)
        student._keys_to_ignore_on_save = [f"{HEADS_ATTRIBUTE}.{key}" for key in heads.state_dict()]
    heads.attach(student)
    return heads


def save_heads(heads: nn.Module, output_dir: str) -> None:
    """Writes `distillation_heads.safetensors` and `distillation_heads.json` (`heads.config_dict()`) into `output_dir`."""
    os.makedirs(output_dir, exist_ok=True)
    tensors = {key: value.detach().contiguous().cpu() for key, value in heads.state_dict().items()}
    safetensors.torch.save_file(tensors, os.path.join(output_dir, HEADS_WEIGHTS_NAME), metadata={"format": "pt"})
    with open(os.path.join(output_dir, HEADS_CONFIG_NAME), "w") as file:
        json.dump(heads.config_dict(), file, indent=2)


def load_heads_into(heads: nn.Module, path: str) -> None:
    """Loads saved projection heads from a folder (or a `.safetensors` file) into `heads`.

    Raises:
        FileNotFoundError: When the folder has no heads file, instead of silently starting the
            projections from scratch.
        ValueError: When the saved heads do not fit (different widths, layers or losses).
    """
    file = path if path.endswith(".safetensors") else os.path.join(path, HEADS_WEIGHTS_NAME)
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"No projection heads at {file}: the student has learned projections that this folder does not hold. "
            f"Resume from a checkpoint written by a hf-distill trainer (it saves {HEADS_WEIGHTS_NAME}), or remove "
            "distillation_heads_path to start the projections from scratch."
        )
    state = load_matching_state(file, heads.state_dict(), "these projection heads belong to another run; check the "
                                "loss weights, projection and widths.")
    heads.load_state_dict(state)
