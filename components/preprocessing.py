"""The Transform component's `preprocessing_fn`, derived from the dataset spec.

* numeric features: z-scored (mean and variance over the train split);
* categorical features: a vocabulary over the train split plus OOV buckets,
  mapped to integer ids (integer-coded columns are vocabularised as strings);
* slice bands: for a slice with boundaries, its band name (``age_band``:
  ``'<25'``, ``'25-44'``...), used by TFMA only;
* labels: 0/1 floats, 1 when the raw value is one of the task's positive values
  (binary tasks), the raw value as a float (regression tasks).

The spec arrives through the Transform component's ``custom_config['spec']``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from components.names import spec_from_custom_config
from components.spec import ColumnKind, TaskType

def _dense(x, default):
    """A [batch, 1] dense tensor from a dense or sparse (possibly missing) input."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default
        )
    if x.shape.rank == 1:
        x = tf.expand_dims(x, -1)
    return x


def _as_string(x):
    return x if x.dtype == tf.string else tf.strings.as_string(x)


def _default(x):
    return "" if x.dtype == tf.string else tf.zeros([], x.dtype)


def binary_label(raw, positive_values) -> tf.Tensor:
    """1.0 where the raw value (as a string) is one of `positive_values`, else 0.0."""
    raw = tf.strings.strip(_as_string(raw))
    positives = tf.constant(list(positive_values), dtype=tf.string)
    hits = tf.reduce_any(tf.equal(tf.expand_dims(raw, -1), positives), axis=-1)
    return tf.cast(hits, tf.float32)


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    spec = spec_from_custom_config(custom_config, "Transform")
    outputs = {}
    for column in spec.features:
        x = _dense(inputs[column.name], _default(inputs[column.name]))
        if column.kind is ColumnKind.NUMERIC:
            outputs[column.transformed_name] = tft.scale_to_z_score(tf.cast(x, tf.float32))
        else:
            outputs[column.transformed_name] = tft.compute_and_apply_vocabulary(
                _as_string(x),
                num_oov_buckets=column.num_oov_buckets,
                vocab_filename=column.vocabulary_name,
            )
    for sl in spec.slices:
        if sl.boundaries:
            x = tf.cast(_dense(inputs[sl.column], _default(inputs[sl.column])), tf.float32)
            band = tft.apply_buckets(x, tf.constant([list(sl.boundaries)], dtype=tf.float32))
            outputs[sl.key] = tf.gather(tf.constant(list(sl.band_labels)), band)
    for task in spec.tasks:
        raw = inputs[task.label_column]
        y = _dense(raw, _default(raw))
        if task.type is TaskType.BINARY:
            outputs[task.label_key] = binary_label(y, task.positive_values)
        else:
            outputs[task.label_key] = tf.cast(y, tf.float32)
    return outputs


