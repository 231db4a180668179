"""Deep mutual learning (Zhang et al., 2018): peers that teach each other, with no pretrained teacher.

`MutualLearningModel` holds the peers in one module (so `Trainer`'s optimizer, DDP, mixed
precision and checkpoints cover every peer); `MutualLearningTrainer` adds each peer's mimicry
term to its task loss and evaluates every peer and their ensemble. Each peer is saved in
`<output_dir>/peer_<i>/` and loads with plain `AutoModelFor*.from_pretrained`.

```python
peers = [AutoModelForSequenceClassification.from_pretrained(path, num_labels=2) for path in (a, b)]
trainer = MutualLearningTrainer(model=MutualLearningModel(peers), args=MutualLearningConfig(output_dir="dml"),
                                train_dataset=train, eval_dataset=dev, compute_metrics=accuracy)
trainer.train()
trainer.save_model()  # dml/peer_0/, dml/peer_1/
```
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from transformers import EvalPrediction, PreTrainedModel

from ..checks import check_train_columns
from ..modeling import CompositeModel, load_saved_weights
from ..trainer import DistillationTrainerBase
from .config import MutualLearningConfig
from .losses import mutual_learning_losses

PEER_FOLDER = "peer_{}"
MUTUAL_CONFIG_NAME = "mutual_learning.json"


class MutualLearningModel(CompositeModel, nn.Module):
    """Two or more peer models in one module; `forward` runs every peer on the same batch.

    Args:
        peers (`Sequence[PreTrainedModel]`): The peers: same label space (`num_labels`, `id2label`),
            same tokenizer (`vocab_size`), any architectures and depths.

    Raises:
        ValueError: With fewer than two peers, or peers whose label spaces or vocabularies differ.
    """

    def __init__(self, peers: Sequence[PreTrainedModel]):
        super().__init__()
        peers = list(peers)
        if len(peers) < 2:
            raise ValueError(
                f"Deep mutual learning needs at least two peers, got {len(peers)}: pass two or more models "
                "(for one model alone, train it with DistillationTrainer and task_weight=1, kd_weight=0)."
            )
        first = peers[0].config
        for index, peer in enumerate(peers[1:], start=1):
            config = peer.config
            if getattr(config, "num_labels", None) != getattr(first, "num_labels", None) or dict(
                getattr(config, "id2label", {})
            ) != dict(getattr(first, "id2label", {})):
                raise ValueError(
                    f"Peer {index} has labels {dict(config.id2label)} but peer 0 has {dict(first.id2label)}: the "
                    "peers must predict the same labels in the same order (give them the same id2label/label2id)."
                )
            if getattr(config, "vocab_size", None) != getattr(first, "vocab_size", None):
                raise ValueError(
                    f"Peer {index} has vocab_size={config.vocab_size} but peer 0 has {first.vocab_size}: every peer "
                    "reads the same token ids, so they must share a tokenizer."
                )
        self.peers = nn.ModuleList(peers)
        self._input_names = [set(inspect.signature(peer.forward).parameters) for peer in peers]

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
    ) -> dict[str, tuple]:
        """Runs every peer (each gets the inputs its forward takes).

        Returns:
            `dict`: `logits` (one tensor per peer) and `losses` (each peer's own loss from `labels`,
            or `None`s without labels).
        """
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "labels": labels,
        }
        logits, peer_losses = [], []
        for peer, names in zip(self.peers, self._input_names):
            output = peer(**{k: v for k, v in given.items() if v is not None and k in names})
            logits.append(output.logits)
            peer_losses.append(getattr(output, "loss", None))
        return {"logits": tuple(logits), "losses": tuple(peer_losses)}

    def parts(self) -> dict[str, nn.Module]:
        """Each peer, by its folder `peer_<i>`."""
        return {PEER_FOLDER.format(index): peer for index, peer in enumerate(self.peers)}

    def save_parts(self, output_dir: str, processing_class: Any = None) -> None:
        """Writes each peer with `save_pretrained` (and the tokenizer) into `output_dir/peer_<i>/`."""
        for index, peer in enumerate(self.peers):
            folder = os.path.join(output_dir, PEER_FOLDER.format(index))
            peer.save_pretrained(folder, safe_serialization=True)
            if processing_class is not None:
                processing_class.save_pretrained(folder)
        with open(os.path.join(output_dir, MUTUAL_CONFIG_NAME), "w") as file:
            json.dump({"peers": [PEER_FOLDER.format(i) for i in range(len(self.peers))],
                       "architectures": [type(p).__name__ for p in self.peers]}, file, indent=2)

    def load_parts(self, folder: str) -> None:
        """Restores every peer's weights from a folder written by `save_parts` (a checkpoint)."""
        for index, peer in enumerate(self.peers):
            peer_folder = os.path.join(folder, PEER_FOLDER.format(index))
            if not os.path.isdir(peer_folder):
                raise FileNotFoundError(
                    f"No {PEER_FOLDER.format(index)} in {folder}: resume from a checkpoint written by "
                    f"MutualLearningTrainer with the same {len(self.peers)} peers."
                )
            load_saved_weights(peer, peer_folder)


