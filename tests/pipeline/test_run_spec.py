"""The compiled `--target kfp` package, run here task by task through each task's own container
command (TFX's kubeflow_v2_run_executor), twice, as a schedule would on a data root of spans
(``span-{SPAN}``, warm start on: the defaults of `compile` and `schedule`):

1. a first run on 1,000 rows in span-1: no model in serving yet, so no baseline and a cold
   start; trained, blessed, pushed;
2. span-2 arrives (the same rows with 5 % of the train ages empty and 30 % of the test rows
   with a sex outside the curated domain), and a one-step model: ExampleGen's executor resolves
   span 2 itself (no driver runs on open-source KFP); ServingBaseline hands the Trainer (warm
   start: one step keeps the served model's quality, so the Evaluator blesses it) and the
   Evaluator the pushed model; SpanDrift compares span 2 with span 1; the curated schema (age
   required, sex's domain) makes both an anomaly, each of which stops the push on its own
   (ServingCheck does not bless); nothing is pushed, the serving directory is unchanged.
"""

import json
import os
import sys

import pytest

import schemas
from components import census
from components.baseline import HAS_MODEL_PROPERTY, SOURCE_PROPERTY
from components.spec import DatasetSpec
from pipeline import kubeflow_v2_runner as kfp_runner
from pipeline import spec_check, spec_runner
from tests.pipeline.conftest import EMPTY_AGE_FRACTION, UNKNOWN_SEX_FRACTION, with_values
from trainer.config import TrainerConfig

pytestmark = pytest.mark.e2e

ROWS = 1000  # -> 800 train, 100 eval, 100 test
# The census spec with 6 of its 32 categorical features (Transform's time grows with the number of
# vocabularies); the orchestration under test is the same, and so are the slices and tasks.
CATEGORICAL_KEPT = ("sex", "race", "education", "class_of_worker", "major_occupation_code", "tax_filer_stat")


@pytest.fixture(scope="module")
def small_spec(census_spec):
    raw = census_spec.to_dict()
    for column in raw["columns"]:
        if column["kind"] == "categorical" and column["name"] not in CATEGORICAL_KEPT and not any(
                column["name"] == t["label_column"] for t in raw["tasks"]):
            column["kind"] = "ignore"
    spec = DatasetSpec.from_dict(raw)
    assert sorted(c.name for c in spec.features if c.kind.value == "categorical") == sorted(CATEGORICAL_KEPT)
    return spec
RUN_EXECUTOR = ["-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
# The executor class each task must run, as Kubeflow would (hand-written, not read from the spec).
EXECUTORS = {
    "CsvExampleGen": "components.example_gen.Executor",
    "StatisticsGen": "tfx.components.statistics_gen.executor.Executor",
    "SpecSchema": "components.schema.SpecSchema_Executor",
    "ExampleValidator": "tfx.components.example_validator.executor.Executor",
    "SpanDrift": "components.drift.SpanDrift_Executor",
    "Transform": "tfx.components.transform.executor.Executor",
    "Trainer": "tfx.components.trainer.executor.GenericExecutor",
    "ServingBaseline": "components.baseline.ServingBaseline_Executor",
    "Evaluator": "components.baseline.Executor",
    "ServingCheck": "components.serving_check.ServingCheck_Executor",
    "Pusher": "components.pusher.Executor",
}


def _compile(out, spec, data_root, steps):
    config = kfp_runner.kubeflow_config(
        os.path.join(out, "root"), data_root, spec, schemas.path("census", "schema.pbtxt"),
        os.path.join(out, "serving"), trainer=TrainerConfig(num_experts=4, expert_units=8, batch_size=64),
        train_steps=steps, eval_steps=2, span_folder="span-{SPAN}", warm_start=True,
    )
    return kfp_runner.compile_pipeline(config, "registry.example/mmoe:test", os.path.join(out, f"p{steps}.yaml"))


def _metadata(runner, task, output):
    return runner.outputs[task][output][0].get("metadata", {})


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_spec):
    out = str(tmp_path_factory.mktemp("run_spec"))
    data_root = os.path.join(out, "data")
    prepared = census.prepare(small_spec, os.path.join(data_root, "span-1"),
                              test_path=census.SAMPLE_PATH, max_rows=ROWS)
    results = {}
    for name, steps in (("first", 300), ("worse", 1)):
        if name == "worse":  # span 2 arrives
            broken_root = os.path.join(data_root, "span-2")
            assert with_values(prepared.root, broken_root, "train", "age", "", EMPTY_AGE_FRACTION) > 10
            assert with_values(broken_root, broken_root, "test", "sex", "Unknown", UNKNOWN_SEX_FRACTION) > 10
        package = _compile(out, small_spec, data_root, steps)
        runner = spec_runner.run_spec(package, os.path.join(out, "root"), run_id=name)
        results[name] = {"package": package, "runner": runner, "decision": spec_runner.decision(runner),
                         "versions": sorted(os.listdir(os.path.join(out, "serving")))}
    return results


