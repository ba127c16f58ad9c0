"""The Trainer's input: transformed examples as tf.data datasets, streamed or held in memory, and the
vocabulary sizes the model's embeddings need."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components.spec import ColumnKind, DatasetSpec
from trainer.config import TrainerConfig


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput, spec: DatasetSpec) -> Dict[str, int]:
    """In-vocabulary size of each categorical feature, from the Transform output."""
    return {
        c.name: tf_transform_output.vocabulary_size_by_name(c.vocabulary_name)
        for c in spec.features
        if c.kind is ColumnKind.CATEGORICAL
    }



def _split_features_and_labels(spec: DatasetSpec):
    def split(batch):
        features = {k: batch[k] for k in spec.feature_keys}
        labels = {t.output_name: batch[t.label_key] for t in spec.tasks}
        return features, labels

    return split



def load_in_memory(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
                   tf_transform_output: tft.TFTransformOutput, spec: DatasetSpec) -> Optional[Dict[str, tf.Tensor]]:
    """Every row of the split as one dense tensor per feature and label, or None where a column is
    not dense (the streaming path handles any shape)."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=8192, shuffle=False, num_epochs=1),
        tf_transform_output.transformed_metadata.schema,
    )
    names = list(spec.feature_keys) + [t.label_key for t in spec.tasks]
    parts = {name: [] for name in names}
    for batch in dataset:
        for name in names:
            if not isinstance(batch[name], tf.Tensor):
                logging.info("Train split streamed from disk: %s is not dense.", name)
                return None
            parts[name].append(batch[name])
    if not parts[names[0]]:
        raise ValueError(f"no rows in {file_pattern}: the train split is empty.")
    return {name: tf.concat(tensors, axis=0) for name, tensors in parts.items()}



def in_memory_batches(features: Mapping[str, Any], labels: Mapping[str, Any], batch_size: int,
                      seed: int) -> tf.data.Dataset:
    """Endless (features, labels) batches gathered by row indices reshuffled every epoch from
    whole-split tensors or arrays (a row-by-row ``from_tensor_slices`` pipeline of ~40 columns runs
    at a third of the model's speed)."""
    features = {k: tf.convert_to_tensor(v) for k, v in features.items()}
    labels = {k: tf.convert_to_tensor(v) for k, v in labels.items()}
    rows = int(next(iter(labels.values())).shape[0])

    def gather(index):
        return ({k: tf.gather(v, index) for k, v in features.items()},
                {k: tf.gather(v, index) for k, v in labels.items()})

    return (tf.data.Dataset.range(rows).shuffle(rows, seed=seed, reshuffle_each_iteration=True).repeat()
            .batch(batch_size, drop_remainder=True).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))



def held_in_memory(file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
                   tf_transform_output: tft.TFTransformOutput, spec: DatasetSpec,
                   max_bytes: int = TrainerConfig.in_memory_max_mb << 20) -> Optional[Dict[str, tf.Tensor]]:
    """The split's columns in memory (`load_in_memory`) when its files are at most `max_bytes` in
    all; None (stream it) when they are larger or a column is not dense."""
    size = sum(tf.io.gfile.stat(f).length for f in glob_files(file_pattern))
    if size > max_bytes:
        logging.info("Train split streamed from disk: %.1f MB of files, more than the in-memory budget of %.0f MB "
                     "(in_memory_max_mb).", size / 2**20, max_bytes / 2**20)
        return None
    columns = load_in_memory(file_pattern, data_accessor, tf_transform_output, spec)
    if columns is not None:
        logging.info("Train split in memory: %d rows (%.1f MB of files); reshuffled every epoch.",
                     int(next(iter(columns.values())).shape[0]), size / 2**20)
    return columns



def count_records(file_pattern: List[str]) -> int:
    """The number of examples in the split's (GZIP) TFRecord files, read through once."""
    files = glob_files(file_pattern)
    if not files:
        raise ValueError(f"no files match {file_pattern}: the split is empty.")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    return int(dataset.batch(65536).reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.shape(b, tf.int64)[0]))



def make_dataset(
    file_pattern: List[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    spec: DatasetSpec,
    batch_size: int,
    seed: int,
    shard_policy: tf.data.experimental.AutoShardPolicy = tf.data.experimental.AutoShardPolicy.OFF,
    columns: Optional[Mapping[str, tf.Tensor]] = None,
) -> tf.data.Dataset:
    """Repeating batches (`batch_size`: the global batch) of (transformed features, {task: label}),
    sharded across workers by `shard_policy`. From `columns` when given (the split already in
    memory, see `held_in_memory`), else streamed from the files; either way every epoch reshuffles
    the rows."""
    split = _split_features_and_labels(spec)
    if columns is not None:
        return in_memory_batches(*split(columns), batch_size, seed)
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema,
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_policy
    dataset = dataset.with_options(options)
    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)



def glob_files(patterns: List[str]) -> List[str]:
    return [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]

