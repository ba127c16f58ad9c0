"""The TFMA EvalConfig, built from the dataset spec in one place.

Model specs: the candidate and the baseline (the last blessed model), read through the serving signature
with the Transform signature as TFMA's preprocessing function (labels: the spec's ``label_key`` per task).
Metrics and thresholds: each task's head's (`heads.base.Head.metrics_specs`; thresholds gate the overall
slice only). Slices: overall plus each of the spec's ``slices``.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.names import SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from components.spec import DatasetSpec
from heads import head_for
from heads.base import OVERALL

CANDIDATE = "candidate"
BASELINE = "baseline"


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
        metrics_specs=[m for task in spec.tasks for m in head_for(task).metrics_specs()],
        slicing_specs=[OVERALL] + [tfma.SlicingSpec(feature_keys=[sl.key]) for sl in spec.slices],
    )
