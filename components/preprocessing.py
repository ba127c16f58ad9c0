"""The Transform component's `preprocessing_fn`, derived from the dataset spec.

* missing values (the schema the pipeline derives makes every spec column
  variable-length, so a missing value arrives as an absent entry): filled as the
  column's ``missing`` policy says (the train split's mean or median, or a
  constant; categorical columns: a constant, by default the empty string, which
  gets its own vocabulary entry). The fill is part of the graph, so serving a
  request without the feature gives what training saw;
* numeric features: z-scored with the mean and variance of the values present in the
  train split (a filled value does not shrink the variance). Every analyzer reads the raw
  data, so tf.Transform needs one analysis pass (a fill followed by ``tft.scale_to_z_score``
  of the filled column took two: a second traced graph and pass over the data);
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
from components.spec import Column, ColumnKind, MissingPolicy, TaskType

# Approximation error of the median (a fraction of the rank); TFT's quantiles are exact below it.
MEDIAN_EPSILON = 0.001


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


def _present_values(x):
    return x.values if isinstance(x, tf.sparse.SparseTensor) else tf.reshape(x, [-1])


def fill_value(x, column: Column, mean=None) -> tf.Tensor:
    """What a missing value of `column` becomes (a scalar; a train-split statistic for mean and median).
    `mean`: the train mean of the values present when the caller already has it."""
    missing = column.missing
    if column.kind is not ColumnKind.NUMERIC:
        return tf.constant(str(missing.value or ""))
    values = tf.cast(_present_values(x), tf.float32)
    if missing.policy is MissingPolicy.CONSTANT:
        return tf.constant(float(missing.value), tf.float32)
    if missing.policy is MissingPolicy.MEDIAN:
        return tf.reshape(tft.quantiles(values, num_buckets=2, epsilon=MEDIAN_EPSILON), [])
    # MEAN, and ERROR: `run` refuses such data before the pipeline starts; elsewhere the
    # schema keeps the column required, so the anomaly stops the push.
    return tft.mean(values) if mean is None else mean


def impute(x, column: Column, mean=None) -> tf.Tensor:
    """`x` as a dense [batch, 1] tensor (float32 for numeric, string for categorical), missing values filled."""
    fill = fill_value(x, column, mean)
    if column.kind is ColumnKind.NUMERIC:
        x = tf.cast(x, tf.float32) if not isinstance(x, tf.sparse.SparseTensor) else tf.SparseTensor(
            x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    else:
        x = tf.SparseTensor(x.indices, _as_string(x.values), x.dense_shape) if isinstance(
            x, tf.sparse.SparseTensor) else _as_string(x)
    return _dense(x, fill)


def impute_and_z_score(x, column: Column):
    """(the filled [batch, 1] column, its z-score), with the train mean and variance of the values
    present: one analysis pass (as ``tft.scale_to_z_score``, a zero variance only centres)."""
    present = tf.cast(_present_values(x), tf.float32)
    mean, variance = tft.mean(present), tft.var(present)
    filled = impute(x, column, mean)
    centred = filled - mean
    return filled, tf.where(variance > 0, centred / tf.sqrt(tf.maximum(variance, 1e-30)), centred)


def binary_label(raw, positive_values) -> tf.Tensor:
    """1.0 where the raw value (as a string) is one of `positive_values`, else 0.0."""
    raw = tf.strings.strip(_as_string(raw))
    positives = tf.constant(list(positive_values), dtype=tf.string)
    hits = tf.reduce_any(tf.equal(tf.expand_dims(raw, -1), positives), axis=-1)
    return tf.cast(hits, tf.float32)


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    spec = spec_from_custom_config(custom_config, "Transform")
    outputs = {}
    columns = {c.name: c for c in spec.columns}
    imputed = {}
    for column in spec.features:
        if column.kind is ColumnKind.NUMERIC:
            imputed[column.name], outputs[column.transformed_name] = impute_and_z_score(inputs[column.name], column)
        else:
            x = imputed[column.name] = impute(inputs[column.name], column)
            outputs[column.transformed_name] = tft.compute_and_apply_vocabulary(
                x,
                num_oov_buckets=column.num_oov_buckets,
                vocab_filename=column.vocabulary_name,
            )
    for sl in spec.slices:
        if sl.boundaries:
            x = imputed.get(sl.column)
            if x is None:
                x = impute(inputs[sl.column], columns[sl.column])
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


