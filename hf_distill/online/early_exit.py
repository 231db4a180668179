"""Layer-wise self-distillation with early exits (Zhang et al., 2019, "Be Your Own Teacher"; DeeBERT's exits).

`EarlyExitModel` wraps a sequence classifier (the backbone) and adds a classifier head ("exit") on
chosen intermediate layers; the backbone's own classifier is the deepest exit.
`SelfDistillationTrainer` trains every exit from the labels, and the shallow exits also from the
deepest exit's detached soft targets (and optionally a hidden-state hint). At inference,
`early_exit_predict` runs the encoder layer by layer and lets each example leave at the first exit
whose prediction is confident enough, so the layers after the exit are really not computed.

Saved: the backbone alone (`save_pretrained`, loads as a plain `AutoModelForSequenceClassification`),
plus `early_exit_heads.safetensors` and `early_exit.json` beside it; `EarlyExitModel.from_pretrained`
loads both. Layer-by-layer inference needs a BERT-style layout (`embeddings`, `encoder.layer`,
`pooler`, `classifier`); training needs only `output_hidden_states`.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Optional, Sequence, Union

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForSequenceClassification, EvalPrediction, PreTrainedModel

from ..checks import check_train_columns
from ..compat import extended_attention_mask
from ..modeling import CompositeModel, load_matching_state, load_saved_weights
from ..trainer import DistillationTrainerBase
from .config import EXIT_CRITERIA, EXIT_POOLINGS, SelfDistillationConfig, parse_int_list
from .losses import exit_distillation_losses, exit_hidden_losses

EXIT_HEADS_WEIGHTS_NAME = "early_exit_heads.safetensors"
EXIT_CONFIG_NAME = "early_exit.json"
SWEEP_PLOT_NAME = "early_exit_curve.png"
SWEEP_RESULTS_NAME = "early_exit_curve.json"


class ExitHead(nn.Module):
    """A classifier on one layer's hidden states, shaped like BERT's pooler + classifier.

    ``logits = W_c · dropout(tanh(W_p · pool(h) + b_p)) + b_c``, where ``pool(h)`` is the first token's
    vector ``h[:, 0]`` (`"first"`, BERT's `[CLS]` pooling, as in DeeBERT's exits) or the mean over the
    real tokens ``Σ_t m_t h_t / Σ_t m_t`` with the attention mask ``m`` (`"mean"`, for backbones
    pretrained with mean pooling such as sentence-transformers' MiniLM).

    Args:
        hidden_size (`int`): Width of the hidden states.
        num_labels (`int`): Number of classes.
        dropout (`float`): Dropout before the classifier.
        pooling (`str`, defaults to `"first"`): `"first"` or `"mean"`.
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, pooling: str = "first"):
        super().__init__()
        if pooling not in EXIT_POOLINGS:
            raise ValueError(f"exit_pooling must be one of {EXIT_POOLINGS}, got {pooling!r}.")
        self.pooling = pooling
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def pool(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The one vector per row the head classifies, `(batch, hidden)`."""
        if self.pooling == "first":
            return hidden_states[:, 0]
        if attention_mask is None:
            return hidden_states.mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.classifier(self.dropout(torch.tanh(self.dense(self.pool(hidden_states, attention_mask)))))


def _num_layers(backbone: PreTrainedModel) -> int:
    return int(backbone.config.num_hidden_layers)


class EarlyExitModel(CompositeModel, nn.Module):
    """A sequence classifier with extra exits on intermediate layers.

    Args:
        backbone (`PreTrainedModel`): A `*ForSequenceClassification` model (classification, not
            regression); its own classifier is the deepest exit.
        exit_layers (`Sequence[int]`): 1-based encoder layers that get an exit head; the last layer
            is dropped from the list (it exits through the backbone's classifier).
        hidden_projection (`bool`, defaults to `False`): Adds one learned `Linear(d, d)` per shallow
            exit, mapping its layer's hidden states onto the deepest layer's (the hint loss).
        exit_pooling (`str`, defaults to `"first"`): How each shallow exit reduces its layer to one
            vector: `"first"` token (BERT's `[CLS]`) or masked `"mean"` over tokens (see `ExitHead`).
            The deepest exit is the backbone's own classifier and keeps the backbone's pooling.

    Raises:
        ValueError: For a regression head, exit layers outside ``1..L−1`` or an unknown pooling.
    """

    def __init__(self, backbone: PreTrainedModel, exit_layers: Sequence[int], hidden_projection: bool = False,
                 exit_pooling: str = "first"):
        super().__init__()
        config = backbone.config
        if not type(backbone).__name__.endswith("ForSequenceClassification"):
            raise ValueError(
                f"EarlyExitModel needs a *ForSequenceClassification backbone, got {type(backbone).__name__}: load it "
                "with AutoModelForSequenceClassification.from_pretrained(path, num_labels=...)."
            )
        if config.num_labels < 2 or config.problem_type == "regression":
            raise ValueError(
                "Early exits decide on the prediction's confidence, which needs classes: the backbone is a regression "
                f"head (num_labels={config.num_labels}). Use a classification task."
            )
        depth = _num_layers(backbone)
        layers = sorted({int(layer) for layer in exit_layers} - {depth})
        if not layers or layers[0] < 1 or layers[-1] > depth:
            raise ValueError(
                f"exit_layers must hold 1-based layers between 1 and {depth - 1} (the last layer, {depth}, exits through "
                f"the backbone's classifier), got {list(exit_layers)}."
            )
        self.backbone = backbone
        self.exit_layers = layers
        self.exit_pooling = exit_pooling
        self.num_layers = depth
        dropout = getattr(config, "classifier_dropout", None)
        dropout = config.hidden_dropout_prob if dropout is None else dropout
        self.exit_heads = nn.ModuleDict(
            {str(layer): ExitHead(config.hidden_size, config.num_labels, dropout, exit_pooling) for layer in layers}
        )
        pooler = getattr(backbone.base_model, "pooler", None)
        if pooler is not None and hasattr(pooler, "dense"):  # start each exit from the pretrained pooler
            for head in self.exit_heads.values():
                head.dense.load_state_dict(pooler.dense.state_dict())
        self.projections = (
            nn.ModuleDict({str(layer): nn.Linear(config.hidden_size, config.hidden_size) for layer in layers})
            if hidden_projection
            else None
        )
        self.to(device=backbone.device, dtype=next(backbone.parameters()).dtype)

    @property
    def all_exit_layers(self) -> list[int]:
        """Every exit, shallow to deep, the backbone's last layer included."""
        return [*self.exit_layers, self.num_layers]

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
    ) -> dict[str, Any]:
        """Runs the whole backbone once and every exit on its layer's hidden states.

        `labels` is accepted (so `Trainer` passes it and evaluation returns it) but the losses are
        the trainer's.

        Returns:
            `dict`: `exit_logits` (shallow to deep, the last is the backbone's), `projected` (each
            shallow layer's projected hidden states, when projections exist) and `deep_hidden` (the
            last layer's hidden states).
        """
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                 "position_ids": position_ids}
        output = self.backbone(**{k: v for k, v in given.items() if v is not None}, output_hidden_states=True)
        hidden = output.hidden_states  # hidden[0]: embeddings, hidden[l]: output of layer l
        logits = [self.exit_heads[str(layer)](hidden[layer], attention_mask) for layer in self.exit_layers]
        projected = None
        if self.projections is not None:
            projected = tuple(self.projections[str(layer)](hidden[layer]) for layer in self.exit_layers)
        return {"exit_logits": (*logits, output.logits), "projected": projected, "deep_hidden": hidden[-1]}

    # ------------------------------------------------------------------ saving and loading

    def config_dict(self) -> dict[str, Any]:
        return {
            "exit_layers": self.exit_layers,
            "num_layers": self.num_layers,
            "hidden_size": self.backbone.config.hidden_size,
            "num_labels": self.backbone.config.num_labels,
            "hidden_projection": self.projections is not None,
            "exit_pooling": self.exit_pooling,
        }

    def heads_state_dict(self) -> dict[str, torch.Tensor]:
        """The exit heads' (and projections') weights, without the backbone's."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def parts(self) -> dict[str, nn.Module]:
        """The backbone, saved in the run folder itself (its exit heads are a file beside it)."""
        return {"": self.backbone}

    def save_parts(self, output_dir: str, processing_class: Any = None) -> None:
        """Writes the backbone (`save_pretrained`, a plain model), then the exit heads in a file of their own."""
        self.backbone.save_pretrained(output_dir, safe_serialization=True)
        if processing_class is not None:
            processing_class.save_pretrained(output_dir)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.heads_state_dict().items()}
        safetensors.torch.save_file(tensors, os.path.join(output_dir, EXIT_HEADS_WEIGHTS_NAME), metadata={"format": "pt"})
        with open(os.path.join(output_dir, EXIT_CONFIG_NAME), "w") as file:
            json.dump(self.config_dict(), file, indent=2)

    def load_parts(self, folder: str) -> None:
        """Restores the backbone and the exit heads from a folder written by `save_parts` (a checkpoint)."""
        load_saved_weights(self.backbone, folder)
        self.load_heads(folder)

    def load_heads(self, folder: str) -> None:
        """Loads `early_exit_heads.safetensors` from `folder`; every key must fit.

        Raises:
            FileNotFoundError: When the folder has no exit heads (not silently starting them afresh).
            ValueError: When the saved heads belong to other exit layers or widths.
        """
        path = os.path.join(folder, EXIT_HEADS_WEIGHTS_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No exit heads at {path}: this folder holds a backbone without its early exits. Load it with "
                "AutoModelForSequenceClassification, or point to a folder written by SelfDistillationTrainer."
            )
        state = load_matching_state(path, self.heads_state_dict(), f"these exit heads do not fit this model's exits "
                                    f"{self.exit_layers}: use the same exit_layers, hidden_weight and backbone.")
        self.load_state_dict(state, strict=False)

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> "EarlyExitModel":
        """Loads a folder written by `save_parts`: the backbone, then its exit heads.

        Args:
            path (`str`): The folder.
            **kwargs: Passed to `AutoModelForSequenceClassification.from_pretrained`.
        """
        with open(os.path.join(path, EXIT_CONFIG_NAME)) as file:
            saved = json.load(file)
        backbone = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
        model = cls(backbone, saved["exit_layers"], hidden_projection=saved["hidden_projection"],
                    exit_pooling=saved.get("exit_pooling", "first"))
        model.load_heads(path)
        return model


# ---------------------------------------------------------------------- the exit rule


def exit_confidence(logits: torch.Tensor, criterion: str = "entropy") -> torch.Tensor:
    r"""The quantity the exit rule compares with the threshold, per row.

    - `"entropy"`: ``H(p) / log C = −Σ_c p_c log p_c / log C`` (0 = certain, 1 = uniform), with
      ``p = softmax(z)``;
    - `"max_prob"`: ``max_c p_c``.

    Args:
        logits (`torch.Tensor` of shape `(batch, C)`): One exit's logits.
        criterion (`str`, defaults to `"entropy"`): `"entropy"` or `"max_prob"`.

    Returns:
        `torch.Tensor` of shape `(batch,)`.
    """
    if criterion not in EXIT_CRITERIA:
        raise ValueError(f"criterion must be one of {EXIT_CRITERIA}, got {criterion!r}.")
    log_p = F.log_softmax(logits.float(), dim=-1)
    if criterion == "max_prob":
        return log_p.exp().max(-1).values
    return -(log_p.exp() * log_p).sum(-1) / math.log(logits.shape[-1])


def should_exit(logits: torch.Tensor, threshold: float, criterion: str = "entropy") -> torch.Tensor:
    """Whether each row leaves at this exit: normalised entropy ``≤ threshold``, or max probability ``≥ threshold``."""
    value = exit_confidence(logits, criterion)
    return value <= threshold if criterion == "entropy" else value >= threshold


def exit_decisions(exit_logits: Sequence[torch.Tensor], threshold: Optional[float], criterion: str = "entropy") -> torch.Tensor:
    """The exit each row takes: the first whose `should_exit` holds, else the last one.

    Args:
        exit_logits (`Sequence[torch.Tensor]`, each `(batch, C)`): Every exit's logits, shallow to deep.
        threshold (`float`, *optional*): The threshold; `None` never exits early.
        criterion (`str`, defaults to `"entropy"`): `"entropy"` or `"max_prob"`.

    Returns:
        `torch.LongTensor` of shape `(batch,)`: index into `exit_logits`.
    """
    last = len(exit_logits) - 1
    chosen = torch.full((exit_logits[0].shape[0],), last, dtype=torch.long, device=exit_logits[0].device)
    if threshold is None:
        return chosen
    undecided = torch.ones_like(chosen, dtype=torch.bool)
    for index, logits in enumerate(exit_logits[:-1]):
        leaving = undecided & should_exit(logits, threshold, criterion)
        chosen[leaving] = index
        undecided &= ~leaving
    return chosen


# ---------------------------------------------------------------------- early-exit inference


def _check_layerwise(model: EarlyExitModel) -> tuple[nn.Module, nn.Module]:
    base = model.backbone.base_model
    ok = (
        hasattr(base, "embeddings")
        and hasattr(getattr(base, "encoder", None), "layer")
        and getattr(base, "pooler", None) is not None
        and hasattr(model.backbone, "classifier")
    )
    if not ok:
        raise ValueError(
            f"Layer-by-layer early exit needs a BERT-style backbone (embeddings, encoder.layer, pooler, classifier); "
            f"{type(model.backbone).__name__} is laid out otherwise. Its exits can still be trained and evaluated "
            "with a full forward (per-exit accuracy)."
        )
    return base, model.backbone


@torch.no_grad()
def early_exit_predict(
    model: EarlyExitModel,
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor] = None,
    token_type_ids: Optional[torch.Tensor] = None,
    threshold: Optional[float] = None,
    criterion: str = "entropy",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicts with early exits, computing only the layers each example needs.

    The encoder runs layer by layer; after each exit layer, the rows whose exit passes the rule
    (`should_exit`) take that exit's logits and leave the batch, and the layers after it run on
    the remaining rows only. A row that reaches the last layer takes the backbone's classifier.
    The model must be in eval mode.

    Args:
        model (`EarlyExitModel`): A BERT-style backbone with its exits.
        input_ids (`torch.Tensor` of shape `(batch, seq)`): Token ids.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens.
        token_type_ids (`torch.Tensor` of shape `(batch, seq)`, *optional*): Segment ids.
        threshold (`float`, *optional*): The exit threshold; `None` runs every layer.
        criterion (`str`, defaults to `"entropy"`): `"entropy"` or `"max_prob"`.

    Returns:
        `tuple`: the logits `(batch, C)` and the number of layers each row used `(batch,)`.
    """
    base, backbone = _check_layerwise(model)
    batch = input_ids.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    hidden = base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    logits = torch.empty(batch, backbone.config.num_labels, device=input_ids.device)
    layers_used = torch.full((batch,), model.num_layers, dtype=torch.long, device=input_ids.device)
    active = torch.arange(batch, device=input_ids.device)
    mask = attention_mask
    for depth, layer in enumerate(base.encoder.layer, start=1):
        extended = extended_attention_mask(mask, hidden.dtype)
        output = layer(hidden, attention_mask=extended)
        hidden = output[0] if isinstance(output, tuple) else output
        if depth == model.num_layers:
            logits[active] = backbone.classifier(backbone.dropout(base.pooler(hidden))).float()
            break
        if threshold is None or str(depth) not in model.exit_heads:
            continue
        exit_logits = model.exit_heads[str(depth)](hidden, mask)
        leaving = should_exit(exit_logits, threshold, criterion)
        if leaving.any():
            logits[active[leaving]] = exit_logits[leaving].float()
            layers_used[active[leaving]] = depth
            staying = ~leaving
            active, hidden, mask = active[staying], hidden[staying], mask[staying]
            if active.numel() == 0:
                break
    return logits, layers_used


def _example_tensors(example: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    return {
        key: torch.tensor([example[key]], device=device)
        for key in ("input_ids", "attention_mask", "token_type_ids")
        if key in example
    }


def early_exit_sweep(
    model: EarlyExitModel,
    dataset: Any,
    thresholds: Sequence[float],
    criterion: str = "entropy",
    num_threads: Optional[int] = 1,
) -> list[dict[str, Any]]:
    """Accuracy, layers used and wall time per example for each threshold, one example at a time.

    Each example runs alone (batch 1, no padding) through `early_exit_predict`, as a request would
    at serving time, once per threshold; the thresholds take turns on each example (in a rotating
    order), so a change of machine load during the sweep falls on all of them alike. The first row
    (`threshold=None`) runs every layer: the full model.

    Args:
        model (`EarlyExitModel`): The trained model.
        dataset: Tokenized examples with `input_ids` (and `attention_mask`, `token_type_ids`) and
            `labels` (or `label`).
        thresholds (`Sequence[float]`): The thresholds to measure.
        criterion (`str`, defaults to `"entropy"`): `"entropy"` or `"max_prob"`.
        num_threads (`int`, *optional*, defaults to 1): `torch.set_num_threads` during the sweep (one
            request per core is how batch-1 serving runs; `None` keeps the current setting).

    Returns:
        `list[dict]`: Per threshold: `threshold`, `accuracy`, `mean_layers`, `ms_per_example` (mean),
        `median_ms`, `speedup_layers` (``L / mean_layers``) and `exit_fractions` (share of examples
        per exit).
    """
    was_training = model.training
    model.eval()
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    device = next(model.parameters()).device
    label_key = "labels" if "labels" in dataset.column_names else "label"
    settings = [None, *thresholds]
    predictions = [[] for _ in settings]
    layers = [[] for _ in settings]
    times = [[] for _ in settings]
    labels = []
    try:
        for index in range(len(dataset)):
            example = dataset[index]
            labels.append(int(example[label_key]))
            tensors = _example_tensors(example, device)
            for turn in range(len(settings)):
                setting = (index + turn) % len(settings)
                start = time.perf_counter()
                logits, used = early_exit_predict(model, **tensors, threshold=settings[setting], criterion=criterion)
                times[setting].append(time.perf_counter() - start)
                predictions[setting].append(int(logits.argmax(-1)))
                layers[setting].append(int(used))
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    labels_tensor = torch.tensor(labels)
    rows = []
    for setting, threshold in enumerate(settings):
        used = torch.tensor(layers[setting], dtype=torch.float)
        elapsed = torch.tensor(times[setting], dtype=torch.float64)
        mean_layers = float(used.mean())
        rows.append({
            "threshold": threshold,
            "accuracy": float((torch.tensor(predictions[setting]) == labels_tensor).float().mean()),
            "mean_layers": mean_layers,
            "ms_per_example": 1000.0 * float(elapsed.mean()),
            "median_ms": 1000.0 * float(elapsed.median()),
            "speedup_layers": model.num_layers / mean_layers,
            "exit_fractions": {str(layer): float((used == layer).float().mean()) for layer in model.all_exit_layers},
        })
    return rows


def format_sweep_table(rows: Sequence[dict[str, Any]], criterion: str = "entropy") -> str:
    """The sweep as a Markdown table (one row per threshold; `full` runs every layer)."""
    layers = list(rows[0]["exit_fractions"])
    header = f"| {criterion} threshold | accuracy | mean layers | ms / example (mean) | median ms | " + " | ".join(
        f"exit @{layer}" for layer in layers) + " |"
    lines = [header, "|" + "---|" * (5 + len(layers))]
    for row in rows:
        name = "full" if row["threshold"] is None else f"{row['threshold']:g}"
        fractions = " | ".join(f"{100 * row['exit_fractions'][layer]:.0f}%" for layer in layers)
        lines.append(f"| {name} | {100 * row['accuracy']:.2f} | {row['mean_layers']:.2f} | "
                     f"{row['ms_per_example']:.2f} | {row['median_ms']:.2f} | {fractions} |")
    return "\n".join(lines)


def plot_sweep(
    rows: Sequence[dict[str, Any]], path: str, title: str = "Early exit: speed vs accuracy"
) -> Optional[str]:
    """Draws accuracy against mean layers used and mean wall time per example (matplotlib, Agg backend).

    The mean, not the median, is what sets throughput: with early exits the per-example times are
    bimodal (short for examples that leave early, long for the rest), and their median jumps between
    the two groups. matplotlib is an optional dependency (`pip install hf-distill[plots]`): without
    it no plot is drawn and a note says so; the table and `early_exit_sweep.json` hold the same numbers.

    Returns:
        `str` or `None`: The path of the PNG written, or `None` without matplotlib.
    """
    try:
        import matplotlib
    except ImportError:
        print("hf-distill: matplotlib is not installed, so no sweep plot is drawn (pip install 'hf-distill[plots]').")
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, label in ((axes[0], "mean_layers", "mean layers used"), (axes[1], "ms_per_example",
                                                                          "mean wall time per example (ms)")):
        ordered = sorted(rows, key=lambda row: row[key])
        xs = [row[key] for row in ordered]
        ys = [100 * row["accuracy"] for row in ordered]
        axis.plot(xs, ys, marker="o")
        for row, x, y in zip(ordered, xs, ys):
            axis.annotate("full" if row["threshold"] is None else f"{row['threshold']:g}", (x, y),
                          textcoords="offset points", xytext=(4, 4), fontsize=8)
        axis.set_xlabel(label)
        axis.set_ylabel("accuracy (%)")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# ---------------------------------------------------------------------- training


def exit_metrics(compute_metrics: Callable[[EvalPrediction], dict], exit_layers: Sequence[int]):
    """Wraps a task's `compute_metrics` to score every exit (`exit<layer>_<metric>`)."""

    def compute(prediction: EvalPrediction) -> dict:
        logits = prediction.predictions
        logits = list(logits) if isinstance(logits, (tuple, list)) else [logits]
        metrics = {}
        for layer, exit_logits in zip(exit_layers, logits):
            for key, value in compute_metrics(EvalPrediction(exit_logits, prediction.label_ids)).items():
                metrics[f"exit{layer}_{key}"] = value
        return metrics

    return compute


class SelfDistillationTrainer(DistillationTrainerBase):
    """A `Trainer` for layer-wise self-distillation: the deepest exit teaches the shallow ones.

    The loss is `SelfDistillationConfig`'s: every exit's cross-entropy with the labels, the
    shallow exits' ``T²·KL`` to the deepest exit's detached soft targets, and optionally the
    hidden-state hint. Logged per exit: `loss_task_exit<l>`, `loss_kd_exit<l>`,
    `loss_hidden_exit<l>`. Evaluation reports `exit<l>_<metric>` for every exit.

    Args:
        model (`EarlyExitModel` or `PreTrainedModel`): The model with its exits, or a backbone that
            gets exits at `args.exit_layers` (with projections when `hidden_weight > 0`).
        args (`SelfDistillationConfig`): Training arguments, loss weights and exits.
        compute_metrics (`Callable`, *optional*): A task's metric function for one exit's logits.
        **kwargs: Every other `Trainer` argument, unchanged.
    """

    config_class = SelfDistillationConfig
    family = "self_distillation"

    def __init__(
        self,
        model: Union[EarlyExitModel, PreTrainedModel],
        args: Optional[SelfDistillationConfig] = None,
        compute_metrics: Optional[Callable[[EvalPrediction], dict]] = None,
        **kwargs: Any,
    ):
        args = args if args is not None else SelfDistillationConfig(output_dir="trainer_output")
        if isinstance(model, PreTrainedModel) and isinstance(args, SelfDistillationConfig):
            model = EarlyExitModel(model, args.exit_layers, hidden_projection=args.max_loss_weights["hidden_weight"] > 0,
                                   exit_pooling=args.exit_pooling)
        if not isinstance(model, EarlyExitModel) and isinstance(args, SelfDistillationConfig):
            raise TypeError(f"SelfDistillationTrainer needs an EarlyExitModel or a backbone, got {type(model).__name__}.")
        super().__init__(
            model=model,
            args=args,
            compute_metrics=exit_metrics(compute_metrics, model.all_exit_layers)
            if compute_metrics and isinstance(model, EarlyExitModel) else compute_metrics,
            **kwargs,
        )

    def _setup_student(self, model, args, train_dataset, processing_class=None) -> None:
        if model.exit_pooling != args.exit_pooling:
            raise ValueError(
                f"The EarlyExitModel pools its exits with {model.exit_pooling!r} but args.exit_pooling is "
                f"{args.exit_pooling!r}: build it with exit_pooling={args.exit_pooling!r}, or pass the backbone alone."
            )
        if self._max_weights["hidden_weight"] > 0 and model.projections is None:
            raise ValueError("hidden_weight > 0 needs projections: build EarlyExitModel(..., hidden_projection=True).")
        check_train_columns(train_dataset, args, needs_labels=self._max_weights["task_weight"] > 0,
                            why_labels="every exit learns from the labels")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Runs the backbone and its exits once and sums the weighted terms of every exit.

        Returns the total loss (and, with `return_outputs`, a dict of `exit<l>_logits`).
        """
        weights, temperature = self._current_values(model.training)
        outputs = model(**inputs)
        exit_logits = outputs["exit_logits"]
        layers = self.accelerator.unwrap_model(model).all_exit_layers
        labels = inputs.get("labels")
        terms: dict[str, torch.Tensor] = {}
        weighted = []
        if weights["task"] > 0:
            if labels is None:
                raise ValueError("task_weight > 0 but the batch has no 'labels'.")
            for layer, logits in zip(layers, exit_logits):
                terms[f"task_exit{layer}"] = F.cross_entropy(logits.float(), labels)
                weighted.append(weights["task"] * terms[f"task_exit{layer}"])
        if weights["kd"] > 0:
            for layer, value in zip(layers, exit_distillation_losses(exit_logits, temperature)):
                terms[f"kd_exit{layer}"] = value
                weighted.append(weights["kd"] * value)
        if weights["hidden"] > 0:
            hint = exit_hidden_losses(outputs["projected"], outputs["deep_hidden"], inputs.get("attention_mask"))
            for layer, value in zip(layers, hint):
                terms[f"hidden_exit{layer}"] = value
                weighted.append(weights["hidden"] * value)
        loss = torch.stack(weighted).sum() if weighted else exit_logits[-1].sum() * 0.0
        self._record_terms(terms)
        if return_outputs:
            return loss, {f"exit{layer}_logits": logits for layer, logits in zip(layers, exit_logits)}
        return loss
