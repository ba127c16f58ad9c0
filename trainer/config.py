"""Trainer hyper-parameters: one frozen dataclass, validated once, passed in custom_config."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping, Tuple


class Variant(str, enum.Enum):
    """Model architectures behind the same multi-head interface."""

    MMOE = "mmoe"  # Ma et al. 2018: shared experts, one gate per task
    OMOE = "omoe"  # one gate shared by all tasks
    SHARED_BOTTOM = "shared_bottom"  # one shared hidden layer, a tower per task
    SINGLE_TASK = "single_task"  # an independent network per task, trained together


class OptimizerName(str, enum.Enum):
    """Optimizer used for every variable group (each with its own learning rate)."""

    ADAM = "adam"
    SGD = "sgd"


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Model and training settings (the task list and learning rates come from the spec).

    Attributes:
      variant: architecture, see `Variant`.
      num_experts: experts of MMoE/OMoE.
      expert_units: width of each expert, of the shared bottom and of each
        single-task bottom.
      tower_units: hidden widths of each task tower (ReLU).
      embedding_dim: width of each categorical feature's embedding.
      shared_learning_rate: learning rate of everything that is not a task tower.
      optimizer: optimizer of every variable group, see `OptimizerName`.
      batch_size: examples per training step.
      epochs: train_steps are spread over this many epochs (progress and TensorBoard points).
      seed: seeds initialisers, shuffling and dropout.
    """

    variant: Variant = Variant.MMOE
    num_experts: int = 8
    expert_units: int = 16
    tower_units: Tuple[int, ...] = (8,)
    embedding_dim: int = 4
    shared_learning_rate: float = 1e-3
    optimizer: OptimizerName = OptimizerName.ADAM
    batch_size: int = 256
    epochs: int = 1
    seed: int = 42

    def __post_init__(self):
        try:
            object.__setattr__(self, "variant", Variant(self.variant))
        except ValueError:
            raise ValueError(
                f"TrainerConfig.variant: received {self.variant!r}, expected one of "
                f"{[v.value for v in Variant]}."
            ) from None
        try:
            object.__setattr__(self, "optimizer", OptimizerName(self.optimizer))
        except ValueError:
            raise ValueError(
                f"TrainerConfig.optimizer: received {self.optimizer!r}, expected one of "
                f"{[o.value for o in OptimizerName]}."
            ) from None
        object.__setattr__(self, "tower_units", tuple(self.tower_units))
        for name in ("num_experts", "expert_units", "embedding_dim", "batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"TrainerConfig.{name}: received {value!r}, expected a positive integer.")
        for units in self.tower_units:
            if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
                raise ValueError(
                    f"TrainerConfig.tower_units: received {list(self.tower_units)!r}, expected positive integers."
                )
        if not isinstance(self.shared_learning_rate, (int, float)) or self.shared_learning_rate <= 0:
            raise ValueError(
                f"TrainerConfig.shared_learning_rate: received {self.shared_learning_rate!r}, expected a positive number."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"TrainerConfig.seed: received {self.seed!r}, expected an integer.")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["variant"] = self.variant.value
        d["optimizer"] = self.optimizer.value
        d["tower_units"] = list(self.tower_units)
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "TrainerConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - fields
        if unknown:
            raise ValueError(f"TrainerConfig: unknown keys {sorted(unknown)}; expected some of {sorted(fields)}.")
        return cls(**raw)
