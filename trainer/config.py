"""Trainer hyper-parameters: one frozen dataclass, validated once, passed in custom_config."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping, Tuple

from components.spec import build_dataclass


class Variant(str, enum.Enum):
    """Model architectures behind the same multi-head interface."""

    MMOE = "mmoe"  # Ma et al. 2018: shared experts, one gate per task
    OMOE = "omoe"  # one gate shared by all tasks
    SHARED_BOTTOM = "shared_bottom"  # one shared hidden layer, a tower per task
    SINGLE_TASK = "single_task"  # an independent network per task, trained together
    PLE = "ple"  # Tang et al. 2020: task-specific and shared experts, stacked CGC levels


class LossWeighting(str, enum.Enum):
    """How task losses are combined."""

    FIXED = "fixed"  # the spec's loss_weight per task
    UNCERTAINTY = "uncertainty"  # Kendall et al. 2018: a learned log-variance per task


class OptimizerName(str, enum.Enum):
    """Optimizer used for every variable group (each with its own learning rate)."""

    ADAM = "adam"
    SGD = "sgd"


class Distribution(str, enum.Enum):
    """The tf.distribute strategy of the Trainer (see `trainer.distribute`)."""

    AUTO = "auto"  # Mirrored over the local GPUs when there are 2+, else the default strategy
    MIRRORED = "mirrored"  # MirroredStrategy over `devices` (default: every local GPU)
    MULTI_WORKER = "multi_worker"  # MultiWorkerMirroredStrategy from TF_CONFIG
    ONE_DEVICE = "one_device"  # OneDeviceStrategy on devices[0] (default: the first GPU, else the CPU)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Model and training settings (the task list and learning rates come from the spec).

    Attributes:
      variant: architecture, see `Variant`.
      num_experts: experts of MMoE/OMoE; shared experts of each PLE level.
      task_experts: experts owned by each task in each PLE level.
      ple_levels: number of CGC extraction levels of PLE.
      expert_units: width of each expert (and of the bottoms when `bottom_units` is 0).
      bottom_units: width of the shared bottom (``shared_bottom``) and of each single-task bottom;
        0: `expert_units`. The paper's synthetic experiment matches parameter counts with it (113
        units against 8 experts of 16 on 100 inputs, section 5.1).
      tower_units: hidden widths of each task tower (ReLU).
      embedding_dim: width of each categorical feature's embedding.
      shared_learning_rate: learning rate of everything that is not a task tower.
      optimizer: optimizer of every variable group, see `OptimizerName`.
      batch_size: examples per replica per training step (the global batch is this
        times the replicas in sync).
      epochs: train_steps are spread over this many epochs (progress and TensorBoard points).
      train_epochs: 0: train `train_steps` steps; N: N passes over the train split instead (steps per
        epoch: the split's rows // the global batch; `train_steps` and `epochs` are then unused).
      early_stopping_patience: 0: never; N: stop once the eval split's loss has not improved for N
        epochs in a row and keep the weights of its best epoch.
      in_memory_max_mb: the train split is held in memory (gathered by shuffled row indices) when
        its files are at most this many MiB in all, else streamed from disk; 0 always streams.
      loss_weighting: see `LossWeighting`.
      prediction_inputs: ``{consumer_task: producer_task}``: the consumer's tower
        also reads the producer's prediction, through a stop-gradient.
      seed: seeds initialisers, shuffling and dropout.
      distribution: tf.distribute strategy, see `Distribution`.
      devices: devices of ``mirrored`` / ``one_device`` (e.g. ``["/gpu:0", "/gpu:1"]``); empty for the default.
    """

    variant: Variant = Variant.MMOE
    num_experts: int = 8
    task_experts: int = 2
    ple_levels: int = 1
    expert_units: int = 16
    bottom_units: int = 0
    tower_units: Tuple[int, ...] = (8,)
    embedding_dim: int = 4
    shared_learning_rate: float = 1e-3
    optimizer: OptimizerName = OptimizerName.ADAM
    batch_size: int = 256
    epochs: int = 1
    train_epochs: int = 0
    early_stopping_patience: int = 0
    in_memory_max_mb: int = 128
    loss_weighting: LossWeighting = LossWeighting.FIXED
    prediction_inputs: Tuple[Tuple[str, str], ...] = ()
    seed: int = 42
    distribution: Distribution = Distribution.AUTO
    devices: Tuple[str, ...] = ()

    def __post_init__(self):
        for name, enum_cls in (("variant", Variant), ("optimizer", OptimizerName),
                               ("loss_weighting", LossWeighting), ("distribution", Distribution)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum_cls(value))
            except ValueError:
                raise ValueError(
                    f"TrainerConfig.{name}: received {value!r}, expected one of {[m.value for m in enum_cls]}."
                ) from None
        pairs = self.prediction_inputs
        if isinstance(pairs, Mapping):
            pairs = tuple(pairs.items())
        pairs = tuple(tuple(p) for p in pairs)
        if any(len(p) != 2 or not all(isinstance(t, str) for t in p) for p in pairs):
            raise ValueError(
                f"TrainerConfig.prediction_inputs: received {self.prediction_inputs!r}, expected a mapping "
                "{consumer_task: producer_task}."
            )
        object.__setattr__(self, "prediction_inputs", pairs)
        object.__setattr__(self, "tower_units", tuple(self.tower_units))
        if isinstance(self.devices, str) or not all(isinstance(d, str) and d for d in self.devices):
            raise ValueError(f"TrainerConfig.devices: received {self.devices!r}, expected a list of device names "
                             "such as ['/gpu:0', '/gpu:1'].")
        object.__setattr__(self, "devices", tuple(self.devices))
        if self.devices and self.distribution not in (Distribution.MIRRORED, Distribution.ONE_DEVICE):
            raise ValueError(f"TrainerConfig.devices: received {list(self.devices)!r} with distribution="
                             f"{self.distribution.value!r}; devices apply to 'mirrored' and 'one_device' only.")
        for name in ("num_experts", "task_experts", "ple_levels", "expert_units", "embedding_dim", "batch_size",
                     "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"TrainerConfig.{name}: received {value!r}, expected a positive integer.")
        for name in ("bottom_units", "train_epochs", "early_stopping_patience", "in_memory_max_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainerConfig.{name}: received {value!r}, expected an integer >= 0.")
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

    @property
    def bottom_width(self) -> int:
        """The width of the shared and single-task bottoms (`bottom_units`, else `expert_units`)."""
        return self.bottom_units or self.expert_units

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["variant"] = self.variant.value
        d["optimizer"] = self.optimizer.value
        d["loss_weighting"] = self.loss_weighting.value
        d["distribution"] = self.distribution.value
        d["devices"] = list(self.devices)
        d["prediction_inputs"] = dict(self.prediction_inputs)
        d["tower_units"] = list(self.tower_units)
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "TrainerConfig":
        return build_dataclass(cls, raw, "TrainerConfig")
