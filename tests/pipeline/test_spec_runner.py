"""The local KFP launcher on small hand-written specs: placeholders, importer, artifact hand-off,
dependency order and failures (the compiled pipeline itself runs in test_run_spec.py)."""

import json
import os
import sys
import textwrap

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import spec_check, spec_runner

# A component that writes its input parameter into its output artifact, appends what it read
# from its input artifact, and reports metadata in executor_output.json, as a KFP executor does.
STEP = textwrap.dedent("""
    import json, os, sys
    executor_input = json.loads(sys.argv[1])
    text, uri = sys.argv[2], sys.argv[3]
    inputs = executor_input["inputs"].get("artifacts", {})
    if "source" in inputs:
        with open(os.path.join(inputs["source"]["artifacts"][0]["uri"], "data.txt")) as f:
            text = f.read() + "+" + text
    if text == "boom":
        print("about to fail"); sys.exit(3)
    out = executor_input["outputs"]["artifacts"]["result"]["artifacts"][0]
    os.makedirs(uri, exist_ok=True)
    with open(os.path.join(uri, "data.txt"), "w") as f:
        f.write(text)
    with open(executor_input["outputs"]["outputFile"], "w") as f:
        json.dump({"artifacts": {"result": {"artifacts": [dict(out, metadata={"length": len(text)})]}}}, f)
""")
TYPE = {"schemaTitle": "system.Artifact"}


def _spec(texts, edges, importer_uri=None):
    components, executors, tasks = {}, {}, {}
    for name, text in texts.items():
        inputs = {"parameters": {"text": {"parameterType": "STRING"}}}
        task_inputs = {"parameters": {"text": {"runtimeValue": {"constant": text}}}}
        if name in edges:
            inputs["artifacts"] = {"source": {"artifactType": TYPE}}
            task_inputs["artifacts"] = {"source": {"taskOutputArtifact": {
                "producerTask": edges[name], "outputArtifactKey": "result"}}}
        components[name] = {"executorLabel": f"{name}_exec", "inputDefinitions": inputs,
                            "outputDefinitions": {"artifacts": {"result": {"artifactType": TYPE}}}}
        executors[f"{name}_exec"] = {"container": {
            "image": "python:3.10", "command": ["python", "-c", STEP],
            "args": ["{{$}}", "{{$.inputs.parameters['text']}}", "{{$.outputs.artifacts['result'].uri}}"]}}
        tasks[name] = {"componentRef": {"name": name}, "taskInfo": {"name": name}, "inputs": task_inputs,
                       "dependentTasks": [edges[name]] if name in edges else []}
    if importer_uri:
        components["imp"] = {"executorLabel": "imp_exec",
                             "outputDefinitions": {"artifacts": {"artifact": {"artifactType": TYPE}}}}
        executors["imp_exec"] = {"importer": {"artifactUri": {"constant": importer_uri}, "typeSchema": TYPE,
                                              "metadata": {"origin": "imported"}}}
        tasks["imp"] = {"componentRef": {"name": "imp"}, "taskInfo": {"name": "imp"}}
    return json_format.ParseDict({
        "pipelineInfo": {"name": "toy"}, "schemaVersion": "2.1.0", "components": components,
        "deploymentSpec": {"executors": executors}, "root": {"dag": {"tasks": tasks}},
    }, pipeline_spec_pb2.PipelineSpec())


def test_artifacts_flow_downstream_in_dependency_order(tmp_path):
    spec = _spec({"c": "three", "a": "one", "b": "two"}, {"c": "b", "b": "a"}, importer_uri="gs://b/x")
    assert spec_runner.topological_order(spec) == ["a", "imp", "b", "c"]
    runner = spec_runner.SpecRunner(spec, str(tmp_path), run_id="r1")
    runner.run(parallelism=2)
    uri = runner.outputs["c"]["result"][0]["uri"]
    assert uri == str(tmp_path / "r1" / "c" / "result")
    with open(os.path.join(uri, "data.txt")) as f:
        assert f.read() == "one+two+three"
    assert runner.outputs["c"]["result"][0]["metadata"] == {"length": len("one+two+three")}
    assert runner.outputs["imp"]["artifact"][0]["uri"] == "gs://b/x"
    assert runner.outputs["imp"]["artifact"][0]["metadata"] == {"origin": "imported"}
    command = runner.results["b"].command
    assert command[0] == sys.executable and command[1] == "-c"  # the image's python replaced
    executor_input = json.loads(command[3])
    assert executor_input["inputs"]["parameterValues"] == {"text": "two"}
    assert executor_input["inputs"]["artifacts"]["source"]["artifacts"][0]["type"] == TYPE


def test_a_failing_task_stops_the_run_with_its_log(tmp_path):
    spec = _spec({"a": "boom", "b": "two"}, {"b": "a"})
    runner = spec_runner.SpecRunner(spec, str(tmp_path), run_id="r2")
    with pytest.raises(spec_runner.TaskFailed,
                       match=r"(?s)task a failed \(exit 3\).*full log: .*log\.txt.*about to fail"):
        runner.run()
    assert "b" not in runner.results


def test_unknown_placeholders_and_nonconforming_specs_are_refused(tmp_path):
    executor_input = pipeline_spec_pb2.ExecutorInput()
    with pytest.raises(ValueError, match=r"placeholder .\{\{\$\.inputs\.parameters\['x'\]\.json\}\}. "
                                         r"in .* is not supported by run-spec"):
        spec_runner.substitute("{{$.inputs.parameters['x'].json}}", executor_input)
    spec = _spec({"a": "one"}, {})
    spec.root.dag.tasks["a"].inputs.parameters["text"].runtime_value.Clear()
    spec.root.dag.tasks["a"].inputs.parameters["text"].runtime_value.constant_value.string_value = "one"
    with pytest.raises(spec_check.SpecConformanceError, match=r"a: \[constant-runtime-values\] parameters text"):
        spec_runner.SpecRunner(spec, str(tmp_path))
