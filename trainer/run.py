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

from components.names import (
    GATE_STATS_FILE,
    TRAINER_CONFIG_FILE,
    TRAINER_CONFIG_KEY,
    WARM_START_FILE,
    spec_from_custom_config,
)
from components.spec import DatasetSpec
from trainer.callbacks import TENSORBOARD_POINTS, LogProgress, RaiseOnNaN, TrainingCurves
from trainer.checkpoints import backup_callback, backup_dir, remove_backup
from trainer.config import TrainerConfig
from trainer.distribute import WorkerRole, auto_shard_policy, make_strategy, worker_role
from trainer.input_data import count_records, glob_files, held_in_memory, make_dataset, vocabulary_sizes
from trainer.model import LogUncertaintyWeights, build_model, gate_statistics
from trainer.signatures import export
from trainer.warm_start import has_saved_model, warm_start


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



WORKER_TEMP_PREFIX = ".workertemp_"  # beside serving_model_dir and model_run_dir, non-chief workers only



CHIEF_EXPORT_TIMEOUT_S = 600



def write_gate_statistics(model, spec: DatasetSpec, config: TrainerConfig, dataset, steps: int, out_dir: str):
    """Mean gate weight per task per expert and gate entropy on the eval split, as JSON."""
    stats = gate_statistics(model, spec, config.variant, dataset, steps)
    path = os.path.join(out_dir, GATE_STATS_FILE)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump({"variant": config.variant.value, "gates": stats}, f, indent=2)
    logging.info("Gate statistics written to %s.", path)



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
                         config.seed, auto_shard_policy(len(glob_files(fn_args.train_files)), role.num_workers),
                         columns=columns)
    evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, spec, global_batch,
                              config.seed, auto_shard_policy(len(glob_files(fn_args.eval_files)), role.num_workers))
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
    backup = backup_dir(fn_args.model_run_dir, fn_args.train_files, fn_args.transform_output,
                        fn_args.custom_config, train_steps, tuned)
    if tf.io.gfile.exists(backup):
        logging.info("Resuming from the backup %s that a killed Trainer left (weights, optimizer state, step).",
                     backup)
    callbacks.append(backup_callback(backup, steps_per_epoch))
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
    if role.is_chief:
        remove_backup(backup)
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

