"""The TFMA EvalConfig, built from the dataset spec in one place.

Per task (TFMA ``output_names`` and ``label_keys`` come from the spec): AUC,
AUC-PR, example count, with a lower bound on AUC over the overall slice when
the task sets ``min_auc``. Slices: overall plus one per ``slices`` entry.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.spec import DatasetSpec, TaskType
from trainer.signatures import SERVING_SIGNATURE, TRANSFORM_SIGNATURE

# Metric classes and the keys TFMA reports them under, taken from TFMA itself.
AUC = tfma.metrics.AUC
AUC_PR = tfma.metrics.AUCPrecisionRecall
EXAMPLE_COUNT = tfma.metrics.ExampleCount
AUC_KEY = AUC().name
EXAMPLE_COUNT_KEY = EXAMPLE_COUNT().name


OVERALL = tfma.SlicingSpec()


def _auc_thresholds(min_auc):
    """A lower bound on AUC over the overall slice only (other slices are reported, not gated)."""
    if min_auc is None:
        return []
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_auc}))
    return [tfma.PerSliceMetricThreshold(slicing_specs=[OVERALL], threshold=threshold)]


def _metrics_spec(task) -> tfma.MetricsSpec:
    metrics = [tfma.MetricConfig(class_name=EXAMPLE_COUNT.__name__)]
    if task.type is TaskType.BINARY:
        metrics += [
            tfma.MetricConfig(class_name=AUC.__name__, per_slice_thresholds=_auc_thresholds(task.min_auc)),
            tfma.MetricConfig(class_name=AUC_PR.__name__),
        ]
    else:
        metrics += [tfma.MetricConfig(class_name="MeanSquaredError")]
    return tfma.MetricsSpec(output_names=[task.output_name], metrics=metrics)


def build_eval_config(spec: DatasetSpec) -> tfma.EvalConfig:
    """Model spec, per-task metrics and thresholds, and slices for the Evaluator."""
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_SIGNATURE,
                preprocessing_function_names=[TRANSFORM_SIGNATURE],
                label_keys={t.output_name: t.label_key for t in spec.tasks},
            )
        ],
        metrics_specs=[_metrics_spec(task) for task in spec.tasks],
        slicing_specs=[OVERALL] + [tfma.SlicingSpec(feature_keys=[key]) for key in spec.slices],
    )
