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
* quantile buckets (numeric columns with ``buckets: N``): beside the z-score, the id (0 to N - 1) of the
  value's bucket among N quantile buckets of the train split's present values (``tft.quantiles``, then
  ``tft.apply_buckets`` on the filled value: one analysis pass), embedded by the model. Heavy-tailed
  columns (wages, capital gains, dividends: mostly zero) become a few populated buckets the model can
  tell apart, where a z-score squeezes nearly every row into one value;
* categorical features: a vocabulary over the train split plus OOV buckets,
  mapped to integer ids (integer-coded columns are vocabularised as strings). Every
  column's vocabulary is counted in one Beam pass (`Vocabularies`) and written as TFT's
  ``tft.vocabulary`` writes it (most frequent first, ties by token descending; empty tokens
  and tokens with a line break left out, so they map to the OOV buckets); TFT's analyzer
  costs some six Beam stages per column, which made Transform's graph building and Beam's
  per-stage work the largest part of the pipeline's time on the census columns;
* slice bands: for a slice with boundaries, its band name (``age_band``:
  ``'<25'``, ``'25-44'``...), used by TFMA only;
* labels: 0/1 floats, 1 when the raw value is one of the task's positive values
  (binary tasks), the raw value as a float (regression tasks).

The spec arrives through the Transform component's ``custom_config['spec']``. Transform traces
this function into a TF1 graph (``components.names.TRANSFORM_TF_COMPAT_V1``: faster to build and
to load than TF2 ``tf.function``s), so it is plain graph code that works in either mode.
"""

from __future__ import annotations

import collections
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from components.names import TRANSFORM_COMPONENT, spec_from_custom_config
from components.spec import Column, ColumnKind, MissingPolicy
from heads import head_for

# The vocabulary file's content while the graph is traced before analysis (TFT's own vocabulary
# analyzer's; an empty file cannot initialise a lookup table).
PLACEHOLDER_VOCABULARY = b"TEMPORARY_ASSET_VALUE"
# Approximation error of the median (a fraction of the rank); TFT's quantiles are exact below it.
MEDIAN_EPSILON = 0.001
# Approximation error of the bucket boundaries (a fraction of the rank).
BUCKET_EPSILON = 0.001


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


def quantile_bucket(filled, x, column: Column) -> tf.Tensor:
    """The [batch, 1] int64 id of `filled`'s bucket among `column.buckets` quantile buckets of the
    train split's present values of `x` (duplicate boundaries of a mostly-constant column leave some
    ids unused)."""
    boundaries = tft.quantiles(tf.cast(_present_values(x), tf.float32), num_buckets=column.buckets,
                               epsilon=BUCKET_EPSILON, name=f"{column.name}_quantiles")
    return tf.cast(tft.apply_buckets(filled, boundaries), tf.int64)


def vocabulary_order(counts: Mapping[bytes, int]) -> List[bytes]:
    """The tokens of a text vocabulary as ``tft.vocabulary`` orders them: by count, then by token,
    both descending; the empty token and tokens with a line break are left out (TFT's
    ``_EMPTY_STRING_OR_NEWLINE_CHARS_REGEX``): they cannot be a line of the file."""
    kept = [(count, token) for token, count in counts.items()
            if token and b"\n" not in token and b"\r" not in token]
    return [token for _, token in sorted(kept, reverse=True)]


class _CountTokens(beam.CombineFn):
    """Token counts per column over batches (one ``[batch, 1]`` array of bytes per column)."""

    def __init__(self, columns: int):
        self._columns = columns

    def create_accumulator(self):
        return [collections.Counter() for _ in range(self._columns)]

    def add_input(self, accumulator, batch):
        for counts, column in zip(accumulator, batch):
            counts.update(np.ravel(column).tolist())
        return accumulator

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for other in accumulators:
            for counts, more in zip(merged, other):
                counts.update(more)
        return merged

    def extract_output(self, accumulator):
        return accumulator


def bounded(tokens: List[bytes], counts: Mapping[bytes, int], max_vocabulary: Optional[int],
            min_frequency: int) -> List[bytes]:
    """`tokens` (in vocabulary order) seen at least `min_frequency` times, the first `max_vocabulary` of
    them (as ``tft.vocabulary``'s ``frequency_threshold`` and ``top_k``)."""
    kept = [t for t in tokens if counts[t] >= min_frequency]
    return kept if max_vocabulary is None else kept[:max_vocabulary]


class Vocabularies(tft_beam.experimental.PTransformAnalyzer):
    """The vocabulary file of every column in one pass over the data (`tft.experimental.ptransform_analyzer`):
    the i-th output is the path of a text file named ``filenames[i]``, in TFT's order (`vocabulary_order`),
    bounded by the i-th of `bounds` ((max_vocabulary, min_frequency), see `bounded`)."""

    def __init__(self, filenames: List[str], bounds: Optional[List[Tuple[Optional[int], int]]] = None):
        super().__init__()
        self._filenames = list(filenames)
        self._bounds = list(bounds) if bounds is not None else [(None, 1)] * len(self._filenames)

    def _write(self, counts) -> Iterable[beam.pvalue.TaggedOutput]:
        tf.io.gfile.makedirs(self.base_temp_dir)
        for i, (filename, column_counts, (top, least)) in enumerate(zip(self._filenames, counts, self._bounds)):
            path = os.path.join(self.base_temp_dir, filename)
            tokens = bounded(vocabulary_order(column_counts), column_counts, top, least)
            if len(tokens) < len(column_counts):
                logging.info("Vocabulary %s: %d of %d train tokens kept (max_vocabulary %s, min_frequency %d); the "
                             "rest go to the OOV buckets.", filename, len(tokens), len(column_counts), top, least)
            with tf.io.gfile.GFile(path, "wb") as f:
                f.write(b"".join(token + b"\n" for token in tokens))
            yield beam.pvalue.TaggedOutput(str(i), np.array(path))

    def expand(self, batches):
        files = (batches
                 | "CountTokens" >> beam.CombineGlobally(_CountTokens(len(self._filenames)))
                 | "WriteVocabularies" >> beam.FlatMap(self._write).with_outputs(
                     *(str(i) for i in range(len(self._filenames)))))
        return tuple(files[str(i)] for i in range(len(self._filenames)))


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    spec = spec_from_custom_config(custom_config, TRANSFORM_COMPONENT)
    outputs = {}
    columns = {c.name: c for c in spec.columns}
    imputed = {}
    categorical = []
    for column in spec.features:
        if column.kind is ColumnKind.NUMERIC:
            imputed[column.name], outputs[column.transformed_name] = impute_and_z_score(inputs[column.name], column)
            if column.buckets is not None:
                outputs[column.bucket_name] = quantile_bucket(imputed[column.name], inputs[column.name], column)
        else:
            imputed[column.name] = impute(inputs[column.name], column)
            categorical.append(column)
    if categorical:
        files = tft.experimental.ptransform_analyzer(
            inputs=[imputed[c.name] for c in categorical],
            ptransform=Vocabularies([c.vocabulary_name for c in categorical],
                                    [(c.max_vocabulary, c.min_frequency) for c in categorical]),
            output_dtypes=[tf.string] * len(categorical),
            output_shapes=[[]] * len(categorical),
            output_asset_default_values=[PLACEHOLDER_VOCABULARY] * len(categorical),
            name="vocabularies",
        )
        for column, path in zip(categorical, files):
            outputs[column.transformed_name] = tft.apply_vocabulary(
                imputed[column.name], path, num_oov_buckets=column.num_oov_buckets)
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
        outputs[task.label_key] = head_for(task).encode_label(y)
    return outputs


