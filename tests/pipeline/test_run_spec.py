"""The compiled `--target kfp` package, run here by the strict emulation of the open-source backend
(`pipeline.kubeflow.spec_runner`: untyped inputs, executor-logs, the driver's layout) task by task through
each task's own container command (`pipeline.kubeflow.kfp_entrypoint` around TFX's kubeflow_v2_run_executor),
with its pipeline root, data root and serving directory on a real S3 server (moto on 127.0.0.1),
twice, as a schedule would on a data root of spans (``span-{SPAN}``, warm start on: the defaults of
`compile` and `schedule`):

1. a first run on 1,000 rows in span-1: no model in serving yet, so no baseline and a cold
   start; trained, blessed, pushed;
2. span-2 arrives (the same rows with 5 % of the train ages empty and 30 % of the test rows
   with a sex outside the curated domain), and a one-step model: ExampleGen's executor resolves
   span 2 itself (no driver runs on open-source KFP); ServingBaseline hands the Trainer (warm
   start: one step keeps the served model's quality, so the Evaluator blesses it) and the
   Evaluator the pushed model; SpanDrift compares span 2 with span 1; the curated schema (age
   required, sex's domain) makes both an anomaly, each of which stops the push on its own
   (ServingCheck does not bless); nothing is pushed, the serving directory is unchanged;
3. span 3 (clean) after that blessed-but-refused model: its baseline and warm-start base are the
   model in serving, run 1's, not run 2's.

And the proof that the emulation is strict: the same package with TFX's own entrypoint dies where
the backend kills it (ExampleGen on executor-logs; StatisticsGen on tensorflow/tfx#7768).
"""

import json
import os
import sys

import pytest
import yaml

import schemas
from components.baseline import HAS_MODEL_PROPERTY, SOURCE_PROPERTY
from components.spec import DatasetSpec
from pipeline.kubeflow import kubeflow_v2_runner as kfp_runner
from pipeline.kubeflow import spec_check, spec_runner
from sources import census
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
ENTRYPOINT = ["-m", "pipeline.kubeflow.kfp_entrypoint", "--kfp_task"]
TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
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
BUCKET = "kfp-artifacts"


def _compile(out, spec, bucket, steps, name=None):
    config = kfp_runner.kubeflow_config(
        f"{bucket}/root", f"{bucket}/data", spec, schemas.path("census", "schema.pbtxt"),
        f"{bucket}/serving", trainer=TrainerConfig(num_experts=4, expert_units=8, batch_size=64),
        train_steps=steps, eval_steps=2, span_folder="span-{SPAN}", warm_start=True,
    )
    return kfp_runner.compile_pipeline(config, "registry.example/mmoe:test",
                                       os.path.join(out, f"{name or f'p{steps}'}.yaml"))


def _metadata(runner, task, output):
    return runner.outputs[task][output][0].get("metadata", {})


def _versions(s3_server):
    return sorted({k.split("/")[1] for k in s3_server.keys(BUCKET, "serving/") if k.split("/")[1].isdigit()})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, small_spec, s3_server):
    out = str(tmp_path_factory.mktemp("run_spec"))
    bucket = s3_server.create_bucket(BUCKET)
    local = census.prepare(small_spec, os.path.join(out, "data", "span-1"),
                           test_path=census.SAMPLE_PATH, max_rows=ROWS)
    assert s3_server.upload_tree(local.root, BUCKET, "data/span-1") == 4  # three splits and the manifest
    return {"out": out, "bucket": bucket, "local": local}


