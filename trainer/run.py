"""The Trainer's `run_fn`: datasets -> strategy scope -> model -> fit -> export."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components.names import (
    GATE_STATS_FILE,
    TRAINER_CONFIG_FILE,
    TRAINER_CONFIG_KEY,
    TRAINING_PROGRESS,
    WARM_START_FILE,
    spec_from_custom_config,
)
from components.spec import ColumnKind, DatasetSpec
from trainer.config import TrainerConfig
from trainer.distribute import WorkerRole, auto_shard_policy, make_strategy, worker_role
from trainer.model import LogUncertaintyWeights, build_model, embedding_layer_name, gate_statistics
from trainer.signatures import export


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput, spec: DatasetSpec) -> Dict[str, int]:
    """In-vocabulary size of each categorical feature, from the Transform output."""
    return {
        c.name: tf_transform_output.vocabulary_size_by_name(c.vocabulary_name)
        for c in spec.features
        if c.kind is ColumnKind.CATEGORICAL
    }


# A train split whose files (gzipped TFRecords) add up to at most this is parsed once into
# memory and batched by shuffled row indices instead of parsed again for every batch of every
# epoch (with the per-step sync gone too, the Trainer went from 0.59 to 0.80 of a bare fit's
# rate: bench/trainer_rate.py, docs/BENCHMARKS.md). Larger splits (TrainerConfig.in_memory_max_mb),
# and every multi-worker job (sharded by file), stream from disk. The Tuner reads it once for all
# its trials.


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
    size = sum(tf.io.gfile.stat(f).length for f in _files(file_pattern))
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
    files = _files(file_pattern)
    if not files:
        raise ValueError(f"no files match {file_pattern}: the split is empty.")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    return int(dataset.batch(65536).reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.shape(b, tf.int64)[0]))


def schedule(config: TrainerConfig, train_steps: int, train_rows: Optional[int], global_batch: int) -> Tuple[int, int]:
    """(epochs, steps per epoch): `train_steps` spread over `config.epochs`, or with `train_epochs`
    that many passes over `train_rows` rows (at least one step each)."""
    if not config.train_epochs:
        return config.epochs, max(1, train_steps // config.epochs)
    if not train_rows:
        raise ValueError(f"train_epochs={config.train_epochs}: the train split has no rows to count epochs over.")
    return config.train_epochs, max(1, train_rows // global_batch)


def training_record(history: Mapping[str, List[float]], epochs: int, steps_per_epoch: int,
                    train_rows: Optional[int], patience: int) -> Dict[str, Any]:
    """What the fit did, from Keras's history: epochs run, the best epoch by eval loss, whether early
    stopping ended it."""
    val_loss = [float(v) for v in history.get("val_loss", [])]
    best = int(np.argmin(val_loss)) if val_loss else len(history.get("loss", [])) - 1
    run = len(history.get("loss", []))
    return {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "train_rows": train_rows, "epochs_run": run,
            "steps_run": run * steps_per_epoch, "early_stopping_patience": patience,
            "stopped_early": bool(patience) and run < epochs,
            "best_epoch": best + 1 if run else None, "best_eval_loss": val_loss[best] if val_loss else None,
            "eval_loss": val_loss}


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


WORKER_TEMP_PREFIX = ".workertemp_"  # beside serving_model_dir and model_run_dir, non-chief workers only
CHIEF_EXPORT_TIMEOUT_S = 600


# Batches between two NaN checks. Reading the loss waits for the step that computes it; doing
# that every batch stalls the input pipeline and the next step's dispatch (docs/BENCHMARKS.md,
# the Trainer against a bare fit). The logged loss is the epoch's running mean, so a NaN stays.
NAN_CHECK_EVERY = 50


class RaiseOnNaN(keras.callbacks.Callback):
    """Stops training with an error naming the batch at which the loss was found NaN or infinite
    (checked every `every` batches and at the first)."""

    def __init__(self, every: int = NAN_CHECK_EVERY):
        super().__init__()
        self.every = every
        self._supports_tf_logs = True  # the logs stay tensors: no host sync on the other batches

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every:
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise FloatingPointError(
                f"training loss is {float(loss)} at batch {batch}: lower the learning rates in the spec "
                f"or check the features for extreme values (the loss is checked every {self.every} batches)."
            )


# Points per epoch of the per-task training curves written to TensorBoard (and drawn by the report).
TENSORBOARD_POINTS = 50


class TrainingCurves(keras.callbacks.Callback):
    """TensorBoard scalars laid out as ``keras.callbacks.TensorBoard`` lays them out: ``train/``
    ``batch_<metric>`` every `every` steps and ``epoch_<metric>``, ``validation/`` ``epoch_<metric>``.

    Written from the callback at those steps only: Keras's TensorBoard callback puts its summary
    ops into every training step, which cost a quarter of the training rate here
    (docs/BENCHMARKS.md, the Trainer against a bare fit)."""

    def __init__(self, log_dir: str, every: int):
        super().__init__()
        self.log_dir, self.every, self.step = log_dir, max(1, every), 0
        self._supports_tf_logs = True  # tensors until a step that is written

    def on_train_begin(self, logs=None):
        self.writers = {kind: tf.summary.create_file_writer(os.path.join(self.log_dir, kind))
                        for kind in ("train", "validation")}

    def _write(self, kind: str, prefix: str, values) -> None:
        with self.writers[kind].as_default(step=self.step):
            for name, value in values:
                tf.summary.scalar(f"{prefix}_{name}", float(value))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            self._write("train", "batch", (logs or {}).items())

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._write("train", "epoch", ((k, v) for k, v in logs.items() if not k.startswith("val_")))
        self._write("validation", "epoch", ((k[len("val_"):], v) for k, v in logs.items() if k.startswith("val_")))

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()


class LogProgress(keras.callbacks.Callback):
    """Logs the step, the running loss and the examples per second about ten times per epoch.

    The rate is measured since the previous report (the first report of an epoch also
    pays for tracing), so later reports give the steady rate. The loss is read at reports only.
    """

    def __init__(self, steps: int, batch_size: int):
        super().__init__()
        self.steps, self.batch_size = steps, batch_size
        self.every = max(1, steps // 10)
        self._supports_tf_logs = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.last_time, self.last_step = epoch, time.monotonic(), 0

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1
        if done % self.every == 0 or done == self.steps:
            loss = float((logs or {}).get("loss", float("nan")))  # waits for this step
            now = time.monotonic()
            rate = (done - self.last_step) * self.batch_size / max(now - self.last_time, 1e-9)
            self.last_time, self.last_step = now, done
            logging.info(TRAINING_PROGRESS, self.epoch + 1, done, self.steps, loss, rate)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logging.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items())))


def write_gate_statistics(model, spec: DatasetSpec, config: TrainerConfig, dataset, steps: int, out_dir: str):
    """Mean gate weight per task per expert and gate entropy on the eval split, as JSON."""
    stats = gate_statistics(model, spec, config.variant, dataset, steps)
    path = os.path.join(out_dir, GATE_STATS_FILE)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump({"variant": config.variant.value, "gates": stats}, f, indent=2)
    logging.info("Gate statistics written to %s.", path)


def has_saved_model(path: Optional[str]) -> bool:
    return bool(path) and tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))


def remap_embedding(old: np.ndarray, fresh: np.ndarray, old_vocabulary: List[bytes],
                    new_vocabulary: List[bytes]) -> Tuple[np.ndarray, int]:
    """`fresh` with each token's row taken from `old` where the token was in `old_vocabulary`
    (rows follow the vocabulary, then the OOV buckets, which are kept when their number is the
    same); returns (the matrix, how many tokens kept their row). Vocabularies are ordered by
    frequency, so the same token may sit at another index in each span's vocabulary."""
    if old.shape[1:] != fresh.shape[1:]:
        raise ValueError(f"embedding width {old.shape[1:]} in the base model, {fresh.shape[1:]} now")
    rows = fresh.copy()
    index = {token: i for i, token in enumerate(old_vocabulary)}
    kept = 0
    for i, token in enumerate(new_vocabulary):
        j = index.get(token)
        if j is not None:
            rows[i], kept = old[j], kept + 1
    old_oov, new_oov = old[len(old_vocabulary):], rows[len(new_vocabulary):]
    if len(old_oov) == len(new_oov):
        rows[len(new_vocabulary):] = old_oov
    return rows, kept


