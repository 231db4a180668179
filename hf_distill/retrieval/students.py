"""Building a smaller dual-encoder student from a `CLIPModel` teacher.

- `create_clip_student`: a smaller `CLIPModel`. Per tower, either evenly spaced teacher layers
  copied at the teacher's width (DistilBERT-style, `vision_layers` / `text_layers`), or a narrower,
  randomly initialised tower (`vision_hidden_size` / `text_hidden_size` with a layer count). The
  embedding width (`projection_dim`) may differ from the teacher's; the embedding-matching loss
  then goes through a learned projection (`RetrievalHeads`).
- `create_text_student`: the text-only case. The student shares the teacher's image tower and
  visual projection (copied, then frozen: `requires_grad=False`, so no optimizer updates it), and
  gets a smaller text tower trained into the teacher's embedding space.
"""

from __future__ import annotations

import copy
from typing import Optional, Union

from torch import nn
from transformers import CLIPConfig, CLIPModel

from ..students import uniform_layer_selection

TOWERS = {"vision": ("vision_config", "vision_model"), "text": ("text_config", "text_model")}
FROZEN_PREFIXES = ("vision_model.", "visual_projection.")


def _check_clip(teacher: nn.Module) -> None:
    if not isinstance(teacher, CLIPModel):
        raise TypeError(
            f"create_clip_student needs a CLIPModel teacher, got {type(teacher).__name__}. For other dual encoders "
            "(e.g. VisionTextDualEncoderModel), build the student yourself and pass it to the trainer."
        )


def _tower_layers(spec: Union[None, int, list[int]], num_teacher_layers: int) -> Optional[list[int]]:
    if spec is None:
        return None
    if isinstance(spec, int):
        return uniform_layer_selection(num_teacher_layers, spec)
    layers = [int(layer) for layer in spec]
    if not layers or len(set(layers)) != len(layers) or not all(0 <= layer < num_teacher_layers for layer in layers):
        raise ValueError(
            f"Layers {layers} must be distinct 0-based indices of the teacher tower's {num_teacher_layers} layers."
        )
    return layers


def create_clip_student(
    teacher: CLIPModel,
    vision_layers: Union[None, int, list[int]] = None,
    text_layers: Union[None, int, list[int]] = None,
    vision_hidden_size: Optional[int] = None,
    text_hidden_size: Optional[int] = None,
    projection_dim: Optional[int] = None,
) -> CLIPModel:
    """A smaller `CLIPModel` built from the teacher.

    Per tower (`vision`, `text`):

    - `*_layers` alone (a count, or 0-based teacher layers): the tower keeps the teacher's width
      and copies those layers, its embeddings and final layer norm (a count picks evenly spaced
      layers, first and last included, as `create_student`);
    - `*_hidden_size` with `*_layers` as a count: a narrower tower, randomly initialised, with
      ``4 × hidden`` feed-forward width and the teacher's head size when it divides;
    - neither: the teacher's tower, copied.

    The projections (`visual_projection`, `text_projection`) and `logit_scale` are copied when
    their shapes still fit (same tower widths and `projection_dim`), otherwise new.

    Args:
        teacher (`CLIPModel`): The teacher.
        vision_layers, text_layers (`int` or `list[int]`, *optional*): See above.
        vision_hidden_size, text_hidden_size (`int`, *optional*): Width of a narrower tower.
        projection_dim (`int`, *optional*): Width of the shared embedding space, default the teacher's.

    Returns:
        `CLIPModel`: The student, in training mode.
    """
    _check_clip(teacher)
    config = copy.deepcopy(teacher.config)
    specs = {"vision": (vision_layers, vision_hidden_size), "text": (text_layers, text_hidden_size)}
    copied: dict[str, Optional[list[int]]] = {}
    for tower, (layers, hidden_size) in specs.items():
        tower_config = getattr(config, TOWERS[tower][0])
        n = tower_config.num_hidden_layers
        if hidden_size is not None:
            if not isinstance(layers, int):
                raise ValueError(
                    f"{tower}_hidden_size={hidden_size} builds a new, narrower {tower} tower: give its depth as "
                    f"{tower}_layers=<count>, not a list of teacher layers."
                )
            head_dim = tower_config.hidden_size // tower_config.num_attention_heads
            heads = max(1, hidden_size // head_dim) if hidden_size % head_dim == 0 else tower_config.num_attention_heads
            if hidden_size % heads != 0:
                raise ValueError(f"{tower}_hidden_size={hidden_size} is not divisible into attention heads ({heads}).")
            tower_config.hidden_size = hidden_size
            tower_config.num_attention_heads = heads
            tower_config.intermediate_size = 4 * hidden_size
            tower_config.num_hidden_layers = layers
            copied[tower] = None
        else:
            selection = _tower_layers(layers, n) if layers is not None else list(range(n))
            tower_config.num_hidden_layers = len(selection)
            copied[tower] = selection
    if projection_dim is not None:
        config.projection_dim = projection_dim
        config.text_config.projection_dim = projection_dim
        config.vision_config.projection_dim = projection_dim
    student = CLIPModel(config)
    student.load_state_dict(_copyable_weights(teacher, student, copied), strict=False)
    student.to(dtype=teacher.dtype)
    student.train()
    return student


def _copyable_weights(teacher: CLIPModel, student: CLIPModel, copied: dict[str, Optional[list[int]]]) -> dict:
    """The teacher's tensors renamed to the student's layers, for the towers that keep the teacher's width."""
    target = student.state_dict()
    state = {}
    for key, value in teacher.state_dict().items():
        tower = next((name for name, (_, prefix) in TOWERS.items() if key.startswith(prefix + ".")), None)
        new_key = key
        if tower is not None:
            selection = copied[tower]
            if selection is None:
                continue
            prefix = f"{TOWERS[tower][1]}.encoder.layers."
            if key.startswith(prefix):
                index, rest = key[len(prefix):].split(".", 1)
                if int(index) not in selection:
                    continue
                new_key = f"{prefix}{selection.index(int(index))}.{rest}"
        if new_key in target and target[new_key].shape == value.shape:
            state[new_key] = value.clone()
    return state


def create_text_student(
    teacher: CLIPModel,
    text_layers: Union[None, int, list[int]] = None,
    text_hidden_size: Optional[int] = None,
) -> CLIPModel:
    """The text-only case: a smaller text tower trained against the teacher's frozen image tower.

    The student is a `CLIPModel` whose `vision_model` and `visual_projection` are the teacher's
    (copied) and frozen; its text tower is smaller (see `create_clip_student`), and its
    `projection_dim` is the teacher's, so its text embeddings live in the teacher's image space.

    Args:
        teacher (`CLIPModel`): The teacher.
        text_layers (`int` or `list[int]`, *optional*): Teacher text layers to keep, or the depth of
            a narrower tower.
        text_hidden_size (`int`, *optional*): Width of a narrower text tower.

    Returns:
        `CLIPModel`: The student; `freeze_image_tower` has been applied.
    """
    student = create_clip_student(teacher, text_layers=text_layers, text_hidden_size=text_hidden_size)
    freeze_image_tower(student)
    return student


def freeze_image_tower(model: CLIPModel) -> list[str]:
    """Sets `requires_grad=False` on the image tower and its projection; returns the frozen names."""
    frozen = []
    for name, parameter in model.named_parameters():
        if name.startswith(FROZEN_PREFIXES):
            parameter.requires_grad_(False)
            frozen.append(name)
    if not frozen:
        raise ValueError(f"{type(model).__name__} has no vision_model/visual_projection to freeze.")
    return frozen
