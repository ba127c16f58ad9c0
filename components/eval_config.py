"""The TFMA EvalConfig, built from the dataset spec in one place.

Per task (TFMA ``output_names`` and ``label_keys`` come from the spec): AUC,
AUC-PR, calibration, mean label (the positive rate), example count, and the head's loss (the model's compiled
metrics, which TFMA adds by default); MSE for regression tasks. Thresholds gate
the overall slice only: AUC >= ``min_auc``, and, against the last blessed model,
an AUC drop of at most ``max_auc_drop`` (TFX drops change thresholds on a first
run, when there is no baseline); MSE <= ``max_mse`` for regression tasks. Slices: overall plus each of the spec's ``slices``.
"""

from __future__ import annotations

from typing import List

import tensorflow_model_analysis as tfma

from components.names import SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from components.spec import DatasetSpec, Task, TaskType

# Metric classes and the keys TFMA reports them under, taken from TFMA itself.
AUC = tfma.metrics.AUC
AUC_PR = tfma.metrics.AUCPrecisionRecall
CALIBRATION = tfma.metrics.Calibration
MSE = tfma.metrics.MeanSquaredError
MEAN_LABEL = tfma.metrics.MeanLabel
EXAMPLE_COUNT = tfma.metrics.ExampleCount
AUC_KEY = AUC().name
EXAMPLE_COUNT_KEY = EXAMPLE_COUNT().name
MSE_KEY = MSE().name
MEAN_LABEL_KEY = MEAN_LABEL().name
AUC_PR_KEY = AUC_PR().name
CALIBRATION_KEY = CALIBRATION().name

CANDIDATE = "candidate"
BASELINE = "baseline"
OVERALL = tfma.SlicingSpec()


def _auc_thresholds(task: Task) -> List[tfma.PerSliceMetricThreshold]:
    """AUC bounds of a task on the overall slice only (other slices are reported, not gated)."""
    threshold = tfma.MetricThreshold()
    if task.min_auc is not None:
        threshold.value_threshold.lower_bound.value = task.min_auc
    if task.max_auc_drop is not None:
        threshold.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
        threshold.change_threshold.absolute.value = -task.max_auc_drop
    if task.min_auc is None and task.max_auc_drop is None:
        return []
    return [tfma.PerSliceMetricThreshold(slicing_specs=[OVERALL], threshold=threshold)]


def _mse_thresholds(task: Task) -> List[tfma.PerSliceMetricThreshold]:
    """An upper bound on MSE over the overall slice (regression tasks)."""
    if task.max_mse is None:
        return []
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(upper_bound={"value": task.max_mse})
    )
    return [tfma.PerSliceMetricThreshold(slicing_specs=[OVERALL], threshold=threshold)]


def _metrics_spec(task: Task) -> tfma.MetricsSpec:
    metrics = [tfma.MetricConfig(class_name=EXAMPLE_COUNT.__name__)]
    if task.type is TaskType.BINARY:
        metrics += [
            tfma.MetricConfig(class_name=AUC.__name__, per_slice_thresholds=_auc_thresholds(task)),
            tfma.MetricConfig(class_name=AUC_PR.__name__),
            tfma.MetricConfig(class_name=CALIBRATION.__name__),
            tfma.MetricConfig(class_name=MEAN_LABEL.__name__),  # AUC is undefined at 0 or 1
        ]
    else:
        metrics += [tfma.MetricConfig(class_name=MSE.__name__, per_slice_thresholds=_mse_thresholds(task))]
    return tfma.MetricsSpec(output_names=[task.output_name], metrics=metrics)


def _model_spec(spec: DatasetSpec, name: str, is_baseline: bool) -> tfma.ModelSpec:
    return tfma.ModelSpec(
        name=name,
        is_baseline=is_baseline,
        signature_name=SERVING_SIGNATURE,
        preprocessing_function_names=[TRANSFORM_SIGNATURE],
        # The signatures are all TFMA calls. Left unset, TFMA loads each model once more as a
        # Keras model only to learn its type, then again to add the model's compiled metrics,
        # which no gate reads (the Evaluator's time on the full census file, BENCHMARKS).
        model_type=tfma.TF_GENERIC,
        label_keys={t.output_name: t.label_key for t in spec.tasks},
    )


def build_eval_config(spec: DatasetSpec) -> tfma.EvalConfig:
    """Candidate and baseline model specs, per-task metrics and thresholds, and slices."""
    return tfma.EvalConfig(
        model_specs=[_model_spec(spec, CANDIDATE, False), _model_spec(spec, BASELINE, True)],
        metrics_specs=[_metrics_spec(task) for task in spec.tasks],
        slicing_specs=[OVERALL] + [tfma.SlicingSpec(feature_keys=[sl.key]) for sl in spec.slices],
    )