def ensemble_logits(peer_logits: Sequence[np.ndarray]) -> np.ndarray:
    """The peers' ensemble: log of the mean softmax probability (classification), or the mean prediction.

    Regression heads (one output) average the predictions. The log keeps `argmax` and lets metrics
    that expect logits read the result.
    """
    stacked = np.stack([np.asarray(z, dtype=np.float64) for z in peer_logits])
    if stacked.shape[-1] == 1:
        return stacked.mean(0)
    shifted = stacked - stacked.max(-1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    return np.log(probs.mean(0))


def peer_metrics(compute_metrics: Callable[[EvalPrediction], dict]) -> Callable[[EvalPrediction], dict]:
    """Wraps a task's `compute_metrics` to score every peer (`peer<i>_<metric>`) and their ensemble (`ensemble_<metric>`)."""

    def compute(prediction: EvalPrediction) -> dict:
        logits = prediction.predictions
        logits = list(logits) if isinstance(logits, (tuple, list)) else [logits]
        metrics = {}
        for index, peer_logits in enumerate(logits):
            for key, value in compute_metrics(EvalPrediction(peer_logits, prediction.label_ids)).items():
                metrics[f"peer{index}_{key}"] = value
        for key, value in compute_metrics(EvalPrediction(ensemble_logits(logits), prediction.label_ids)).items():
            metrics[f"ensemble_{key}"] = value
        return metrics

    return compute


class MutualLearningTrainer(DistillationTrainerBase):
    """A `Trainer` for deep mutual learning: each peer learns from the labels and from the other peers.

    The loss of a batch is ``Σ_i [task_weight·L_task,i + kd_weight·L_kd,i]`` (see
    `MutualLearningConfig` and `losses.mutual_learning_losses`); the other peers' soft targets are
    detached, and the peers share no parameter, so each peer's gradient is its own loss's. Logged:
    `loss_task_peer<i>` and `loss_kd_peer<i>`. Evaluation reports `peer<i>_<metric>` for every
    peer and `ensemble_<metric>` for the mean of their probabilities.

    Args:
        model (`MutualLearningModel` or a list of `PreTrainedModel`): The peers.
        args (`MutualLearningConfig`): Training arguments and loss weights.
        compute_metrics (`Callable`, *optional*): A task's metric function for one model's logits;
            it is applied to every peer and to the ensemble.
        **kwargs: Every other `Trainer` argument, unchanged.
    """

    config_class = MutualLearningConfig
    family = "mutual"

    def __init__(
        self,
        model: Union[MutualLearningModel, Sequence[PreTrainedModel]],
        args: Optional[MutualLearningConfig] = None,
        compute_metrics: Optional[Callable[[EvalPrediction], dict]] = None,
        **kwargs: Any,
    ):
        if isinstance(model, (list, tuple)):
            model = MutualLearningModel(model)
        if not isinstance(model, MutualLearningModel):
            raise TypeError(
                f"MutualLearningTrainer needs model=MutualLearningModel([...peers]) or a list of peers, got "
                f"{type(model).__name__}."
            )
        super().__init__(
            model=model,
            args=args,
            compute_metrics=peer_metrics(compute_metrics) if compute_metrics is not None else None,
            **kwargs,
        )

    def _setup_student(self, model, args, train_dataset, processing_class=None) -> None:
        check_train_columns(train_dataset, args, needs_labels=self._max_weights["task_weight"] > 0,
                            why_labels="set task_weight=0 to train the peers on each other alone")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Runs every peer and sums each one's task and mimicry terms.

        Returns the total loss (and, with `return_outputs`, a dict of `peer<i>_logits` that
        evaluation gathers as one prediction per peer).
        """
        weights, temperature = self._current_values(model.training)
        outputs = model(**inputs)
        logits, peer_losses = outputs["logits"], outputs["losses"]
        terms: dict[str, torch.Tensor] = {}
        loss = logits[0].new_zeros((), dtype=torch.float32)
        if weights["task"] > 0:
            if any(value is None for value in peer_losses):
                raise ValueError("task_weight > 0 but the batch has no 'labels': add a labels column or set task_weight=0.")
            for index, value in enumerate(peer_losses):
                terms[f"task_peer{index}"] = value
                loss = loss + weights["task"] * value
        if weights["kd"] > 0:
            labels = inputs.get("labels")
            row_mask = None
            if logits[0].dim() == 3:  # token-level heads: the labelled tokens (or the real ones)
                row_mask = (labels != -100) if labels is not None else inputs.get("attention_mask")
            for index, value in enumerate(mutual_learning_losses(logits, temperature, row_mask)):
                terms[f"kd_peer{index}"] = value
                loss = loss + weights["kd"] * value
        self._record_terms(terms)
        if return_outputs:
            return loss, {f"peer{index}_logits": z for index, z in enumerate(logits)}
        return loss
