"""The Trainer's Keras callbacks: a NaN check, TensorBoard curves, progress lines for the console."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.names import (
    TRAINING_PROGRESS,
)

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

