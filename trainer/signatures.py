"""Serving signatures of the exported SavedModel.

* ``serving_default``: serialized raw tf.Examples (no labels needed) -> one
  output per task, keyed by task name, and whatever else the task's head serves
  (`heads.base.Head.serving_outputs`).
* ``transform_features``: serialized raw tf.Examples *with* labels -> the
  transformed features and labels; TFMA uses it as its preprocessing function
  to find the labels (``ModelSpec.preprocessing_function_names``).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.names import EXAMPLES_INPUT, SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from components.spec import DatasetSpec
from heads import head_for


def _parse(serialized, tf_transform_output: tft.TFTransformOutput, columns):
    raw_spec = tf_transform_output.raw_feature_spec()
    return tf.io.parse_example(serialized, {name: raw_spec[name] for name in columns})


def make_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput, spec: DatasetSpec) -> dict:
    """The two signatures, with the Transform graph tracked by `model` so it is saved with it."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    feature_columns = [c.name for c in spec.features]
    heads = [head_for(task) for task in spec.tasks]
    input_signature = [tf.TensorSpec(shape=[None], dtype=tf.string, name=EXAMPLES_INPUT)]

    @tf.function(input_signature=input_signature, autograph=False)
    def serve(examples):
        raw = _parse(examples, tf_transform_output, feature_columns)
        transformed = model.tft_layer(raw)
        outputs = model({k: transformed[k] for k in spec.feature_keys})
        served = {}
        for head in heads:
            served.update(head.serving_outputs(outputs[head.name]))
        return served

    @tf.function(input_signature=input_signature, autograph=False)
    def transform_features(examples):
        raw = _parse(examples, tf_transform_output, feature_columns + list(spec.label_columns))
        return model.tft_layer(raw)

    return {SERVING_SIGNATURE: serve, TRANSFORM_SIGNATURE: transform_features}


def export(model: keras.Model, tf_transform_output: tft.TFTransformOutput, spec: DatasetSpec, path: str) -> None:
    """Saves `model` as a TF SavedModel at `path` with both signatures.

    With Keras's per-layer traces (the default): dropping them (``save_traces=False``) saved a few
    seconds, but the SavedModel could then neither be called after ``tf.saved_model.load`` nor be
    rebuilt by ``keras.models.load_model``."""
    model.save(path, save_format="tf", signatures=make_signatures(model, tf_transform_output, spec))
