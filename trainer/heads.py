"""Estimator-style heads: one per task type, owning loss, metrics, activation and export.

As with ``tf.estimator`` multi-head, a task is fully described by its head:
adding a task to the spec adds a head; nothing else in the model changes.
"""

from __future__ import annotations

import dataclasses

import tf_keras as keras

from components.spec import Task, TaskType


@dataclasses.dataclass(frozen=True)
class Head:
    """The per-task part of a multi-task model that is not a layer of the tower."""

    task: Task

    activation = None

    @property
    def name(self) -> str:
        return self.task.output_name

    def output_layer(self) -> keras.layers.Layer:
        """The final layer of the task: one unit, the head's activation, named after the task."""
        return keras.layers.Dense(1, activation=self.activation, name=self.name)

    def loss(self) -> keras.losses.Loss:
        raise NotImplementedError

    def metrics(self) -> list:
        raise NotImplementedError


class BinaryClassificationHead(Head):
    """Sigmoid probability, binary cross-entropy, AUC (ROC and PR)."""

    activation = "sigmoid"

    def loss(self):
        return keras.losses.BinaryCrossentropy(name=f"{self.name}_loss")

    def metrics(self):
        # Named apart from TFMA's own "auc"/"auc_precision_recall", which the Evaluator computes.
        return [keras.metrics.AUC(name="roc_auc"), keras.metrics.AUC(curve="PR", name="pr_auc")]


class RegressionHead(Head):
    """Linear output, mean squared error, RMSE."""

    activation = "linear"

    def loss(self):
        return keras.losses.MeanSquaredError(name=f"{self.name}_loss")

    def metrics(self):
        return [keras.metrics.RootMeanSquaredError(name="rmse")]


_HEADS = {TaskType.BINARY: BinaryClassificationHead, TaskType.REGRESSION: RegressionHead}


def head_for(task: Task) -> Head:
    """The head of a task's type."""
    return _HEADS[task.type](task)
