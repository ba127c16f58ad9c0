"""The Tuner's search space, how its result reaches the Trainer, and its time budget."""

import time

import keras_tuner as kt
import pytest

from trainer.config import TrainerConfig
from trainer.tuning import BudgetedRandomSearchOracle, apply, define


def test_every_value_of_the_search_space_reaches_the_spec_or_the_config(census_spec):
    hp = kt.HyperParameters()
    define(hp, census_spec, train_steps=300)
    assert sorted(hp.values) == sorted(["num_experts", "expert_units", "tower_units", "embedding_dim",
                                        "shared_learning_rate", "learning_rate_income",
                                        "learning_rate_never_married", "batch_size", "train_steps"])
    values = {**hp.values, "num_experts": 2, "tower_units": 16, "learning_rate_income": 0.005, "train_steps": 600}
    spec, config, steps = apply(values, census_spec, TrainerConfig(variant="omoe"))
    assert (config.num_experts, config.tower_units, config.variant.value, steps) == (2, (16,), "omoe", 600)
    assert spec.task("income").learning_rate == 0.005
    assert spec.task("never_married").learning_rate == values["learning_rate_never_married"]
    with pytest.raises(ValueError, match=r"hyper-parameters \['dropout'\] are not in the search space of spec "
                                         r"'census_group1'"):
        apply({"dropout": 0.1}, census_spec, TrainerConfig())


def test_no_trial_starts_once_the_budget_is_spent():
    oracle = BudgetedRandomSearchOracle(budget_s=0.05, objective=kt.Objective("val_loss", "min"), max_trials=5,
                                        seed=1)
    oracle.hyperparameters.Choice("units", [1, 2])
    assert oracle.populate_space("t0")["status"] == kt.engine.trial.TrialStatus.RUNNING
    time.sleep(0.1)
    assert oracle.populate_space("t1") == {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
