"""Training arguments of deep mutual learning and of self-distillation with early exits."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from ..config import DistillationConfigBase
from ..tasks.arguments import ModelArguments
from ..terms import MUTUAL_TERMS, SELF_DISTILLATION_TERMS, LossTerm

EXIT_CRITERIA = ("entropy", "max_prob")
EXIT_POOLINGS = ("first", "mean")


@dataclass
class MutualLearningConfig(DistillationConfigBase):
    r"""Configuration of [`MutualLearningTrainer`]: the loss of deep mutual learning.

    Declares only its own fields; every `TrainingArguments` field and the shared ones of
    `DistillationConfigBase` (schedule, `stop_on_nonfinite_loss`, ...) come from its base.

    Each peer ``i`` of ``K`` minimises ``task_weight·L_task(z_i, y) + kd_weight·L_mimic,i`` with
    ``L_mimic,i = 1/(K−1) Σ_{j≠i} T²·KL(softmax(z_j/T).detach() || softmax(z_i/T))``
    (`hf_distill.online.losses.mutual_learning_losses`); the trainer minimises the sum over peers,
    whose parameters are disjoint, so each peer gets exactly its own gradient. Trainer's
    `max_grad_norm` clips the norm of all peers' gradients together; set it to 0 to update the
    peers independently, as in the paper.

    Parameters:
        temperature (`float`, defaults to 1.0):
            Softmax temperature ``T`` of the mimicry term (this family's default: the DML paper uses plain
            KL, ``T = 1``).
        task_weight (`float`, defaults to 1.0):
            Weight of each peer's own loss from the labels (`outputs.loss`).
        kd_weight (`float`, defaults to 1.0):
            Weight of each peer's mimicry term (0 trains the peers side by side, independently).
    """

    TERMS: ClassVar[tuple[LossTerm, ...]] = MUTUAL_TERMS

    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature T of the mimicry KL (DML: 1)."})
    task_weight: float = field(default=1.0, metadata={"help": "Weight of each peer's loss from the labels."})
    kd_weight: float = field(default=1.0, metadata={"help": "Weight of each peer's mimicry term (KL to the other peers)."})


@dataclass
class SelfDistillationConfig(DistillationConfigBase):
    r"""Configuration of [`SelfDistillationTrainer`]: the loss of self-distillation and the early exits.

    Declares only its own fields; every `TrainingArguments` field and the shared ones of
    `DistillationConfigBase` (schedule, `stop_on_nonfinite_loss`, ...) come from its base.

    The loss of one batch, over exits ``k = 1..E`` (the last, ``E``, is the backbone's own head):

    ``task_weight·Σ_k CE(z_k, y) + kd_weight·Σ_{k<E} T²·KL(softmax(z_E/T).detach() || softmax(z_k/T))
    + hidden_weight·Σ_{k<E} MSE(P_k(h_k), h_E.detach())``

    (Zhang et al., 2019, "Be Your Own Teacher", sums the terms over the classifiers the same way;
    see `hf_distill.online.losses`). `kd_weight = hidden_weight = 0` trains every exit from the
    labels alone: the baseline without the deep exit's teaching.

    Parameters:
        temperature (`float`, defaults to 3.0):
            Softmax temperature ``T`` of the soft targets (this family's default: Be Your Own Teacher uses 3).
        task_weight (`float`, defaults to 1.0):
            Weight of every exit's cross-entropy with the labels.
        kd_weight (`float`, defaults to 1.0):
            Weight of the deep exit's soft targets for the shallow exits.
        hidden_weight (`float`, defaults to 0.0):
            Weight of the hidden-state hint: each shallow layer, through a learned linear projection,
            matches the deepest layer.
        exit_layers (`str` or `list[int]`, defaults to `"2,4"`):
            1-based encoder layers that get an exit head (e.g. `"2,4"`); the last layer always exits
            through the backbone's own classifier and need not be listed.
        exit_pooling (`str`, defaults to `"first"`):
            How each shallow exit reduces its layer to one vector: the `"first"` token (BERT's `[CLS]`,
            DeeBERT's exits) or the masked `"mean"` over tokens. Use `"mean"` for backbones pretrained
            with mean pooling (sentence-transformers such as all-MiniLM-L6-v2), whose first token carries
            little at shallow layers.
        exit_criterion (`str`, defaults to `"entropy"`):
            Early-exit rule at inference: `"entropy"` (leave when the prediction's entropy divided by
            ``log C`` is at most the threshold) or `"max_prob"` (leave when the top probability is
            at least the threshold).
        exit_thresholds (`str` or `list[float]`, *optional*):
            Thresholds of the speed/accuracy sweep run after training; defaults to
            `0.05,0.1,0.2,0.3,0.4,0.6` for entropy and `0.99,0.95,0.9,0.8,0.7,0.5` for max_prob (the
            full model, every layer, is always measured too).
        sweep_samples (`int`, *optional*, defaults to 200):
            Evaluation examples the sweep runs one at a time (batch 1); `None` runs all of them.
    """

    TERMS: ClassVar[tuple[LossTerm, ...]] = SELF_DISTILLATION_TERMS

    temperature: float = field(default=3.0, metadata={"help": "Softmax temperature T of the deep exit's soft targets."})
    task_weight: float = field(default=1.0, metadata={"help": "Weight of every exit's cross-entropy with the labels."})
    kd_weight: float = field(default=1.0, metadata={"help": "Weight of the deep exit's soft targets for shallow exits."})
    hidden_weight: float = field(
        default=0.0, metadata={"help": "Weight of the hint: shallow hidden states (projected) match the deepest layer."}
    )
    # Typed `str` so the command line takes "2,4"; Python and YAML may pass a list of ints.
    exit_layers: str = field(default="2,4", metadata={"help": "1-based layers with an exit head, e.g. '2,4'."})
    exit_pooling: str = field(
        default="first",
        metadata={"help": "Pooling of the shallow exits: 'first' token ([CLS]) or masked 'mean' over tokens.",
                  "choices": list(EXIT_POOLINGS)},
    )
    exit_criterion: str = field(
        default="entropy",
        metadata={"help": "Early-exit rule: 'entropy' (normalised, <= threshold) or 'max_prob' (>= threshold).",
                  "choices": list(EXIT_CRITERIA)},
    )
    exit_thresholds: Optional[str] = field(
        default=None, metadata={"help": "Thresholds of the speed/accuracy sweep, e.g. '0,0.1,0.2,0.4'."}
    )
    sweep_samples: Optional[int] = field(
        default=200,
        metadata={"help": "Evaluation examples the early-exit sweep runs one by one (None: all of them)."},
    )

    def _check_options(self) -> None:
        if self.exit_criterion not in EXIT_CRITERIA:
            raise ValueError(f"exit_criterion must be one of {EXIT_CRITERIA}, got {self.exit_criterion!r}.")
        if self.exit_pooling not in EXIT_POOLINGS:
            raise ValueError(f"exit_pooling must be one of {EXIT_POOLINGS}, got {self.exit_pooling!r}.")
        self.exit_layers = parse_int_list(self.exit_layers, "exit_layers")
        if not self.exit_layers or min(self.exit_layers) < 1:
            raise ValueError(f"exit_layers must be 1-based layer numbers such as '2,4', got {self.exit_layers!r}.")
        if self.exit_thresholds is not None:
            self.exit_thresholds = [float(v) for v in parse_list(self.exit_thresholds)]
        if self.sweep_samples is not None and self.sweep_samples < 1:
            raise ValueError(f"sweep_samples must be a positive number of examples (or None), got {self.sweep_samples}.")

    @property
    def sweep_thresholds(self) -> list[float]:
        """The thresholds of the speed/accuracy sweep (the given ones or the criterion's defaults)."""
        if self.exit_thresholds:
            return list(self.exit_thresholds)
        if self.exit_criterion == "entropy":
            return [0.05, 0.1, 0.2, 0.3, 0.4, 0.6]
        return [0.99, 0.95, 0.9, 0.8, 0.7, 0.5]


def parse_list(value: Any) -> list:
    """`"2,4"`, `"[2, 4]"`, `[2, 4]` or `2` as a list of items (strings or numbers)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (int, float)):
        return [value]
    return [part.strip() for part in str(value).strip("[]").split(",") if part.strip()]


def parse_int_list(value: Any, name: str) -> list[int]:
    try:
        return sorted({int(v) for v in parse_list(value)})
    except ValueError as error:
        raise ValueError(f"{name} must be integers such as '2,4', got {value!r}.") from error


@dataclass
class PeerArguments:
    """The peers of a deep-mutual-learning recipe.

    Parameters:
        peer_model_name_or_paths (`str`):
            Comma-separated models (paths or Hub ids), one per peer, e.g. `"a,b"`; one model for every
            peer when `peer_layers` lists several peers.
        peer_layers (`str`, *optional*):
            0-based layers of each peer's model to keep, peers separated by `;`, e.g. `"0,2,4;1,3,5"`
            (two 3-layer peers from one 6-layer model). Each peer keeps every layer when unset.
        tokenizer_name (`str`, *optional*):
            Tokenizer (shared by every peer); defaults to the first peer's.
        attn_implementation (`str`, defaults to `"eager"`):
            Attention implementation of the loaded models.
        trust_remote_code (`bool`, defaults to `False`):
            Allow model code from the Hub. Off unless you trust the repository.
        use_safetensors (`bool`, defaults to `True`):
            Load safetensors weights only.
    """

    peer_model_name_or_paths: Optional[str] = field(
        default=None, metadata={"help": "Comma-separated models, one per peer (or one for all peers with peer_layers)."}
    )
    peer_layers: Optional[str] = field(
        default=None, metadata={"help": "0-based layers kept by each peer, peers separated by ';', e.g. '0,2,4;1,3,5'."}
    )
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Tokenizer shared by the peers."})
    attn_implementation: str = field(default="eager", metadata={"help": "Attention implementation (eager, sdpa)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})
    use_safetensors: bool = field(default=True, metadata={"help": "Load safetensors weights only."})

    def peer_model_arguments(self) -> list[ModelArguments]:
        """One `ModelArguments` per peer.

        Raises:
            ValueError: When no model is given, or the number of models and of layer lists differ.
        """
        if not self.peer_model_name_or_paths:
            raise ValueError("Set peer_model_name_or_paths: the peers' models, comma-separated (e.g. 'a,b').")
        paths = [os.path.expanduser(p.strip()) for p in str(self.peer_model_name_or_paths).split(",") if p.strip()]
        layers = [part.strip() for part in self.peer_layers.split(";")] if self.peer_layers else [None] * len(paths)
        if len(paths) == 1 and len(layers) > 1:
            paths = paths * len(layers)
        if len(paths) != len(layers):
            raise ValueError(
                f"{len(paths)} peer models but {len(layers)} layer lists in peer_layers: give one model for all "
                "peers, or one model per layer list."
            )
        if len(paths) < 2:
            raise ValueError("Deep mutual learning needs two or more peers: list two models, or two layer lists.")
        return [
            ModelArguments(model_name_or_path=path, student_layers=layer or None,
                           attn_implementation=self.attn_implementation,
                           trust_remote_code=self.trust_remote_code, use_safetensors=self.use_safetensors)
            for path, layer in zip(paths, layers)
        ]
