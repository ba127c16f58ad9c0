"""The head of a task: the one place that knows what a task type means for the pipeline.

As with ``tf.estimator``'s heads (``BinaryClassHead``, ``RegressionHead``, ``MultiClassHead``), a head
owns its task's label encoding (in the Transform graph), output layer, loss and metrics (Keras), serving
outputs and their check (ServingCheck), TFMA metrics specs and thresholds (Evaluator), and how its TFMA
metrics are read back (report). A subclass names its ``task_type`` and is registered by it.
"""

from __future__ import annotations

from typing import ClassVar, Dict, List, Mapping, Optional

import numpy as np
import tensorflow_model_analysis as tfma

from components.spec import Task, TaskType

OVERALL = tfma.SlicingSpec()  # thresholds gate the overall slice only; other slices are reported
EXAMPLE_COUNT = tfma.metrics.ExampleCount
EXAMPLE_COUNT_KEY = EXAMPLE_COUNT().name

_HEADS: Dict[TaskType, type] = {}


def head_for(task: Task) -> "Head":
    """The head of a task's type."""
    try:
        return _HEADS[task.type](task)
    except KeyError:
        raise ValueError(f"task {task.name!r}: no head for type {task.type.value!r}; heads: "
                         f"{sorted(t.value for t in _HEADS)} (one module per type in heads/).") from None


def value_of(metric: Optional[dict]) -> Optional[float]:
    """A number of TFMA's `load_eval_result` metrics (doubleValue, or a bounded value's value)."""
    if not metric:
        return None
    if "doubleValue" in metric:
        return float(metric["doubleValue"])
    if "boundedValue" in metric:
        return float(metric["boundedValue"]["value"])
    return None


class Head:
    """A task's head. Subclasses set ``task_type`` and implement the methods that raise here."""

    task_type: ClassVar[TaskType]
    activation: ClassVar[str] = "linear"
    # Uncertainty weighting (Kendall et al., 2018): a Gaussian likelihood weighs the loss by 1/(2 s^2),
    # a classification likelihood by 1/s^2.
    gaussian: ClassVar[bool] = False
    # The metric the report shows per task and slice, under this name (the decision's "metric").
    metric_title: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "task_type" in cls.__dict__:
            _HEADS[cls.task_type] = cls

    def __init__(self, task: Task):
        self.task = task

    @property
    def name(self) -> str:
        return self.task.output_name

    # -- Transform ------------------------------------------------------------------------------
    def encode_label(self, raw):
        """The label the model trains on, from the raw label column ([batch, 1], dense), in the Transform
        graph; TFMA reads the same label through the model's transform_features signature."""
        raise NotImplementedError

    # -- Keras ----------------------------------------------------------------------------------
    @property
    def units(self) -> int:
        return 1

    def output_layer(self):
        """The task's final layer: the head's units and activation, named after the task."""
        import tf_keras as keras

        return keras.layers.Dense(self.units, activation=self.activation, name=self.name)

    def loss(self):
        raise NotImplementedError

    def metrics(self) -> list:
        raise NotImplementedError

    # -- Serving --------------------------------------------------------------------------------
    def serving_outputs(self, output) -> dict:
        """The serving signature's outputs of this task, from the model's output."""
        return {self.name: output}

    def bad_rows(self, values: np.ndarray) -> np.ndarray:
        """Per example, whether the task's output (``[examples, units]``) is not what the head promises."""
        return ~np.isfinite(values).all(axis=1)

    promise: ClassVar[str] = "a finite value"  # what `bad_rows` checks, in words

    def serving_problem(self, outputs: Mapping[str, np.ndarray], count: int) -> Optional[str]:
        """What is wrong with this task's serving outputs for `count` raw examples, or None."""
        if self.name not in outputs:
            return f"no output {self.name!r} (outputs: {sorted(outputs)})"
        values = np.asarray(outputs[self.name]).reshape(count, -1)
        bad = self.bad_rows(values)
        if bad.any():
            return (f"{int(bad.sum())} of {count} examples did not get {self.promise} "
                    f"(first bad value: {values[bad][0].tolist()})")
        return None

    # -- TFMA -----------------------------------------------------------------------------------
    def metrics_specs(self) -> List[tfma.MetricsSpec]:
        """The Evaluator's metrics of this task, with the spec's thresholds on the overall slice."""
        raise NotImplementedError

    def slice_values(self, by_sub_key: Mapping[str, Mapping[str, dict]]) -> Dict[str, object]:
        """This task's numbers of one slice, from TFMA's `load_eval_result` metrics of its output
        (``{sub_key: {metric name: value}}``): the keys of `pipeline.reporting.report.SliceMetrics`
        the head fills (``metric``: the one under ``metric_title``; ``example_count``; ``extra``: any
        others by name)."""
        raise NotImplementedError

    def failure_text(self, failure: dict, values: Mapping[str, object]) -> str:
        """A threshold failure (``metric``, ``kind``, ``slice``, ``value``) in words; `values`: the slice's
        `slice_values`."""
        return f"{failure['metric']} {failure['kind']} failed on {failure['slice']}: {failure['value']:.4f}"

    def thresholds_set(self) -> bool:
        """Whether the spec gives this task a threshold (without one TFMA cannot bless the model)."""
        raise NotImplementedError


def overall(threshold: tfma.MetricThreshold) -> List[tfma.PerSliceMetricThreshold]:
    """`threshold` on the overall slice only."""
    return [tfma.PerSliceMetricThreshold(slicing_specs=[OVERALL], threshold=threshold)]


def auc_threshold(task: Task) -> List[tfma.PerSliceMetricThreshold]:
    """AUC >= ``min_auc`` and, against the last blessed model, a drop of at most ``max_auc_drop`` (TFX drops
    change thresholds on a first run, when there is no baseline), on the overall slice."""
    if task.min_auc is None and task.max_auc_drop is None:
        return []
    threshold = tfma.MetricThreshold()
    if task.min_auc is not None:
        threshold.value_threshold.lower_bound.value = task.min_auc
    if task.max_auc_drop is not None:
        threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
        threshold.change_threshold.absolute.value = -task.max_auc_drop
    return overall(threshold)
