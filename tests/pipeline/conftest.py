"""The e2e pipeline runs, shared (session scope) by every module that asserts on them."""

import csv
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys

import pytest
import yaml

import schemas
from pipeline.local import local_runner
from pipeline.reporting import report
from sources import census
from trainer.config import TrainerConfig

NODES = ["CsvExampleGen", "StatisticsGen", "SpecSchema", "ExampleValidator", "SpanDrift", "Transform",
         "Trainer", "ServingBaseline", "Evaluator", "ServingCheck", "Pusher"]
ROWS = 2000  # -> 1600 train, 200 eval, 200 test
MIN_AUC, MAX_DROP = 0.6, 0.05
EMPTY_AGE_FRACTION = 0.05  # of the train rows: imputed where the spec says `missing: mean`
UNKNOWN_SEX_FRACTION = 0.3  # of the test rows, in the run on data that breaks the curated schema


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


def cli_command(config, files: str) -> list:
    """The `mmoe-pipeline run` command line of `config` (data, output directory, spec, schema, trainer
    settings, steps); the spec and trainer settings are written as YAML files under `files`."""
    with open(os.path.join(files, "spec.yaml"), "w") as f:
        yaml.safe_dump(config.spec.to_dict(), f)
    with open(os.path.join(files, "trainer.yaml"), "w") as f:
        yaml.safe_dump(config.trainer.to_dict(), f)
    return [sys.executable, "-m", "pipeline.cli", "run", "--splits-dir", config.data_root,
            "--output-dir", os.path.dirname(config.pipeline_root), "--spec", os.path.join(files, "spec.yaml"),
            "--trainer-config", os.path.join(files, "trainer.yaml"), "--schema", config.schema_path,
            "--train-steps", str(config.train_steps), "--eval-steps", str(config.eval_steps)]


def run_cli(config, files: str) -> subprocess.CompletedProcess:
    """`mmoe-pipeline run` of `config` in its own process (stdout not a terminal), which must succeed."""
    done = subprocess.run(cli_command(config, files), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


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
    # Every run's train split has empty ages, imputed as the spec declares (data that breaks the
    # curated schema is run through the compiled Kubeflow spec, in test_run_spec.py).
    root = os.path.join(out, "splits")
    empty_ages = with_values(prepared.root, root, "train", "age", "", EMPTY_AGE_FRACTION)
    config = local_runner.local_config(
        out, root, spec, schemas.path("census", "schema.pbtxt"),
        trainer=TrainerConfig(num_experts=4, expert_units=8, batch_size=64),
        train_steps=150, eval_steps=3,
    )
    store = report.open_store(config.metadata_path)
    results = {"config": config, "prepared": prepared, "store": store, "empty_ages": empty_ages}
    beam, local = local_runner.Orchestrator.BEAM, local_runner.Orchestrator.LOCAL
    for name, steps, orchestrator in (("first", 150, beam), ("again", 150, beam), ("worse", 1, beam),
                                      ("cached", 1, local), ("better", 400, None)):
        run_config = dataclasses.replace(config, train_steps=steps)
        path = os.path.join(out, f"decision-{name}.json")
        cli = None
        if orchestrator:
            local_runner.run(run_config, orchestrator, decision_path=path)
        else:  # the last run through the command line, as a user runs it
            cli = run_cli(run_config, str(tmp_path_factory.mktemp("cli")))
            shutil.copy(os.path.join(out, local_runner.DECISION_FILE), path)
        results[name] = {
            "cli": cli,
            "decision": _read(path),
            "states": report.node_states(store, config.pipeline_name, NODES),
            "versions": _versions(config),
            "anomalies_uri": report.latest_output_uri(store, config.pipeline_name, "ExampleValidator",
                                                      "ExampleAnomalies"),
        }
    return results
