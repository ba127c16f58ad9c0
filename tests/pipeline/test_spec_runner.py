"""The strict KFP emulation (`pipeline.kubeflow.spec_runner`) on small hand-written specs, against a real S3
server on 127.0.0.1: root resolution, output layout, executor-logs, untyped inputs and MLMD's
metadata round trip, download/upload through the pod's local paths, caching, failures (the
compiled pipeline itself runs in test_run_spec.py)."""

import json
import sys
import textwrap

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.kubeflow import spec_check, spec_runner

# A component that reads its input artifact from the pod's local copy (.path), writes its output
# there (the launcher uploads it) and reports metadata in the output file, as a KFP executor does.
STEP = textwrap.dedent("""
    import json, os, sys
    executor_input = json.loads(sys.argv[1])
    text, out_path = sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4:
        with open(os.path.join(sys.argv[4], "data.txt")) as f:
            text = f.read() + "+" + text
    if text == "boom":
        print("about to fail"); sys.exit(3)
    os.makedirs(out_path, exist_ok=True)
    with open(os.path.join(out_path, "data.txt"), "w") as f:
        f.write(text)
    inputs = executor_input["inputs"].get("artifacts", {})
    seen = {k: v["artifacts"][0] for k, v in inputs.items()}
    out = executor_input["outputs"]["artifacts"]["result"]["artifacts"][0]
    with open(executor_input["outputs"]["outputFile"], "w") as f:
        json.dump({"artifacts": {"result": {"artifacts": [dict(out, metadata={
            "length": len(text), "ok": True, "seen": json.dumps(seen, sort_keys=True)})]}}}, f)
""")
TYPE = {"schemaTitle": "system.Artifact"}


def _spec(texts, edges, cached=()):
    components, executors, tasks = {}, {}, {}
    for name, text in texts.items():
        inputs = {"parameters": {"text": {"parameterType": "STRING"}}}
        task_inputs = {"parameters": {"text": {"runtimeValue": {"constant": text}}}}
        args = ["{{$}}", "{{$.inputs.parameters['text']}}", "{{$.outputs.artifacts['result'].path}}"]
        if name in edges:
            inputs["artifacts"] = {"source": {"artifactType": TYPE}}
            task_inputs["artifacts"] = {"source": {"taskOutputArtifact": {
                "producerTask": edges[name], "outputArtifactKey": "result"}}}
            args.append("{{$.inputs.artifacts['source'].path}}")
        components[name] = {"executorLabel": f"{name}_exec", "inputDefinitions": inputs,
                            "outputDefinitions": {"artifacts": {"result": {"artifactType": TYPE}}}}
        executors[f"{name}_exec"] = {"container": {"image": "python:3.10", "command": ["python", "-c", STEP],
                                                   "args": args}}
        tasks[name] = {"componentRef": {"name": name}, "taskInfo": {"name": name}, "inputs": task_inputs,
                       "dependentTasks": [edges[name]] if name in edges else [],
                       "cachingOptions": {"enableCache": name in cached}}
    return json_format.ParseDict({
        "pipelineInfo": {"name": "toy"}, "schemaVersion": "2.1.0", "components": components,
        "deploymentSpec": {"executors": executors}, "root": {"dag": {"tasks": tasks}},
    }, pipeline_spec_pb2.PipelineSpec())


@pytest.fixture(scope="module")
def bucket(s3_server):
    return s3_server.create_bucket("toy-artifacts")


def test_artifacts_flow_downstream_as_the_backend_hands_them(s3_server, bucket, tmp_path):
    spec = _spec({"c": "three", "a": "one", "b": "two"}, {"c": "b", "b": "a"})
    assert spec_runner.topological_order(spec) == ["a", "b", "c"]
    runner = spec_runner.SpecRunner(spec, f"{bucket}/root/", str(tmp_path), run_id="r1")
    runner.run(parallelism=2)
    # RUN_ROOT/TASK/UUID/NAME under ROOT/PIPELINE/RUN_ID (driver.go provisionOutputs, client.go GetPipeline)
    uri = runner.outputs["c"]["result"][0]["uri"]
    assert runner.run_root == f"{bucket}/root/toy/r1"
    prefix, salt, name = uri.rsplit("/", 2)
    assert (prefix, name, len(salt)) == (f"{bucket}/root/toy/r1/c", "result", 36)
    # uploaded from the pod's local path by the launcher, as boto3 lists it
    key = uri[len(bucket) + 1:] + "/data.txt"
    assert key in s3_server.keys("toy-artifacts", "root/toy/r1/c/")
    body = s3_server.client().get_object(Bucket="toy-artifacts", Key=key)["Body"].read()
    assert body == b"one+two+three"
    # executor-logs: added to every task, the task's output written there and uploaded
    logs = [k for k in s3_server.keys("toy-artifacts", "root/toy/r1/a/") if k.endswith("/executor-logs")]
    assert len(logs) == 1
    # what `c` read of `b`'s output: untyped, named by its MLMD id, metadata as MLMD stores it
    seen = json.loads(runner.outputs["c"]["result"][0]["metadata"]["seen"])["source"]
    b_output = runner.outputs["b"]["result"][0]
    assert seen["type"] == {"instanceSchema": ""}
    assert seen["name"] == b_output["name"] and seen["name"].isdigit()
    assert seen["uri"] == b_output["uri"]
    assert seen["metadata"]["length"] == 7.0 and seen["metadata"]["ok"] == 1.0  # bool -> int -> double
    assert seen["metadata"]["display_name"] == "result"
    assert json.loads(seen["metadata"]["store_session_info"]) == {"Provider": "s3", "Params": {"fromEnv": "true"}}
    command = runner.results["b"].command
    assert command[0] == sys.executable and command[1] == "-c"  # the image's python replaced
    executor_input = json.loads(command[3])
    assert executor_input["inputs"]["parameterValues"] == {"text": "two"}
    assert executor_input["outputs"]["outputFile"].endswith("/b/tmp/kfp_outputs/output_metadata.json")
    assert sorted(executor_input["outputs"]["artifacts"]) == ["executor-logs", "result"]
    assert executor_input["outputs"]["artifacts"]["executor-logs"]["artifacts"][0]["type"] == TYPE


