"""Schedules for the temperature and the loss weights.

A schedule is declared as a mapping (in Python, YAML, or JSON on the command line), in one of two
forms.

Per value, each one `constant` or `linear` over the training steps:

```yaml
schedule:
  temperature: {type: linear, start: 4.0, end: 1.0}   # T from 4 at step 0 to 1 at the last step
  kd_weight: 0.5                                      # a number is a constant
```

Stages, by epoch (a value a stage does not name keeps the config's value):

```yaml
schedule:
  stages:
    - {epochs: 2, temperature: 2.0, kd_weight: 0.7}
    - {epochs: 2, temperature: 4.0, kd_weight: 0.5}
    - {epochs: 1, temperature: 6.0, kd_weight: 0.3}
```

A stage covers the epochs `[start, start + epochs)`; after the last stage the last one holds.
Linear values are ``start + (end − start) · step / max_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence


def _check_value(name: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"schedule: {where}{name} must be a number, got {value!r}.")
    if name == "temperature" and not value > 0:
        raise ValueError(f"schedule: {where}temperature must be > 0, got {value}.")
    if name != "temperature" and value < 0:
        raise ValueError(f"schedule: {where}{name} must be >= 0, got {value}.")
    return float(value)


def _check_name(name: str, where: str, schedulable: Sequence[str]) -> None:
    if name not in schedulable:
        raise ValueError(
            f"schedule: {where}unknown value {name!r} (values that do not apply to this config are refused); the "
            f"schedulable ones are {list(schedulable)}."
        )


@dataclass(frozen=True)
class _Linear:
    start: float
    end: float

    def at(self, fraction: float) -> float:
        return self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0)


class LossSchedule:
    """The temperature and loss weights as functions of training progress.

    Args:
        spec (`Mapping[str, Any]`): The schedule, in one of the forms of this module's docstring.
        base (`Mapping[str, float]`): The config's own values (`temperature` and the weight of each of
            its family's loss terms), used for whatever the schedule does not name. Its keys are the
            values a schedule may change.

    Raises:
        ValueError: When the schedule names an unknown value, has a bad type or range, or mixes
            the two forms. The message names the key.
    """

    def __init__(self, spec: Mapping[str, Any], base: Mapping[str, float]):
        if not isinstance(spec, Mapping) or not spec:
            raise ValueError(f"schedule must be a non-empty mapping, got {spec!r}.")
        self.schedulable = tuple(base)
        self.base = {name: float(value) for name, value in base.items()}
        self.stages: Optional[list[tuple[float, dict[str, float]]]] = None
        self.curves: dict[str, _Linear] = {}
        if "stages" in spec:
            if len(spec) > 1:
                raise ValueError("schedule: give either 'stages' or per-value schedules, not both.")
            self.stages = self._parse_stages(spec["stages"], self.schedulable)
        else:
            for name, value in spec.items():
                _check_name(name, "", self.schedulable)
                self.curves[name] = self._parse_curve(name, value)

    @staticmethod
    def _parse_curve(name: str, value: Any) -> _Linear:
        if not isinstance(value, Mapping):
            constant = _check_value(name, value, "")
            return _Linear(constant, constant)
        kind = value.get("type", "linear")
        expected = {"constant": {"type", "value"}, "linear": {"type", "start", "end"}}.get(kind)
        if expected is None:
            raise ValueError(f"schedule: {name} has type {kind!r}; use 'constant' or 'linear' (or 'stages').")
        if set(value) - expected or not (set(expected) - {"type"}) <= set(value):
            raise ValueError(f"schedule: {name} of type {kind!r} takes exactly {sorted(expected - {'type'})}, got "
                             f"{sorted(set(value) - {'type'})}.")
        if kind == "constant":
            constant = _check_value(name, value["value"], "")
            return _Linear(constant, constant)
        return _Linear(_check_value(name, value["start"], ""), _check_value(name, value["end"], ""))

    @staticmethod
    def _parse_stages(stages: Any, schedulable: Sequence[str]) -> list[tuple[float, dict[str, float]]]:
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ValueError("schedule: 'stages' must be a non-empty list of mappings with 'epochs'.")
        parsed, start = [], 0.0
        for index, stage in enumerate(stages):
            where = f"stage {index + 1}: "
            if not isinstance(stage, Mapping) or "epochs" not in stage:
                raise ValueError(f"schedule: {where}must be a mapping with 'epochs', got {stage!r}.")
            epochs = stage["epochs"]
            if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not epochs > 0:
                raise ValueError(f"schedule: {where}epochs must be a number > 0, got {epochs!r}.")
            values = {}
            for name, value in stage.items():
                if name != "epochs":
                    _check_name(name, where, schedulable)
                    values[name] = _check_value(name, value, where)
            parsed.append((start, values))
            start += float(epochs)
        return parsed

    def values_at(self, epoch: float, step: int, max_steps: int) -> dict[str, float]:
        """Every schedulable value at this point of training.

        Args:
            epoch (`float`): Epochs done so far (Trainer's `state.epoch`, fractional).
            step (`int`): Optimizer steps done so far.
            max_steps (`int`): Total optimizer steps of the run.

        Returns:
            `dict[str, float]`: `temperature` and every weight of the family.
        """
        values = dict(self.base)
        if self.stages is not None:
            current = self.stages[0][1]
            for start, stage_values in self.stages:
                if epoch + 1e-9 >= start:
                    current = stage_values
            values.update(current)
        else:
            fraction = step / max_steps if max_steps > 0 else 0.0
            values.update({name: curve.at(fraction) for name, curve in self.curves.items()})
        return values

    def max_values(self) -> dict[str, float]:
        """The largest value each weight ever takes: which losses, teachers and heads must exist."""
        values = dict(self.base)
        if self.stages is not None:
            for name in self.schedulable:
                stage_values = [stage.get(name, self.base[name]) for _, stage in self.stages]
                values[name] = max(stage_values)
        else:
            for name, curve in self.curves.items():
                values[name] = max(curve.start, curve.end)
        return values

    @property
    def names(self) -> list[str]:
        """The values this schedule changes (the ones to log)."""
        if self.stages is not None:
            return sorted({name for _, stage in self.stages for name in stage})
        return sorted(self.curves)