@pytest.fixture(scope="module")
def runs(prepared, small_spec, s3_server):
    out, bucket = prepared["out"], prepared["bucket"]
    results = {}
    for name, steps in (("first", 300), ("worse", 1), ("after", 1)):
        if name == "worse":  # span 2 arrives
            broken_root = os.path.join(out, "data", "span-2")
            assert with_values(prepared["local"].root, broken_root, "train", "age", "", EMPTY_AGE_FRACTION) > 10
            assert with_values(broken_root, broken_root, "test", "sex", "Unknown", UNKNOWN_SEX_FRACTION) > 10
            s3_server.upload_tree(broken_root, BUCKET, "data/span-2")
        if name == "after":  # span 3: clean again (span 1's rows)
            s3_server.upload_tree(prepared["local"].root, BUCKET, "data/span-3")
        package = _compile(out, small_spec, bucket, steps)
        runner = spec_runner.run_spec(package, os.path.join(out, "work"), run_id=name)
        results[name] = {"package": package, "runner": runner, "decision": spec_runner.decision(runner),
                         "versions": _versions(s3_server)}
    return results


def test_every_task_ran_its_own_container_command(runs):
    runner = runs["first"]["runner"]
    assert sorted(runner.results) == sorted(EXECUTORS)
    for name, result in runner.results.items():
        assert result.command[0] == sys.executable
        assert result.command[1:5] == [*ENTRYPOINT, name], name
        args = result.command[5:]
        assert args[args.index("--executor_class_path") + 1] == EXECUTORS[name]
        executor_input = json.loads(args[args.index("--json_serialized_invocation_args") + 1])
        # the one output file of every pod, inside this task's pod folder
        assert executor_input["outputs"]["outputFile"].endswith(
            os.path.join(name, "tmp", "kfp_outputs", "output_metadata.json"))
        assert "executor-logs" in executor_input["outputs"]["artifacts"]
        for key, artifacts in executor_input["inputs"].get("artifacts", {}).items():
            assert artifacts["artifacts"][0]["type"] == {"instanceSchema": ""}, (name, key)


def test_every_artifact_is_in_the_bucket_under_the_run_root(runs, s3_server):
    runner = runs["first"]["runner"]
    assert runner.run_root == f"s3://{BUCKET}/root/mmoe-pipeline/first"
    keys = s3_server.keys(BUCKET, "root/mmoe-pipeline/first/")
    for task in EXECUTORS:
        assert any(k.startswith(f"root/mmoe-pipeline/first/{task}/") for k in keys), task
    model = runner.outputs["Trainer"]["model"][0]["uri"][len(f"s3://{BUCKET}/"):]
    assert f"{model}/Format-Serving/saved_model.pb" in keys


def test_the_second_run_takes_only_spec_schema_from_the_cache(runs):
    # The cache key holds the input artifacts' MLMD names: a new ExampleGen output (never cached)
    # makes every task downstream of it run again; SpecSchema has no input artifact.
    first, worse = runs["first"]["runner"], runs["worse"]["runner"]
    assert [n for n, r in first.results.items() if r.cached] == []
    assert [n for n, r in worse.results.items() if r.cached] == ["SpecSchema"]
    assert worse.outputs["SpecSchema"] == first.outputs["SpecSchema"]  # the same artifact, by name and URI


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


def test_first_run_has_no_baseline_and_pushes(runs, s3_server):
    first = runs["first"]
    runner, decision = first["runner"], first["decision"]
    assert _metadata(runner, "ServingBaseline", "baseline")[HAS_MODEL_PROPERTY] == 0
    assert _metadata(runner, "Evaluator", "blessing")["blessed"] == 1
    assert decision["has_baseline"] is False
    assert decision["pushed"] is True, decision["reasons"]
    assert len(first["versions"]) == 1
    assert decision["pushed_destination"] == f"s3://{BUCKET}/serving/{first['versions'][0]}"
    assert f"serving/{first['versions'][0]}/saved_model.pb" in s3_server.keys(BUCKET, "serving/")
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
    # Each anomaly names its fix: the spec line for a missing value, --allow-anomaly for the rest.
    assert decision["reasons"] == [
        f"data anomalies: age in train: {decision['anomalies'][0]['short_description']} (declare how to fill it: "
        "`missing: mean` for column age in the spec); sex in test: Unexpected string values (fix the data, or "
        "accept it with --allow-anomaly ENUM_TYPE_UNEXPECTED_STRING_VALUES (the spec's allowed_anomalies))"]
    assert _metadata(runner, "ServingCheck", "blessing")["blessed"] == 0


