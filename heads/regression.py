"""Regression (``tf.estimator.RegressionHead``): the raw value as a float label; a linear output, mean
squared error; MSE in TFMA, gated on ``max_mse``."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.spec import TaskType
from heads.base import EXAMPLE_COUNT, EXAMPLE_COUNT_KEY, Head, overall, value_of

MSE = tfma.metrics.MeanSquaredError
MSE_KEY = MSE().name


class RegressionHead(Head):
    task_type = TaskType.REGRESSION
    activation = "linear"
    gaussian = True

    def encode_label(self, raw):
        import tensorflow as tf

        return tf.cast(raw, tf.float32)

    def loss(self):
        import tf_keras as keras

        return keras.losses.MeanSquaredError(name=f"{self.name}_loss")

    def metrics(self):
        import tf_keras as keras

        return [keras.metrics.RootMeanSquaredError(name="rmse")]

    def metrics_specs(self):
        thresholds = [] if self.task.max_mse is None else overall(tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(upper_bound={"value": self.task.max_mse})))
        return [tfma.MetricsSpec(output_names=[self.name], metrics=[
            tfma.MetricConfig(class_name=EXAMPLE_COUNT.__name__),
            tfma.MetricConfig(class_name=MSE.__name__, per_slice_thresholds=thresholds),
        ])]

    def slice_values(self, by_sub_key):
        by_name = by_sub_key.get("", {})
        return {"mse": value_of(by_name.get(MSE_KEY)), "example_count": value_of(by_name.get(EXAMPLE_COUNT_KEY))}

    def thresholds_set(self):
        return self.task.max_mse is not None