def _read_vocabulary(path: str) -> Optional[List[bytes]]:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read().splitlines()


def warm_start(model, base_model: Optional[str], spec: DatasetSpec,
               tf_transform_output: tft.TFTransformOutput) -> dict:
    """Loads into `model` the weights of the SavedModel at `base_model`.

    Embeddings of categorical features are matched row by row through the two vocabularies (the
    base model's, saved in its assets, and this run's): a token keeps its row wherever the new
    vocabulary puts it, a new token starts fresh. Every other weight is loaded when its name and
    shape still match; the others keep their fresh initialisation and are logged. Returns what
    was done; `base_model` None or empty: a cold start."""
    if not has_saved_model(base_model):
        logging.info("Cold start: no blessed model to start from%s.", f" ({base_model} is empty)" if base_model else "")
        return {"base_model": None, "loaded": [], "reinitialised": [], "remapped": []}
    previous = {v.name: v for v in tf.saved_model.load(base_model).variables}
    embeddings = {f"{embedding_layer_name(c)}/embeddings:0": c for c in spec.features
                  if c.kind is ColumnKind.CATEGORICAL}
    loaded, reinitialised, remapped = [], [], []
    for variable in model.weights:
        old = previous.get(variable.name)
        column = embeddings.get(variable.name)
        old_vocabulary = column and _read_vocabulary(os.path.join(base_model, "assets", column.vocabulary_name))
        reason = None
        if old is None:
            reason = "not in the base model"
        elif old_vocabulary is not None:
            new_vocabulary = tf_transform_output.vocabulary_by_name(column.vocabulary_name)
            try:
                rows, kept = remap_embedding(old.numpy(), variable.numpy(), old_vocabulary, new_vocabulary)
            except ValueError as e:
                reason = str(e)
            else:
                variable.assign(rows)
                loaded.append(variable.name)
                remapped.append({"variable": variable.name, "tokens_kept": kept,
                                 "new_tokens": len(new_vocabulary) - kept})
                if kept < len(new_vocabulary):
                    logging.info("Warm start: %s: %d tokens keep their row, %d new ones start fresh.",
                                 variable.name, kept, len(new_vocabulary) - kept)
                continue
        elif old.shape != variable.shape:
            reason = f"shape {old.shape.as_list()} in the base model, {variable.shape.as_list()} now"
        if reason:
            reinitialised.append({"variable": variable.name, "reason": reason})
            logging.warning("Warm start: %s re-initialised: %s.", variable.name, reason)
            continue
        variable.assign(old)
        loaded.append(variable.name)
    logging.info("Warm start from %s: %d of %d weights loaded (%d embeddings matched by token), %d re-initialised.",
                 base_model, len(loaded), len(model.weights), len(remapped), len(reinitialised))
    return {"base_model": base_model, "loaded": loaded, "reinitialised": reinitialised, "remapped": remapped}


