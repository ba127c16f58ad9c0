"""A killed Trainer resumes from its last backup: Keras's ``BackupAndRestore`` (the model's weights, every
optimizer's state and the step reached) under a folder keyed by what the training depends on, so the
retried execution (a new TFX execution with new output folders) finds the backup the killed one left.

The backup lives beside the Trainer's outputs (``<pipeline root>/Trainer/.backup/<key>/``) and is removed
once training ends; a different input, config or step count is another key, never a stale resume."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, Sequence

BACKUP_FOLDER = ".backup"
BACKUPS_PER_EPOCH = 10  # a kill loses at most a tenth of an epoch's steps...
# ...and never more often than this: a backup of the census model takes about 100 ms, twelve steps, so one
# every step would make training 13 times slower (bench/backup.py, docs/BENCHMARKS.md).
BACKUP_MIN_STEPS = 1000


def backup_dir(model_run_dir: str, train_files: Sequence[str], transform_output: str, custom_config: Mapping[str, Any],
               train_steps: int, hyperparameters: Any = None) -> str:
    """The backup folder of a training: ``<component folder>/.backup/<key>`` (TFX's output folders are
    ``<pipeline root>/<component>/<output>/<execution id>``), the key a digest of what the training reads."""
    key = hashlib.sha256(json.dumps(
        {"train_files": list(train_files), "transform_output": transform_output, "custom_config": custom_config,
         "train_steps": train_steps, "hyperparameters": hyperparameters}, sort_keys=True, default=str,
    ).encode()).hexdigest()[:16]
    component_dir = os.path.dirname(os.path.dirname(model_run_dir.rstrip("/")))
    return os.path.join(component_dir, BACKUP_FOLDER, key)


def backup_steps(steps_per_epoch: int, min_steps: int = BACKUP_MIN_STEPS) -> int:
    """Steps between two backups: a tenth of an epoch, never fewer than `min_steps`. A step count, not a
    time: every replica of a multi-worker training must save at the same step (the save is collective)."""
    return max(1, min_steps, steps_per_epoch // BACKUPS_PER_EPOCH)


def backup_callback(directory: str, steps_per_epoch: int, min_steps: int = BACKUP_MIN_STEPS):
    """Keras's ``BackupAndRestore`` in `directory`, saving every `backup_steps` steps."""
    import tf_keras as keras

    return keras.callbacks.BackupAndRestore(directory, save_freq=backup_steps(steps_per_epoch, min_steps),
                                            delete_checkpoint=True)


def remove_backup(directory: str) -> None:
    """Removes `directory` once Keras has deleted its checkpoints (it leaves the empty folder behind);
    a folder still holding files (another replica's) stays."""
    import tensorflow as tf

    if tf.io.gfile.exists(directory) and not tf.io.gfile.listdir(directory):
        tf.io.gfile.rmtree(directory)
