"""The Tuner's `tuner_fn`: a KerasTuner random search over the model's hyper-parameters.

TFX's ``Tuner`` component calls `tuner_fn` (by import path, `names.TUNER_FN`), runs the search
and writes the best values as a ``HyperParameters`` artifact, which the Trainer takes
(``fn_args.hyperparameters``; `run_fn` applies them with `apply`). Each trial trains on the
train split and is scored on the eval split (``val_loss``, the weighted sum of the task
losses): the test split stays for the Evaluator.

Trials build and train the pipeline's own model on its own datasets (`PipelineTuner`, a
KerasTuner ``BaseTuner``). The search space brackets the defaults: experts, expert units, tower units, embedding width,
the shared and every task's learning rate, the batch size and the training steps. The search
stops after `max_trials` trials or once `budget_s` seconds have passed, whichever comes first
(a trial that started runs to its end).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Dict, Mapping, Optional, Tuple

import keras_tuner as kt
import tensorflow_transform as tft
from tfx import v1 as tfx

from components.names import TRAINER_CONFIG_KEY, TUNING_KEY, spec_from_custom_config
from components.spec import DatasetSpec
from trainer.config import TrainerConfig

OBJECTIVE = "val_loss"
DEFAULT_BUDGET_S = 600
DEFAULT_MAX_TRIALS = 20
STEPS = "train_steps"


def learning_rate_name(task: str) -> str:
    return f"learning_rate_{task}"


def define(hp: kt.HyperParameters, spec: DatasetSpec, train_steps: int) -> None:
    """The search space (KerasTuner registers each value on first use)."""
    hp.Choice("num_experts", [2, 4, 8])
    hp.Choice("expert_units", [8, 16, 32])
    hp.Choice("tower_units", [4, 8, 16])
    hp.Choice("embedding_dim", [2, 4, 8])
    hp.Float("shared_learning_rate", 1e-4, 1e-2, sampling="log")
    for task in spec.tasks:
        hp.Float(learning_rate_name(task.name), 1e-4, 1e-2, sampling="log")
    hp.Choice("batch_size", [128, 256, 512])
    hp.Choice(STEPS, sorted({max(1, train_steps // 2), train_steps, 2 * train_steps}))


def apply(values: Mapping[str, Any], spec: DatasetSpec, config: TrainerConfig) -> Tuple[DatasetSpec, TrainerConfig,
                                                                                        Optional[int]]:
    """(spec, config, train steps) with the tuned `values` (KerasTuner's ``HyperParameters.values``);
    a name the search space does not define is an error, not ignored."""
    known = {"num_experts", "expert_units", "tower_units", "embedding_dim", "shared_learning_rate", "batch_size",
             STEPS, *(learning_rate_name(t.name) for t in spec.tasks)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"hyper-parameters {unknown} are not in the search space of spec {spec.name!r} "
                         f"(known: {sorted(known)}); were they tuned for another spec?")
    fields = {k: values[k] for k in ("num_experts", "expert_units", "embedding_dim", "shared_learning_rate",
                                     "batch_size") if k in values}
    if "tower_units" in values:
        fields["tower_units"] = (int(values["tower_units"]),)
    config = dataclasses.replace(config, **fields)
    tasks = tuple(dataclasses.replace(t, learning_rate=float(values[learning_rate_name(t.name)]))
                  if learning_rate_name(t.name) in values else t for t in spec.tasks)
    steps = values.get(STEPS)
    return dataclasses.replace(spec, tasks=tasks), config, int(steps) if steps is not None else None


class BudgetedRandomSearchOracle(kt.oracles.RandomSearchOracle):
    """KerasTuner's random search that starts no trial once `budget_s` seconds have passed."""

    def __init__(self, budget_s: float, **kwargs):
        super().__init__(**kwargs)
        self.budget_s = budget_s
        self._deadline = time.monotonic() + budget_s

    def populate_space(self, trial_id: str) -> Dict[str, Any]:
        if time.monotonic() > self._deadline:
            logging.info("Tuner: the %.0f s budget is spent; no trial after %s.", self.budget_s, trial_id)
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)


