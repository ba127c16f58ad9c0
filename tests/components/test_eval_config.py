import dataclasses

import tensorflow_model_analysis as tfma

from components.eval_config import BASELINE, CANDIDATE, build_eval_config
from components.spec import DatasetSpec


def test_names_and_labels_derive_from_the_spec(census_spec):
    config = build_eval_config(census_spec)
    candidate, baseline = config.model_specs
    assert (candidate.name, candidate.is_baseline, baseline.name, baseline.is_baseline) == (
        CANDIDATE, False, BASELINE, True)
    assert dict(candidate.label_keys) == {"income": "income_label", "never_married": "never_married_label"}
    assert list(candidate.preprocessing_function_names) == ["transform_features"]
    assert [list(m.output_names) for m in config.metrics_specs] == [["income"], ["never_married"]]


def test_auc_thresholds_gate_the_overall_slice_only(census_spec):
    spec = dataclasses.replace(census_spec, tasks=(
        dataclasses.replace(census_spec.tasks[0], min_auc=0.8, max_auc_drop=0.02),
        dataclasses.replace(census_spec.tasks[1], min_auc=None, max_auc_drop=None),
    ))
    income, married = build_eval_config(spec).metrics_specs
    metrics = {m.class_name: m for m in income.metrics}
    assert set(metrics) == {"ExampleCount", "AUC", "AUCPrecisionRecall", "Calibration", "MeanLabel"}
    (threshold,) = metrics["AUC"].per_slice_thresholds
    assert list(threshold.slicing_specs) == [tfma.SlicingSpec()]
    assert threshold.threshold.value_threshold.lower_bound.value == 0.8
    assert threshold.threshold.change_threshold.absolute.value == -0.02
    assert threshold.threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert not metrics["AUC"].HasField("threshold")
    assert not {m.class_name: m for m in married.metrics}["AUC"].per_slice_thresholds


def test_slices_come_from_the_spec(census_spec):
    keys = [list(s.feature_keys) for s in build_eval_config(census_spec).slicing_specs]
    assert keys == [[], ["sex"], ["race"], ["age_band"], ["education"]]


def test_regression_tasks_get_an_mse_upper_bound():
    spec = DatasetSpec.from_dict({
        "name": "r", "columns": [{"name": "x", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
        "tasks": [{"name": "t", "label_column": "y", "type": "regression", "max_mse": 2.5}],
    })
    (metrics_spec,) = build_eval_config(spec).metrics_specs
    mse = {m.class_name: m for m in metrics_spec.metrics}["MeanSquaredError"]
    assert mse.per_slice_thresholds[0].threshold.value_threshold.upper_bound.value == 2.5
