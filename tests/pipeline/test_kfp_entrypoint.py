"""Our Kubeflow entrypoint on the ExecutorInput the open-source backend sends (the whole
compiled pipeline runs through it in test_run_spec.py)."""

import json

import pytest
from google.protobuf import json_format

from pipeline.kubeflow import kfp_entrypoint

EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\n"
# As the backend sends it (tensorflow/tfx#7768's launcher log): the input untyped, executor-logs added.
EXECUTOR_INPUT = {
    "inputs": {"artifacts": {"examples": {"artifacts": [
        {"name": "12", "uri": "s3://b/root/p/r/CsvExampleGen/u/examples", "type": {"instanceSchema": ""},
         "metadata": {"span": 1.0, "display_name": "examples"}}]}},
               "parameterValues": {"exclude_splits": "[]"}},
    "outputs": {"artifacts": {
        "statistics": {"artifacts": [{"uri": "s3://b/root/p/r/StatisticsGen/v/statistics",
                                      "type": {"instanceSchema": "title: tfx.ExampleStatistics\ntype: object\n"}}]},
        "executor-logs": {"artifacts": [{"uri": "s3://b/root/p/r/StatisticsGen/v/executor-logs",
                                         "type": {"schemaTitle": "system.Artifact"}}]}},
                "outputFile": "/tmp/kfp_outputs/output_metadata.json"},
}
INPUTS_SPEC = {"artifacts": {"examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}},
               "parameters": {"exclude_splits": {"parameterType": "STRING"}}}


def _argv(executor_input=EXECUTOR_INPUT, inputs_spec=INPUTS_SPEC):
    return ["--kfp_task", "StatisticsGen", "--executor_class_path", "tfx.components.statistics_gen.executor.Executor",
            "--json_serialized_invocation_args", json.dumps(executor_input),
            "--json_serialized_inputs_spec_args", json.dumps(inputs_spec), "--runner=DirectRunner"]


def test_inputs_get_their_definition_type_and_executor_logs_is_left_out():
    task, args, changes = kfp_entrypoint.prepare_args(_argv())
    assert task == "StatisticsGen"
    assert args[:2] == ["--executor_class_path", "tfx.components.statistics_gen.executor.Executor"]
    assert args[-1] == "--runner=DirectRunner"  # Beam arguments pass through
    fixed = json.loads(args[args.index("--json_serialized_invocation_args") + 1])
    (examples,) = fixed["inputs"]["artifacts"]["examples"]["artifacts"]
    assert examples["type"] == {"instanceSchema": EXAMPLES_SCHEMA}
    assert (examples["name"], examples["uri"], examples["metadata"]["span"]) == (
        "12", "s3://b/root/p/r/CsvExampleGen/u/examples", 1.0)
    assert sorted(fixed["outputs"]["artifacts"]) == ["statistics"]
    assert changes == ["input examples: type from the task's inputDefinitions",
                       "output executor-logs: left out (the launcher writes it)"]


def test_the_fixed_input_parses_into_the_tfx_artifact_class():
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils

    _, args, _ = kfp_entrypoint.prepare_args(_argv())
    executor_input = json_format.Parse(args[args.index("--json_serialized_invocation_args") + 1],
                                       pipeline_spec_pb2.ExecutorInput())
    (examples,) = utils.parse_raw_artifact_dict(executor_input.inputs.artifacts)["examples"]
    assert type(examples).__name__ == "Examples" and examples.span == 1
    # TFX's own parsing of the original fails as tensorflow/tfx#7768 reports.
    original = json_format.ParseDict(EXECUTOR_INPUT, pipeline_spec_pb2.ExecutorInput())
    with pytest.raises(AttributeError, match=r"'NoneType' object has no attribute 'get'"):
        utils.parse_raw_artifact_dict(original.inputs.artifacts)


def test_an_untyped_input_without_a_definition_names_the_task_artifact_and_fix():
    with pytest.raises(kfp_entrypoint.EntrypointError,
                       match=r"task StatisticsGen: input artifact 'examples' \(s3://b/.*\) arrived without a type "
                             r".*tensorflow/tfx#7768.*Recompile the package with `mmoe-pipeline compile --target kfp`"):
        kfp_entrypoint.prepare_args(_argv(inputs_spec={"artifacts": {}}))


def test_an_output_tfx_cannot_import_names_the_task_artifact_and_fix():
    executor_input = json.loads(json.dumps(EXECUTOR_INPUT))
    executor_input["outputs"]["artifacts"]["metrics"] = {"artifacts": [
        {"uri": "s3://b/m", "type": {"schemaTitle": "system.Metrics"}}]}
    with pytest.raises(kfp_entrypoint.EntrypointError,
                       match=r"task StatisticsGen: output artifact 'metrics' has type .*system\.Metrics.*"
                             r"no TFX artifact class \(ImportError: Could not import system\.Metrics\)\. "
                             r"Compile the package"):
        kfp_entrypoint.prepare_args(_argv(executor_input))


def test_the_task_flag_and_the_executor_input_are_required():
    with pytest.raises(SystemExit):
        kfp_entrypoint.prepare_args(["--executor_class_path", "x"])
    with pytest.raises(kfp_entrypoint.EntrypointError, match=r"task T: no --json_serialized_invocation_args"):
        kfp_entrypoint.prepare_args(["--kfp_task", "T", "--executor_class_path", "x"])