class PipelineTuner(kt.engine.base_tuner.BaseTuner):
    """Trials of the pipeline's own model and datasets.

    A KerasTuner `BaseTuner` (the class for custom training loops) rather than `kt.Tuner`:
    KerasTuner 1.4 uses Keras 3 whenever the ``keras`` package is 3.x, whatever
    ``TF_USE_LEGACY_KERAS`` says, and `kt.Tuner` refuses the pipeline's tf_keras models. A trial
    that fails stops the search with its error (KerasTuner would otherwise mark it invalid and
    go on, hiding the cause).
    """

    def __init__(self, fn_args, spec: DatasetSpec, config: TrainerConfig, **kwargs):
        super().__init__(**kwargs)
        self.fn_args, self.spec, self.config = fn_args, spec, config
        self.transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)

    @functools.cached_property
    def train_columns(self):
        """The train split in memory when it is small enough (as the Trainer holds it), parsed at the
        first trial for every trial; None: it is streamed. Trials change no feature or label."""
        from trainer.input_data import held_in_memory

        if not self.config.in_memory_max_mb:
            return None
        return held_in_memory(self.fn_args.train_files, self.fn_args.data_accessor, self.transform_output,
                              self.spec, self.config.in_memory_max_mb << 20)

    def run_trial(self, trial, *args, **kwargs) -> Dict[str, float]:
        from trainer.input_data import make_dataset, vocabulary_sizes
        from trainer.model import build_model

        try:
            spec, config, steps = apply(trial.hyperparameters.values, self.spec, self.config)
            train = make_dataset(self.fn_args.train_files, self.fn_args.data_accessor, self.transform_output, spec,
                                 config.batch_size, config.seed, columns=self.train_columns)
            evaluation = make_dataset(self.fn_args.eval_files, self.fn_args.data_accessor, self.transform_output,
                                      spec, config.batch_size, config.seed)
            model = build_model(spec, config, vocabulary_sizes(self.transform_output, spec))
            history = model.fit(train, steps_per_epoch=steps, epochs=1, validation_data=evaluation,
                                validation_steps=self.fn_args.eval_steps, verbose=0)
        except Exception as e:  # the cause, not an "invalid trial"
            raise kt.errors.FatalError(f"Tuner trial {trial.trial_id} failed: {type(e).__name__}: {e}") from e
        value = float(history.history[OBJECTIVE][-1])
        logging.info("Tuner: trial %s %s=%.4f with %s.", trial.trial_id, OBJECTIVE, value, trial.hyperparameters.values)
        return {OBJECTIVE: value}

    def save_model(self, trial_id, model, step=0) -> None:
        """Trial models are not kept: the Trainer trains the best configuration again."""

    def load_model(self, trial):
        raise NotImplementedError("trial models are not kept; train the best hyper-parameters with the Trainer")


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """TFX Tuner entry point (``Tuner(tuner_fn='trainer.tuning.tuner_fn')``)."""
    spec = spec_from_custom_config(fn_args.custom_config, "Tuner")
    config = TrainerConfig.from_dict(fn_args.custom_config.get(TRAINER_CONFIG_KEY, {}))
    tuning = fn_args.custom_config.get(TUNING_KEY) or {}
    budget_s = float(tuning.get("budget_s", DEFAULT_BUDGET_S))
    max_trials = int(tuning.get("max_trials", DEFAULT_MAX_TRIALS))
    space = kt.HyperParameters()
    define(space, spec, fn_args.train_steps)
    oracle = BudgetedRandomSearchOracle(budget_s=budget_s, objective=kt.Objective(OBJECTIVE, "min"),
                                        max_trials=max_trials, seed=config.seed, hyperparameters=space)
    tuner = PipelineTuner(fn_args, spec, config, oracle=oracle, directory=fn_args.working_dir,
                          project_name="mmoe_tuning", overwrite=True)
    logging.info("Tuner: up to %d trials within %.0f s, scored on the eval split's %s.", max_trials, budget_s,
                 OBJECTIVE)
    return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={})
