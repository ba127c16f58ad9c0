"""The binary and regression heads: label encoding, loss, serving check, TFMA specs and reading them back,
each against numbers computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from components.spec import Task, TaskType
from heads import head_for
from heads.base import _HEADS
from heads.binary import BinaryClassificationHead
from heads.regression import RegressionHead

BINARY = Task(name="rich", label_column="income", positive_values=("50000+", "yes"), min_auc=0.7, max_auc_drop=0.01)
REGRESSION = Task(name="amount", label_column="wage", type="regression", max_mse=2.5)


def test_every_task_type_has_its_head_registered_by_the_package():
    assert set(_HEADS) == set(TaskType)
    assert isinstance(head_for(BINARY), BinaryClassificationHead) and isinstance(head_for(REGRESSION), RegressionHead)


def test_binary_label_is_one_for_the_positive_values_stripped():
    raw = tf.constant([["50000+"], [" yes "], ["- 50000"], [""], ["YES"]])
    assert head_for(BINARY).encode_label(raw).numpy().ravel().tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_regression_label_is_the_value_as_a_float():
    assert head_for(REGRESSION).encode_label(tf.constant([[3], [-2]], tf.int64)).numpy().ravel().tolist() == [3.0, -2.0]


def test_losses_are_the_heads_likelihoods():
    y, p = np.array([[1.0], [0.0]]), np.array([[0.8], [0.3]])
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert float(head_for(BINARY).loss()(y, p)) == pytest.approx(expected, rel=1e-5)
    assert float(head_for(REGRESSION).loss()(np.array([[1.0], [3.0]]), np.array([[2.0], [0.0]]))) == pytest.approx(5.0)
    assert (head_for(BINARY).gaussian, head_for(REGRESSION).gaussian) == (False, True)


def test_output_layers_are_one_unit_named_after_the_task():
    layer = head_for(BINARY).output_layer()
    assert (layer.name, layer.units, layer.activation.__name__) == ("rich", 1, "sigmoid")
    assert head_for(REGRESSION).output_layer().activation.__name__ == "linear"


def test_the_serving_check_names_what_is_wrong():
    binary = head_for(BINARY)
    assert binary.serving_problem({"rich": np.array([[0.1], [0.9]])}, 2) is None
    assert binary.serving_problem({"rich": np.array([[0.1], [1.5]])}, 2) == (
        "1 of 2 examples did not get a probability in [0, 1] (first bad value: [1.5])")
    assert binary.serving_problem({"other": np.zeros((2, 1))}, 2) == "no output 'rich' (outputs: ['other'])"
    assert head_for(REGRESSION).serving_problem({"amount": np.array([[7.0], [np.nan]])}, 2) == (
        "1 of 2 examples did not get a finite value (first bad value: [nan])")


def test_tfma_specs_carry_the_spec_thresholds_on_the_overall_slice():
    (spec,) = head_for(BINARY).metrics_specs()
    assert list(spec.output_names) == ["rich"]
    by_name = {m.class_name: m for m in spec.metrics}
    assert sorted(by_name) == ["AUC", "AUCPrecisionRecall", "Calibration", "ExampleCount", "MeanLabel"]
    (gate,) = by_name["AUC"].per_slice_thresholds
    assert gate.threshold.value_threshold.lower_bound.value == pytest.approx(0.7)
    assert gate.threshold.change_threshold.absolute.value == pytest.approx(-0.01)
    assert [s.feature_keys for s in gate.slicing_specs] == [[]]
    (spec,) = head_for(REGRESSION).metrics_specs()
    (gate,) = {m.class_name: m for m in spec.metrics}["MeanSquaredError"].per_slice_thresholds
    assert gate.threshold.value_threshold.upper_bound.value == pytest.approx(2.5)
    ungated = head_for(Task(name="amount", label_column="wage", type="regression")).metrics_specs()[0]
    assert [len(m.per_slice_thresholds) for m in ungated.metrics] == [0, 0]


def test_slice_values_read_tfmas_metrics_and_an_auc_of_one_class_is_undefined():
    def metrics(auc, mean):
        return {"": {"auc": {"doubleValue": auc}, "mean_label": {"doubleValue": mean},
                     "example_count": {"doubleValue": 40.0}, "calibration": {"doubleValue": 1.1},
                     "auc_precision_recall": {"doubleValue": 0.5}}}

    assert head_for(BINARY).slice_values(metrics(0.8, 0.25)) == {
        "auc": 0.8, "mean_label": 0.25, "auc_pr": 0.5, "calibration": 1.1, "example_count": 40.0}
    assert head_for(BINARY).slice_values(metrics(0.0, 0.0))["auc"] is None
    failure = {"metric": "auc", "kind": "absolute", "slice": "sex:Male", "value": 0.0}
    assert head_for(BINARY).failure_text(failure, {"mean_label": 1.0, "example_count": 12.0}) == (
        "AUC is undefined on sex:Male: the test split holds only positives for rich (12 examples), so the absolute "
        "AUC threshold cannot pass; add examples of both classes to the test split")
    assert head_for(REGRESSION).slice_values({"": {"mean_squared_error": {"doubleValue": 2.0}}}) == {
        "mse": 2.0, "example_count": None}