def initial_loss(model, dataset, steps: int) -> float:
    """The loss on the first `steps` eval batches, before any training step."""
    return float(model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)["loss"])


def with_hyperparameters(hyperparameters: Optional[dict], spec: DatasetSpec, config: TrainerConfig,
                         train_steps: int) -> Tuple[DatasetSpec, TrainerConfig, int, Optional[dict]]:
    """The spec, config and steps with a Tuner's best values applied (``fn_args.hyperparameters``:
    KerasTuner's ``HyperParameters`` config), and those values; unchanged without any."""
    if not hyperparameters:
        return spec, config, train_steps, None
    import keras_tuner as kt

    from trainer.tuning import apply

    values = dict(kt.HyperParameters.from_config(hyperparameters).values)
    spec, config, steps = apply(values, spec, config)
    logging.info("Hyper-parameters from the Tuner: %s.", values)
    return spec, config, steps or train_steps, values


def _files(patterns: List[str]) -> List[str]:
    return [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]


def worker_temp_dir(path: str, role: WorkerRole) -> str:
    """Where a non-chief worker writes what the chief writes to `path` (removed afterwards)."""
    return os.path.join(os.path.dirname(path.rstrip("/")), f"{WORKER_TEMP_PREFIX}{role.task_type}_{role.task_id}",
                        os.path.basename(path.rstrip("/")))


