"""The multi-class head (``classes``: a vocabulary of label values): label ids, softmax loss, served
probabilities and class names, TFMA's per-class, macro and micro metrics read back, each against numbers
computed by hand; and TFMA itself computing them from the head's specs."""

import math

import numpy as np
import pytest
import tensorflow as tf

from components.spec import SpecError, Task
from heads import head_for
from heads.multiclass import MACRO_AUC_KEY, MICRO_AUC_KEY, MultiClassHead

LEVEL = Task(name="level", label_column="education", type="multiclass", classes=("low", "mid", "high"),
             min_auc=0.7, max_auc_drop=0.02)


def test_the_spec_needs_classes_and_takes_auc_bounds():
    assert isinstance(head_for(LEVEL), MultiClassHead)
    with pytest.raises(SpecError, match=r"task 'level': a multiclass task needs classes \(of the label column "
                                        r"'education': classes: the label values"):
        Task(name="level", label_column="education", type="multiclass")
    with pytest.raises(SpecError, match=r"task 'level' max_mse: not a field of a multiclass task, which takes classes"):
        Task(name="level", label_column="education", type="multiclass", classes=("a", "b"), max_mse=1.0)
    with pytest.raises(SpecError, match=r"task 'level' classes: received \['a', 'a'\]; each label value once"):
        Task(name="level", label_column="education", type="multiclass", classes=("a", "a"))


def test_a_multiclass_task_round_trips_through_the_spec_dict():
    from components.spec import DatasetSpec

    spec = DatasetSpec.from_dict({"columns": [{"name": "age", "kind": "numeric"},
                                              {"name": "education", "kind": "categorical"}],
                                  "tasks": [LEVEL.__dict__ | {"type": "multiclass"}]})
    again = DatasetSpec.from_dict(spec.to_dict())
    assert again == spec and again.task("level").classes == ("low", "mid", "high")


def test_labels_are_class_ids_and_an_unknown_value_is_minus_one():
    raw = tf.constant([["mid"], [" high "], ["low"], ["other"], [""]])
    assert head_for(LEVEL).encode_label(raw).numpy().ravel().tolist() == [1, 2, 0, -1, -1]


def test_the_output_is_a_softmax_over_the_classes_and_the_loss_is_cross_entropy():
    head = head_for(LEVEL)
    layer = head.output_layer()
    assert (layer.name, layer.units, layer.activation.__name__) == ("level", 3, "softmax")
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert float(head.loss()(np.array([[0], [2]]), p)) == pytest.approx(-(math.log(0.7) + math.log(0.6)) / 2, rel=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Received a label value of -1"):
        head.loss()(np.array([[-1]]), np.array([[0.5, 0.25, 0.25]]))


def test_served_are_the_probabilities_and_the_class_names_and_the_check_names_what_is_wrong():
    head = head_for(LEVEL)
    served = {k: v.numpy() for k, v in head.serving_outputs(tf.constant([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])).items()}
    assert served["level_classes"].tolist() == [[b"low", b"mid", b"high"]] * 2
    assert head.serving_problem(served, 2) is None
    assert head.serving_problem({**served, "level": np.array([[0.7, 0.2, 0.2], [0.0, 0.5, 0.5]])}, 2) == (
        "1 of 2 examples did not get probabilities over the classes (each in [0, 1], summing to 1) "
        "(first bad value: [0.7, 0.2, 0.2])")
    wrong = {**served, "level_classes": np.array([[b"mid", b"low", b"high"]] * 2)}
    assert head.serving_problem(wrong, 2).startswith(
        "output 'level_classes' does not name the classes ['low', 'mid', 'high'] in order")


def test_tfma_metrics_of_the_specs_read_back_per_class_macro_and_micro():
    """TFMA on predictions whose AUCs are known: class 0 ranked perfectly (AUC 1), class 1 always wrong
    (AUC 0), class 2 absent (undefined, not 0); the micro AUC, which is gated, pools every class."""
    import pandas as pd
    import tensorflow_model_analysis as tfma

    labels = [0, 0, 1, 1]
    predictions = [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.9, 0.05, 0.05]]
    # Class 0 one-vs-rest: positives score 0.8, 0.6; negatives 0.7, 0.9 -> AUC 1/4 (0.8 > 0.7; 0.6 beats none).
    # Class 1: positives 0.2, 0.05; negatives 0.1, 0.3 -> 0.2 beats 0.1 -> AUC 1/4.
    head = head_for(LEVEL)
    specs = head.metrics_specs()
    for spec in specs:  # model-free: no output names, and no baseline for the change threshold
        spec.ClearField("output_names")
        for metric in spec.metrics:
            metric.ClearField("per_slice_thresholds")
    config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key="level", prediction_key="p")],
                             metrics_specs=specs,
                             slicing_specs=[tfma.SlicingSpec()])
    result = tfma.analyze_raw_data(pd.DataFrame({"level": labels, "p": predictions}), config)
    ((_, metrics),) = result.slicing_metrics
    values = head.slice_values(metrics[""])
    assert values["example_count"] == pytest.approx(4.0)
    extra = values["extra"]
    assert extra["accuracy"] == pytest.approx(0.5, abs=1e-6)  # rows 1 and 2 right (argmax 0, 0), 3 and 4 wrong
    assert extra["AUC low"] == pytest.approx(0.25, abs=0.02) and extra["AUC mid"] == pytest.approx(0.25, abs=0.02)
    assert extra["AUC high"] is None  # absent: its mean label is 0
    assert extra["macro AUC"] == pytest.approx((0.25 + 0.25 + 0.0) / 3, abs=0.02)  # TFMA counts the absent 0
    # Micro: 12 (example, class) pairs, 4 positive; a pooled AUC by hand.
    scores = np.array(predictions).ravel()
    truth = np.eye(3)[labels].ravel()
    pos, neg = scores[truth == 1], scores[truth == 0]
    by_hand = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert values["auc"] == pytest.approx(by_hand, abs=0.02)
    assert MICRO_AUC_KEY in metrics[""][""] and MACRO_AUC_KEY in metrics[""][""]


def test_the_gate_is_on_the_micro_auc_of_the_overall_slice():
    gated = [m for s in head_for(LEVEL).metrics_specs() for m in s.metrics if m.per_slice_thresholds]
    assert len(gated) == 1
    (threshold,) = gated[0].per_slice_thresholds
    assert threshold.threshold.value_threshold.lower_bound.value == pytest.approx(0.7)
    assert threshold.threshold.change_threshold.absolute.value == pytest.approx(-0.02)
    spec = next(s for s in head_for(LEVEL).metrics_specs() if gated[0] in s.metrics)
    assert spec.aggregate.micro_average and not spec.HasField("binarize")