# TFX's own entrypoint, run as `python -m` runs it, with one addition: the exit of a process that used
# tensorflow-io's s3:// aborts (exit 134, tensorflow/io#2039) even after a successful task, so the
# process leaves with os._exit and the status TFX's entrypoint ended with.
TFX_WITH_EXIT_HOOK = f"""
import os, runpy, sys, traceback
try:
    runpy.run_module({TFX_ENTRYPOINT!r}, run_name="__main__", alter_sys=True)
    status = 0
except SystemExit as e:
    status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
except BaseException:
    traceback.print_exc()
    status = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(status)
"""


def _with_tfx_entrypoint(package: str, path: str) -> str:
    """The same package with TFX's own entrypoint substituted back into every task."""
    with open(package) as f:
        docs = list(yaml.safe_load_all(f))
    for executor in docs[0]["deploymentSpec"]["executors"].values():
        command = executor["container"]["command"]
        assert command[:3] == ["python", "-m", "pipeline.kubeflow.kfp_entrypoint"], command
        executor["container"]["command"] = ["python", "-c", TFX_WITH_EXIT_HOOK]
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f)
    return path


@pytest.fixture(scope="module")
def tfx_package(prepared, small_spec):
    package = _compile(prepared["out"], small_spec, prepared["bucket"], 300, name="ours")
    return _with_tfx_entrypoint(package, os.path.join(prepared["out"], "tfx-entrypoint.yaml"))


def _strict_run(package, work, run_id, **options):
    spec, _ = spec_check.load_package(package)
    return spec_runner.SpecRunner(spec, spec.default_pipeline_root, work, run_id=run_id, **options)


def test_the_emulation_is_strict_tfx_entrypoint_dies_at_example_gen_on_executor_logs(tfx_package, prepared):
    # Log publishing on (the backend's default): executor-logs is typed system.Artifact, which TFX imports.
    runner = _strict_run(tfx_package, os.path.join(prepared["out"], "work"), "tfx-logs")
    with pytest.raises(spec_runner.TaskFailed, match=r"(?s)task CsvExampleGen failed.*"
                                                     r"ImportError: Could not import system\.Artifact"):
        runner.run(parallelism=1)
    assert runner.results == {}


def test_the_emulation_is_strict_tfx_entrypoint_dies_at_statistics_gen_as_in_tfx_7768(tfx_package, prepared):
    # Without log publishing, ExampleGen (no input artifact) completes; the first task with an input
    # artifact gets it untyped from ML Metadata and TFX's entrypoint fails as tensorflow/tfx#7768 reports.
    runner = _strict_run(tfx_package, os.path.join(prepared["out"], "work"), "tfx-7768", publish_logs=False)
    with pytest.raises(spec_runner.TaskFailed, match=r"(?s)task StatisticsGen failed.*_retrieve_class_path.*"
                                                     r"AttributeError: 'NoneType' object has no attribute 'get'"):
        runner.run(parallelism=1)
    assert "CsvExampleGen" in runner.results and "StatisticsGen" not in runner.results


def test_after_a_blessed_but_refused_model_the_baseline_is_still_the_served_one(runs):
    worse, after = runs["worse"]["runner"], runs["after"]["runner"]
    assert _metadata(worse, "Evaluator", "blessing")["blessed"] == 1  # blessed by the Evaluator ...
    assert _metadata(worse, "ServingCheck", "blessing")["blessed"] == 0  # ... refused by ServingCheck
    served = runs["first"]["decision"]["pushed_destination"]
    assert _metadata(after, "ServingBaseline", "baseline")[SOURCE_PROPERTY] == served
    started = runs["after"]["decision"]["warm_start"]
    assert started["base_model"].startswith(after.outputs["ServingBaseline"]["baseline"][0]["uri"])
    assert runs["after"]["decision"]["has_baseline"] is True
    assert runs["worse"]["versions"] == runs["first"]["versions"]  # run 2's model never served