def test_every_task_ran_its_own_container_command(runs):
    runner = runs["first"]["runner"]
    assert sorted(runner.results) == sorted(EXECUTORS)
    for name, result in runner.results.items():
        assert result.command[0] == sys.executable
        assert result.command[1:3] == RUN_EXECUTOR, name
        args = result.command[3:]
        assert args[args.index("--executor_class_path") + 1] == EXECUTORS[name]
        executor_input = json.loads(args[args.index("--json_serialized_invocation_args") + 1])
        assert executor_input["outputs"]["outputFile"].endswith(os.path.join(name, "executor_output.json"))


def test_parameters_come_from_the_spec_constants(runs):
    trainer = runs["worse"]["runner"].results["Trainer"]
    args = trainer.command[3:]
    executor_input = json.loads(args[args.index("--json_serialized_invocation_args") + 1])
    assert json.loads(executor_input["inputs"]["parameterValues"]["train_args"]) == {
        "splits": ["train"], "num_steps": 1,
    }


def test_each_run_reads_the_newest_span_without_the_example_gen_driver(runs):
    for name, span in (("first", 1), ("worse", 2)):
        runner = runs[name]["runner"]
        examples = _metadata(runner, "CsvExampleGen", "examples")
        # TFX's KFP artifact metadata prefixes a custom property named like a type property ("span").
        assert (examples["custom:span"], examples["spans"]) == (span, str(span)), examples
        assert runs[name]["decision"]["spans"] == [span]
    drift = _metadata(runs["worse"]["runner"], "SpanDrift", "drift")
    assert (drift["current_span"], drift["previous_span"]) == (2, 1)
    assert _metadata(runs["first"]["runner"], "SpanDrift", "drift")["previous_span"] == -1


def test_the_second_run_warm_starts_from_the_served_model(runs):
    assert runs["first"]["decision"]["warm_start"]["base_model"] is None
    started = runs["worse"]["decision"]["warm_start"]
    assert "/ServingBaseline/" in started["base_model"], started
    assert started["weights_loaded"] > 10 and started["reinitialised"] == []
    assert started["initial_loss"] < started["cold_initial_loss"], started


def test_first_run_has_no_baseline_and_pushes(runs):
    first = runs["first"]
    runner, decision = first["runner"], first["decision"]
    assert _metadata(runner, "ServingBaseline", "baseline")[HAS_MODEL_PROPERTY] == 0
    assert _metadata(runner, "Evaluator", "blessing")["blessed"] == 1
    assert decision["has_baseline"] is False
    assert decision["pushed"] is True, decision["reasons"]
    assert len(first["versions"]) == 1
    assert decision["pushed_destination"].endswith(first["versions"][0])
    assert os.path.exists(os.path.join(decision["pushed_destination"], "saved_model.pb"))
    for task, verdict in decision["tasks"].items():
        assert verdict["auc"] > verdict["min_auc"], task


def test_the_warm_started_one_step_model_is_compared_with_the_served_one_and_not_pushed(runs):
    first, worse = runs["first"], runs["worse"]
    runner, decision = worse["runner"], worse["decision"]
    baseline = _metadata(runner, "ServingBaseline", "baseline")
    assert baseline[HAS_MODEL_PROPERTY] == 1
    assert baseline[SOURCE_PROPERTY] == first["decision"]["pushed_destination"]
    assert decision["has_baseline"] is True
    for task, verdict in decision["tasks"].items():
        # the served model, scored on this run's (changed) test split
        assert verdict["baseline_auc"] > verdict["min_auc"], task
        assert verdict["auc_change"] == pytest.approx(verdict["auc"] - verdict["baseline_auc"])
        # Started from the served model, one step keeps its quality: within the allowed drop.
        assert abs(verdict["auc_change"]) <= verdict["max_auc_drop"], (task, verdict)
    assert _metadata(runner, "Evaluator", "blessing")["blessed"] == 1
    # The data anomalies alone withhold the push (see the next test).
    assert decision["pushed"] is False and decision["failing_tasks"] == []
    assert worse["versions"] == first["versions"]


def test_the_anomalies_of_span_2_stop_the_push(runs):
    runner, decision = runs["worse"]["runner"], runs["worse"]["decision"]
    # The same anomaly rule as on the local runners: Transform imputed the empty ages, the
    # ExampleValidator flagged them against the curated schema, the push gate named them.
    assert [(a["feature"], a["split"], a["types"]) for a in decision["anomalies"]] == [
        ("age", "train", ["FEATURE_TYPE_LOW_NUMBER_VALUES"]), ("sex", "test", ["ENUM_TYPE_UNEXPECTED_STRING_VALUES"])]
    assert "Unknown" in decision["anomalies"][1]["description"]
    assert decision["drift"] == []  # the same rows as span 1: nothing drifted
    assert decision["reasons"] == [f"data anomalies: age in train: {decision['anomalies'][0]['short_description']}; "
                                   "sex in test: Unexpected string values"]
    assert _metadata(runner, "ServingCheck", "blessing")["blessed"] == 0


def test_the_run_packages_pass_the_conformance_check(runs):
    for run in runs.values():
        assert spec_check.check_package(run["package"]) == []