def wait_for_export(serving_model_dir: str, timeout_s: float, poll_s: float = 0.5) -> None:
    """Blocks until the chief's SavedModel is in `serving_model_dir` (TFX's executor checks for it)."""
    deadline = time.monotonic() + timeout_s
    target = os.path.join(serving_model_dir, "saved_model.pb")
    while not tf.io.gfile.exists(target):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the chief did not export {target} within {timeout_s:.0f} s; see the chief's log.")
        time.sleep(poll_s)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point (``Trainer(run_fn='trainer.run.run_fn')``).

    Every replica of a multi-worker job runs it; only the chief writes to
    ``serving_model_dir`` and ``model_run_dir``. Other workers take part in the
    collective save into a temporary folder beside each, remove it, then wait
    for the chief's SavedModel (TFX's executor fails a replica whose
    ``serving_model_dir`` is missing).
    """
    spec = spec_from_custom_config(fn_args.custom_config, "Trainer")
    config = TrainerConfig.from_dict(fn_args.custom_config.get(TRAINER_CONFIG_KEY, {}))
    spec, config, train_steps, tuned = with_hyperparameters(fn_args.hyperparameters, spec, config,
                                                            fn_args.train_steps)
    strategy = make_strategy(config)  # first: multi-worker collectives must precede any TensorFlow op
    keras.utils.set_random_seed(config.seed)
    role = worker_role()
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)

    columns = None
    if role.num_workers == 1 and config.in_memory_max_mb:
        columns = held_in_memory(fn_args.train_files, fn_args.data_accessor, tf_transform_output, spec,
                                 config.in_memory_max_mb << 20)
    train_rows = None
    if config.train_epochs:
        train_rows = (int(next(iter(columns.values())).shape[0]) if columns is not None
                      else count_records(fn_args.train_files))
    epochs, steps_per_epoch = schedule(config, train_steps, train_rows, global_batch)
    train = make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, spec, global_batch,
                         config.seed, auto_shard_policy(len(_files(fn_args.train_files)), role.num_workers),
                         columns=columns)
    evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, spec, global_batch,
                              config.seed, auto_shard_policy(len(_files(fn_args.eval_files)), role.num_workers))
    with strategy.scope():  # the model's variables and every optimizer (one per variable group)
        model = build_model(spec, config, vocabulary_sizes(tf_transform_output, spec))
    # With a base model: the cold model's loss, then the warm one's on the same eval batches.
    cold_loss = initial_loss(model, evaluation, fn_args.eval_steps) if has_saved_model(fn_args.base_model) else None
    started = warm_start(model, fn_args.base_model, spec, tf_transform_output)
    if started["base_model"]:
        started.update(cold_initial_loss=cold_loss, initial_loss=initial_loss(model, evaluation, fn_args.eval_steps))
        logging.info("Warm start: initial eval loss %.4f (a cold start: %.4f).", started["initial_loss"],
                     started["cold_initial_loss"])
    model_run_dir = fn_args.model_run_dir if role.is_chief else worker_temp_dir(fn_args.model_run_dir, role)
    serving_dir = fn_args.serving_model_dir if role.is_chief else worker_temp_dir(fn_args.serving_model_dir, role)
    logging.info(
        "Training %s for %d epochs x %d steps of %d examples (%d per replica x %d replicas)%s%s.",
        model.name, epochs, steps_per_epoch, global_batch, config.batch_size,
        strategy.num_replicas_in_sync,
        f" ({config.train_epochs} passes over {train_rows} rows)" if config.train_epochs else "",
        "" if role.num_workers == 1 else f" as {role.task_type} {role.task_id} of {role.num_workers} workers",
    )
    callbacks = [
        RaiseOnNaN(),
        LogProgress(steps_per_epoch, global_batch),
        LogUncertaintyWeights(),
        TrainingCurves(model_run_dir, max(1, steps_per_epoch // TENSORBOARD_POINTS)),
    ]
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True, verbose=0))
    history = model.fit(
        train,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=callbacks,
        verbose=0,  # LogProgress logs the progress and each epoch's metrics
    )
    training = training_record(history.history, epochs, steps_per_epoch, train_rows, config.early_stopping_patience)
    if training["stopped_early"]:
        logging.info("Early stopping after epoch %d of %d: the eval loss was best at epoch %d (%.4f); its weights "
                     "are kept.", training["epochs_run"], epochs, training["best_epoch"], training["best_eval_loss"])
    if role.is_chief:
        write_gate_statistics(model, spec, config, evaluation, fn_args.eval_steps, model_run_dir)
        with tf.io.gfile.GFile(os.path.join(model_run_dir, WARM_START_FILE), "w") as f:
            json.dump(started, f, indent=2)
        with tf.io.gfile.GFile(os.path.join(model_run_dir, TRAINER_CONFIG_FILE), "w") as f:
            json.dump({"trainer": config.to_dict(), "train_steps": train_steps, "training": training,
                       "hyperparameters": tuned,
                       "learning_rates": {t.name: t.learning_rate for t in spec.tasks}}, f, indent=2)
    export(model, tf_transform_output, spec, serving_dir)  # collective: every worker saves
    if role.is_chief:
        logging.info("Exported the model to %s.", serving_dir)
        return
    for path in {os.path.dirname(serving_dir), os.path.dirname(model_run_dir)}:
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
    logging.info("Worker %s %d: removed its temporary export; waiting for the chief's model in %s.",
                 role.task_type, role.task_id, fn_args.serving_model_dir)
    wait_for_export(fn_args.serving_model_dir, CHIEF_EXPORT_TIMEOUT_S)
