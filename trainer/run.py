"""The Trainer's `run_fn`: datasets -> strategy scope -> model -> fit -> export."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components.names import GATE_STATS_FILE, TRAINER_CONFIG_KEY, spec_from_custom_config
from components.spec import ColumnKind, DatasetSpec
from trainer.config import TrainerConfig
from trainer.model import LogUncertaintyWeights, build_model, gate_statistics
from trainer.signatures import export



def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput, spec: DatasetSpec) -> Dict[str, int]:
    """In-vocabulary size of each categorical feature, from the Transform output."""
    return {
        c.name: tf_transform_output.vocabulary_size_by_name(c.vocabulary_name)
        for c in spec.features
        if c.kind is ColumnKind.CATEGORICAL
    }


def make_dataset(
    file_pattern: List[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    spec: DatasetSpec,
    batch_size: int,
    seed: int,
) -> tf.data.Dataset:
    """Repeating batches of (transformed features, {task: label})."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema,
    )

    def split(batch):
        features = {c.transformed_name: batch[c.transformed_name] for c in spec.features}
        labels = {t.output_name: batch[t.label_key] for t in spec.tasks}
        return features, labels

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _strategy() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class RaiseOnNaN(keras.callbacks.Callback):
    """Stops training with an error naming the batch whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not tf.math.is_finite(loss):
            raise FloatingPointError(
                f"training loss is {loss} at batch {batch}: lower the learning rates in the spec "
                "or check the features for extreme values."
            )


class LogProgress(keras.callbacks.Callback):
    """Logs the step, the running loss and the examples per second about ten times per epoch."""

    def __init__(self, steps: int, batch_size: int):
        super().__init__()
        self.steps, self.batch_size = steps, batch_size
        self.every = max(1, steps // 10)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.start = epoch, time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1
        if done % self.every == 0 or done == self.steps:
            rate = done * self.batch_size / max(time.monotonic() - self.start, 1e-9)
            logging.info("epoch %d step %d/%d loss=%.4f (%.0f examples/s)",
                         self.epoch + 1, done, self.steps, (logs or {}).get("loss", float("nan")), rate)


def write_gate_statistics(model, spec: DatasetSpec, config: TrainerConfig, dataset, steps: int, out_dir: str):
    """Mean gate weight per task per expert and gate entropy on the eval split, as JSON."""
    stats = gate_statistics(model, spec, dataset, steps)
    path = os.path.join(out_dir, GATE_STATS_FILE)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump({"variant": config.variant.value, "gates": stats}, f, indent=2)
    logging.info("Gate statistics written to %s.", path)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point (``Trainer(run_fn='trainer.run.run_fn')``)."""
    spec = spec_from_custom_config(fn_args.custom_config, "Trainer")
    config = TrainerConfig.from_dict(fn_args.custom_config.get(TRAINER_CONFIG_KEY, {}))
    keras.utils.set_random_seed(config.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)

    train = make_dataset(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, spec, config.batch_size, config.seed
    )
    evaluation = make_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, spec, config.batch_size, config.seed
    )
    with _strategy().scope():
        model = build_model(spec, config, vocabulary_sizes(tf_transform_output, spec))
    steps_per_epoch = max(1, fn_args.train_steps // config.epochs)
    logging.info(
        "Training %s for %d epochs x %d steps of %d examples.",
        model.name, config.epochs, steps_per_epoch, config.batch_size,
    )
    model.fit(
        train,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=[
            RaiseOnNaN(),
            LogProgress(steps_per_epoch, config.batch_size),
            LogUncertaintyWeights(),
            keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
        ],
        verbose=2,
    )
    write_gate_statistics(model, spec, config, evaluation, fn_args.eval_steps, fn_args.model_run_dir)
    export(model, tf_transform_output, spec, fn_args.serving_model_dir)
    logging.info("Exported the model to %s.", fn_args.serving_model_dir)