def test_no_log_output_without_log_publishing(s3_server, bucket, tmp_path):
    runner = spec_runner.SpecRunner(_spec({"a": "one"}, {}), f"{bucket}/root", str(tmp_path), run_id="quiet",
                                    publish_logs=False)
    runner.run()
    executor_input = json.loads(runner.results["a"].command[3])
    assert sorted(executor_input["outputs"]["artifacts"]) == ["result"]


def test_the_root_defaults_to_the_launcher_config_then_minio_which_tensorflow_cannot_write(tmp_path):
    assert spec_runner.run_root(None, "p", "r") == "minio://mlpipeline/v2/artifacts/p/r"
    assert spec_runner.run_root(None, "p", "r", "s3://ns-root/a") == "s3://ns-root/a/p/r"
    assert spec_runner.run_root("gs://b/x?region=1", "p", "r", "s3://ns-root/a") == "gs://b/x/p/r"


def test_a_local_root_fails_the_task_as_the_launcher_does(tmp_path):
    runner = spec_runner.SpecRunner(_spec({"a": "one"}, {}), str(tmp_path / "root"), str(tmp_path), run_id="loc")
    with pytest.raises(spec_runner.TaskFailed, match=r"task a failed before its command ran: failed to generate "
                                                     r"local storage path for output artifact '(result|executor-logs)'.*"
                                                     r"unsupported storage scheme"):
        runner.run()


def test_caching_keys_on_input_artifact_names_so_only_the_root_task_hits(s3_server, bucket, tmp_path):
    spec = _spec({"a": "one", "b": "two"}, {"b": "a"}, cached=("a", "b"))
    first = spec_runner.SpecRunner(spec, f"{bucket}/cache", str(tmp_path), run_id="c1")
    first.run()
    assert [first.results[t].cached for t in "ab"] == [False, False]
    second = spec_runner.SpecRunner(spec, f"{bucket}/cache", str(tmp_path), run_id="c2")
    second.run()
    # a: same parameters, no inputs -> the cached execution's artifact (same MLMD name and URI)
    assert second.results["a"].cached and second.outputs["a"] == first.outputs["a"]
    # b: its input is that same artifact name -> a hit too
    assert second.results["b"].cached
    spec.root.dag.tasks["a"].inputs.parameters["text"].runtime_value.constant.string_value = "changed"
    third = spec_runner.SpecRunner(spec, f"{bucket}/cache", str(tmp_path), run_id="c3")
    third.run()
    # a new artifact name for b's input: b re-runs though its own parameters did not change
    assert [third.results[t].cached for t in "ab"] == [False, False]


def test_a_failing_task_stops_the_run_with_its_log(bucket, tmp_path):
    runner = spec_runner.SpecRunner(_spec({"a": "boom", "b": "two"}, {"b": "a"}), f"{bucket}/root", str(tmp_path),
                                    run_id="r2")
    with pytest.raises(spec_runner.TaskFailed,
                       match=r"(?s)task a failed \(exit 3\).*full log: .*log\.txt.*about to fail"):
        runner.run()
    assert "b" not in runner.results


def test_values_reach_mlmd_and_back_as_the_converter_does():
    value = json_format.ParseDict({"n": 3, "b": True, "s": "x", "l": [1], "st": {"k": 1}},
                                  pipeline_spec_pb2.RuntimeArtifact().metadata)
    stored = {k: spec_runner.to_mlmd_value(v) for k, v in value.fields.items()}
    assert stored == {"n": {"double_value": 3.0}, "b": {"int_value": 1}, "s": {"string_value": "x"},
                      "l": {"struct_value": {"list": [1]}}, "st": {"struct_value": {"struct": {"k": 1}}}}
    assert [spec_runner.from_mlmd_value(stored[k]) for k in ("n", "b", "s")] == [3.0, 1.0, "x"]
    assert spec_runner._format_number(16.0) == "16" and spec_runner._format_number(0.25) == "0.25"
    assert spec_runner._format_number(1e21) == "1000000000000000000000"


def test_unknown_placeholders_and_nonconforming_specs_are_refused(tmp_path):
    executor_input = pipeline_spec_pb2.ExecutorInput()
    with pytest.raises(ValueError, match=r"placeholder .\{\{\$\.inputs\.parameters\['x'\]\.json\}\}. "
                                         r"in .* is not supported by run-spec"):
        spec_runner.substitute("{{$.inputs.parameters['x'].json}}", executor_input)
    spec = _spec({"a": "one"}, {})
    spec.root.dag.tasks["a"].inputs.parameters["text"].runtime_value.Clear()
    spec.root.dag.tasks["a"].inputs.parameters["text"].runtime_value.constant_value.string_value = "one"
    with pytest.raises(spec_check.SpecConformanceError, match=r"a: \[constant-runtime-values\] parameters text"):
        spec_runner.SpecRunner(spec, "s3://b/r", str(tmp_path))
