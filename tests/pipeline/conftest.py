"""The e2e pipeline runs, shared (session scope) by every module that asserts on them."""

import csv
import dataclasses
import json
import os
import random
import shutil

import pytest

import schemas
from components import census
from pipeline import local_runner, report
from trainer.config import TrainerConfig

NODES = ["CsvExampleGen", "StatisticsGen", "SpecSchema", "ExampleValidator", "Transform",
         "Trainer", "LatestBlessedModelResolver", "Evaluator", "ServingCheck", "Pusher"]
ROWS = 2000  # -> 1600 train, 200 eval, 200 test
MIN_AUC, MAX_DROP = 0.6, 0.05
EMPTY_AGE_FRACTION = 0.05  # of the train rows: imputed where the spec says `missing: mean`
UNKNOWN_SEX_FRACTION = 0.3  # of the test rows, in the runs on data that breaks the curated schema


def with_values(source_root: str, target_root: str, split: str, column: str, value: str, fraction: float,
                seed: int = 0) -> int:
    """A copy of the splits at `source_root` in `target_root` with `column` set to `value` in a seeded
    `fraction` of the rows of `split`; returns how many rows were changed."""
    if not os.path.exists(target_root):
        shutil.copytree(source_root, target_root)
    path = os.path.join(target_root, split, "data.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rng, index, changed = random.Random(seed), rows[0].index(column), 0
    for row in rows[1:]:
        if rng.random() < fraction:
            row[index], changed = value, changed + 1
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return changed


@pytest.fixture(scope="session")
def spec(census_spec):
    # Reachable but meaningful bounds for short runs: a constant model scores 0.5; a missing age
    # is imputed with the train mean (and so allowed by the derived schema).
    tasks = tuple(dataclasses.replace(t, min_auc=MIN_AUC, max_auc_drop=MAX_DROP) for t in census_spec.tasks)
    raw = dataclasses.replace(census_spec, tasks=tasks).to_dict()
    next(c for c in raw["columns"] if c["name"] == "age")["missing"] = "mean"
    return type(census_spec).from_dict(raw)


def _versions(config):
    return sorted(os.listdir(config.serving_model_dir)) if os.path.isdir(config.serving_model_dir) else []


def _read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def runs(tmp_path_factory, spec):
    out = str(tmp_path_factory.mktemp("e2e"))
    prepared = census.prepare(spec, os.path.join(out, "data"), test_path=census.SAMPLE_PATH, max_rows=ROWS)
    # The data of every run has empty ages in the train split; the "worse" runs' test split also
    # has a sex outside the curated domain, an anomaly that must stop the push on its own.
    root = os.path.join(out, "splits")
    empty_ages = with_values(prepared.root, root, "train", "age", "", EMPTY_AGE_FRACTION)
    broken_root = os.path.join(out, "broken_splits")
    unknown_sex = with_values(root, broken_root, "test", "sex", "Unknown", UNKNOWN_SEX_FRACTION)
    config = local_runner.local_config(
        out, root, spec, schemas.path("census", "schema.pbtxt"),
        trainer=TrainerConfig(num_experts=4, expert_units=8, batch_size=64),
        train_steps=150, eval_steps=3,
    )
    store = report.open_store(config.metadata_path)
    results = {"config": config, "prepared": prepared, "store": store, "empty_ages": empty_ages,
               "unknown_sex": unknown_sex}
    beam, local = local_runner.Orchestrator.BEAM, local_runner.Orchestrator.LOCAL
    for name, steps, orchestrator, data_root in (
            ("first", 150, beam, root), ("again", 150, beam, root), ("worse", 1, beam, broken_root),
            ("cached", 1, local, broken_root), ("better", 400, beam, root)):
        run_config = dataclasses.replace(config, train_steps=steps, data_root=data_root)
        path = os.path.join(out, f"decision-{name}.json")
        local_runner.run(run_config, orchestrator, decision_path=path)
        results[name] = {
            "decision": _read(path),
            "states": report.node_states(store, config.pipeline_name, NODES),
            "versions": _versions(config),
            # the newest anomalies when this run ended (a later cached run reuses an older artifact,
            # so after it "newest" is not "its own")
            "anomalies_uri": report.latest_output_uri(store, config.pipeline_name, "ExampleValidator",
                                                      "ExampleAnomalies"),
        }
    return results
