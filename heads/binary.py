"""Binary classification (``tf.estimator.BinaryClassHead``): label 1 where the raw value is one of the
task's ``positive_values``; a sigmoid probability, binary cross-entropy; AUC, AUC-PR, calibration and the
mean label (the positive rate) in TFMA, gated on AUC."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.spec import TaskType
from heads.base import EXAMPLE_COUNT, EXAMPLE_COUNT_KEY, Head, auc_threshold, value_of

AUC = tfma.metrics.AUC
AUC_PR = tfma.metrics.AUCPrecisionRecall
CALIBRATION = tfma.metrics.Calibration
MEAN_LABEL = tfma.metrics.MeanLabel
AUC_KEY, AUC_PR_KEY, CALIBRATION_KEY, MEAN_LABEL_KEY = (m().name for m in (AUC, AUC_PR, CALIBRATION, MEAN_LABEL))


def binary_label(raw, positive_values):
    """1.0 where the raw value (as a string, stripped) is one of `positive_values`, else 0.0."""
    import tensorflow as tf

    raw = tf.strings.strip(raw if raw.dtype == tf.string else tf.strings.as_string(raw))
    positives = tf.constant(list(positive_values), dtype=tf.string)
    hits = tf.reduce_any(tf.equal(tf.expand_dims(raw, -1), positives), axis=-1)
    return tf.cast(hits, tf.float32)


class BinaryClassificationHead(Head):
    task_type = TaskType.BINARY
    activation = "sigmoid"
    promise = "a probability in [0, 1]"

    def encode_label(self, raw):
        return binary_label(raw, self.task.positive_values)

    def loss(self):
        import tf_keras as keras

        return keras.losses.BinaryCrossentropy(name=f"{self.name}_loss")

    def metrics(self):
        import tf_keras as keras

        # Named apart from TFMA's own "auc"/"auc_precision_recall", which the Evaluator computes.
        return [keras.metrics.AUC(name="roc_auc"), keras.metrics.AUC(curve="PR", name="pr_auc")]

    def bad_rows(self, values):
        return super().bad_rows(values) | ((values < 0) | (values > 1)).any(axis=1)

    def metrics_specs(self):
        return [tfma.MetricsSpec(output_names=[self.name], metrics=[
            tfma.MetricConfig(class_name=EXAMPLE_COUNT.__name__),
            tfma.MetricConfig(class_name=AUC.__name__, per_slice_thresholds=auc_threshold(self.task)),
            tfma.MetricConfig(class_name=AUC_PR.__name__),
            tfma.MetricConfig(class_name=CALIBRATION.__name__),
            tfma.MetricConfig(class_name=MEAN_LABEL.__name__),  # AUC is undefined at 0 or 1
        ])]

    def slice_values(self, by_sub_key):
        by_name = by_sub_key.get("", {})
        mean_label = value_of(by_name.get(MEAN_LABEL_KEY))
        return {
            # TFMA reports 0 for an AUC with no positive (or no negative) example: undefined, not 0.
            "auc": None if mean_label in (0.0, 1.0) else value_of(by_name.get(AUC_KEY)),
            "mean_label": mean_label,
            "auc_pr": value_of(by_name.get(AUC_PR_KEY)),
            "calibration": value_of(by_name.get(CALIBRATION_KEY)),
            "example_count": value_of(by_name.get(EXAMPLE_COUNT_KEY)),
        }

    def failure_text(self, failure, values):
        mean_label = values.get("mean_label")
        if failure["metric"] == AUC_KEY and mean_label in (0.0, 1.0):
            only = "negatives" if mean_label == 0.0 else "positives"
            return (f"AUC is undefined on {failure['slice']}: the test split holds only {only} for {self.task.name} "
                    f"({values.get('example_count') or 0:.0f} examples), so the {failure['kind']} AUC threshold cannot "
                    "pass; add examples of both classes to the test split")
        return super().failure_text(failure, values)

    def thresholds_set(self):
        return self.task.min_auc is not None or self.task.max_auc_drop is not None



