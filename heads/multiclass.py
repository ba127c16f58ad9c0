"""Multi-class classification (``tf.estimator.MultiClassHead`` with a ``label_vocabulary``): the label is
the index of the raw value in the task's ``classes``; a softmax over the classes, sparse categorical
cross-entropy; served as the probabilities (under the task's name) and the class names beside them
(``<task>_classes``); in TFMA the top-1 accuracy, the one-vs-rest AUC of every class, their macro average,
and the micro-averaged AUC, which ``min_auc`` / ``max_auc_drop`` gate (a class absent from a slice has no
AUC of its own, which would pull a macro average down; the micro average pools every class's examples).

A raw value outside ``classes`` is label -1, which the loss rejects: the Trainer stops and names it (the
curated schema's domain of the label column catches it before, in ExampleValidator).
"""

from __future__ import annotations

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import metrics_for_slice_pb2

from components.spec import TaskType
from heads.base import EXAMPLE_COUNT, EXAMPLE_COUNT_KEY, Head, auc_threshold, value_of

AUC = tfma.metrics.AUC
MEAN_LABEL = tfma.metrics.MeanLabel
ACCURACY = "SparseCategoricalAccuracy"  # a Keras metric TFMA computes (module below)
ACCURACY_MODULE = "tf_keras.metrics"
AUC_KEY, MEAN_LABEL_KEY, ACCURACY_KEY = AUC().name, MEAN_LABEL().name, "sparse_categorical_accuracy"
CLASSES_SUFFIX = "_classes"


def aggregated_key(name: str, **aggregation) -> str:
    """The name `tfma.load_eval_result` gives an aggregated metric (tensorflow_model_analysis/view/util.py,
    `_convert_proto_map_to_dict`: ``'{}_{}'.format(key.aggregation_type, key.name)``)."""
    return f"{metrics_for_slice_pb2.AggregationType(**aggregation)}_{name}"


MICRO_AUC_KEY = aggregated_key(AUC_KEY, micro_average=True)
MACRO_AUC_KEY = aggregated_key(AUC_KEY, macro_average=True)


def class_sub_key(class_id: int) -> str:
    """TFMA's sub key of one class's binarized metrics in `load_eval_result` (``classId:N``)."""
    return f"classId:{class_id}"


class MultiClassHead(Head):
    task_type = TaskType.MULTICLASS
    activation = "softmax"
    promise = "probabilities over the classes (each in [0, 1], summing to 1)"

    @property
    def classes(self):
        return self.task.classes

    @property
    def units(self) -> int:
        return len(self.classes)

    def encode_label(self, raw):
        import tensorflow as tf

        raw = tf.strings.strip(raw if raw.dtype == tf.string else tf.strings.as_string(raw))
        hits = tf.equal(raw, tf.constant(list(self.classes)))  # [batch, classes]
        ids = tf.argmax(tf.cast(hits, tf.int32), axis=-1, output_type=tf.int64)[:, None]
        return tf.where(tf.reduce_any(hits, axis=-1, keepdims=True), ids, tf.constant(-1, tf.int64))

    def loss(self):
        import tf_keras as keras

        return keras.losses.SparseCategoricalCrossentropy(name=f"{self.name}_loss")

    def metrics(self):
        import tf_keras as keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def serving_outputs(self, output):
        import tensorflow as tf

        classes = tf.constant([list(self.classes)])
        return {self.name: output, self.name + CLASSES_SUFFIX: tf.tile(classes, [tf.shape(output)[0], 1])}

    def bad_rows(self, values):
        in_range = ((values >= 0) & (values <= 1)).all(axis=1)
        return ~np.isfinite(values).all(axis=1) | ~in_range | ~np.isclose(values.sum(axis=1), 1.0, atol=1e-3) | (
            values.shape[1] != self.units)

    def serving_problem(self, outputs, count):
        problem = super().serving_problem(outputs, count)
        if problem:
            return problem
        served = outputs.get(self.name + CLASSES_SUFFIX)
        expected = [c.encode() for c in self.classes]
        if served is None or np.asarray(served).reshape(count, -1).tolist() != [expected] * count:
            return (f"output {self.name + CLASSES_SUFFIX!r} does not name the classes {list(self.classes)} in order "
                    f"(received {None if served is None else np.asarray(served)[:1].tolist()})")
        return None

    def metrics_specs(self):
        ids = list(range(len(self.classes)))
        output = [self.name]
        return [
            tfma.MetricsSpec(output_names=output, metrics=[
                tfma.MetricConfig(class_name=EXAMPLE_COUNT.__name__),
                tfma.MetricConfig(class_name=ACCURACY, module=ACCURACY_MODULE)]),
            # One-vs-rest per class (the class's mean label: 0 where it is absent, its AUC undefined).
            tfma.MetricsSpec(output_names=output, binarize=tfma.BinarizationOptions(class_ids={"values": ids}),
                             metrics=[tfma.MetricConfig(class_name=AUC.__name__),
                                      tfma.MetricConfig(class_name=MEAN_LABEL.__name__)]),
            tfma.MetricsSpec(output_names=output, aggregate=tfma.AggregationOptions(
                macro_average=True, class_weights={i: 1.0 for i in ids}),
                metrics=[tfma.MetricConfig(class_name=AUC.__name__)]),
            tfma.MetricsSpec(output_names=output, aggregate=tfma.AggregationOptions(micro_average=True),
                             metrics=[tfma.MetricConfig(class_name=AUC.__name__,
                                                        per_slice_thresholds=auc_threshold(self.task))]),
        ]

    def slice_values(self, by_sub_key):
        overall = by_sub_key.get("", {})
        extra = {"accuracy": value_of(overall.get(ACCURACY_KEY)), "macro AUC": value_of(overall.get(MACRO_AUC_KEY))}
        for class_id, name in enumerate(self.classes):
            metrics = by_sub_key.get(class_sub_key(class_id), {})
            present = value_of(metrics.get(MEAN_LABEL_KEY)) not in (0.0, 1.0, None)
            extra[f"AUC {name}"] = value_of(metrics.get(AUC_KEY)) if present else None
        return {"auc": value_of(overall.get(MICRO_AUC_KEY)), "example_count": value_of(overall.get(EXAMPLE_COUNT_KEY)),
                "extra": extra}

    def thresholds_set(self):
        return self.task.min_auc is not None or self.task.max_auc_drop is not None
