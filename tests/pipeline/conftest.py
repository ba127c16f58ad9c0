"""The e2e pipeline runs, shared (session scope) by every module that asserts on them."""

import dataclasses
import json
import os

import pytest

import schemas
from components import census
from pipeline import local_runner, report
from trainer.config import TrainerConfig

NODES = ["CsvExampleGen", "StatisticsGen", "SpecSchema", "ExampleValidator", "Transform",
         "Trainer", "LatestBlessedModelResolver", "Evaluator", "ServingCheck", "Pusher"]
ROWS = 2000  # -> 1600 train, 200 eval, 200 test
MIN_AUC, MAX_DROP = 0.6, 0.05


@pytest.fixture(scope="session")
def spec(census_spec):
    # Reachable but meaningful bounds for short runs: a constant model scores 0.5.
    tasks = tuple(dataclasses.replace(t, min_auc=MIN_AUC, max_auc_drop=MAX_DROP) for t in census_spec.tasks)
    return dataclasses.replace(census_spec, tasks=tasks)


def _versions(config):
    return sorted(os.listdir(config.serving_model_dir)) if os.path.isdir(config.serving_model_dir) else []


def _read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def runs(tmp_path_factory, spec):
    out = str(tmp_path_factory.mktemp("e2e"))
    prepared = census.prepare(spec, os.path.join(out, "data"), test_path=census.SAMPLE_PATH, max_rows=ROWS)
    config = local_runner.local_config(
        out, prepared.root, spec, schemas.path("census", "schema.pbtxt"),
        trainer=TrainerConfig(num_experts=4, expert_units=8, batch_size=64),
        train_steps=150, eval_steps=3,
    )
    store = report.open_store(config.metadata_path)
    results = {"config": config, "prepared": prepared, "store": store}
    beam, local = local_runner.Orchestrator.BEAM, local_runner.Orchestrator.LOCAL
    for name, steps, orchestrator in (("first", 150, beam), ("again", 150, beam), ("worse", 1, beam),
                                      ("cached", 1, local), ("better", 400, beam)):
        run_config = dataclasses.replace(config, train_steps=steps)
        path = os.path.join(out, f"decision-{name}.json")
        local_runner.run(run_config, orchestrator, decision_path=path)
        results[name] = {
            "decision": _read(path),
            "states": report.node_states(store, config.pipeline_name, NODES),
            "versions": _versions(config),
        }
    return results
