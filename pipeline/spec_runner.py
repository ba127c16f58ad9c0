"""Runs a compiled Kubeflow Pipelines spec on this machine, task by task, the way KFP v2 does.

For each task of the root DAG, in dependency order, `run_spec` does what the
KFP v2 driver and launcher do in a pod:

1. build the ``ExecutorInput`` (parameters from the task's constant runtime
   values; input artifacts from the upstream tasks' executor outputs, typed
   by the consumer's input definitions; output artifacts with URIs under the
   pipeline root; the ``outputFile``);
2. substitute it into the task's own container ``command`` + ``args`` from the
   ``deploymentSpec`` (``{{$}}`` and the ``{{$.inputs...}}`` / ``{{$.outputs...}}``
   placeholders), with the image's ``python`` replaced by this interpreter;
3. run that command as a subprocess (for TFX tasks: TFX's
   ``kubeflow_v2_run_executor`` entrypoint with the executor class the spec
   names), with its log under ``WORK_DIR/<task>/``;
4. read ``executor_output.json`` back: the output artifacts (URI, metadata such
   as a blessing's ``blessed``) become the inputs of the tasks downstream.

Importer tasks are handled by the launcher itself, as in KFP. What it does not
do: caching (every task runs), Kubernetes (resources, node selectors and the
image are not applied: the image's interpreter is replaced by this one), and
``lifecycle.preCacheCheck`` hooks (the open-source backend never runs them
either; `spec_check` flags them).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
import threading
from typing import Dict, List, Mapping, Optional, Set

from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import spec_check

PYTHON_NAMES = ("python", "python3", "python3.10")
LOG_TAIL_LINES = 30
DEFAULT_PARALLELISM = 2  # tasks at once; each is a process of its own


class TaskFailed(RuntimeError):
    """A task's command exited with an error."""


@dataclasses.dataclass
class TaskResult:
    name: str
    command: List[str]
    seconds: float
    outputs: Dict[str, List[dict]]  # output name -> RuntimeArtifacts as JSON dicts
    log_path: str


def upstream_tasks(spec: pipeline_spec_pb2.PipelineSpec) -> Dict[str, Set[str]]:
    """For each root-DAG task, the tasks it waits for: its dependentTasks and its artifacts' producers."""
    tasks = spec.root.dag.tasks
    upstream = {name: set(task.dependent_tasks) for name, task in tasks.items()}
    for name, task in tasks.items():
        for artifact in task.inputs.artifacts.values():
            if artifact.task_output_artifact.producer_task:
                upstream[name].add(artifact.task_output_artifact.producer_task)
    for name, deps in upstream.items():
        unknown = deps - set(tasks)
        if unknown:
            raise ValueError(f"task {name!r} depends on unknown tasks {sorted(unknown)}")
    return upstream


def topological_order(spec: pipeline_spec_pb2.PipelineSpec) -> List[str]:
    """Root-DAG task names, each after every task it depends on (ties broken by name)."""
    tasks = spec.root.dag.tasks
    upstream = upstream_tasks(spec)
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in done and upstream[n] <= done)
        if not ready:
            raise ValueError(f"the DAG has a cycle among {sorted(set(tasks) - done)}")
        order.extend(ready)
        done.update(ready)
    return order


def _value_to_text(value: struct_pb2.Value) -> str:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        return str(int(number)) if number.is_integer() else str(number)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    return json.dumps(json_format.MessageToDict(value))


_PLACEHOLDER = re.compile(r"\{\{\$(?P<path>[^}]*)\}\}")
_INPUT_PARAM = re.compile(r"^\.inputs\.parameters\['(?P<key>[^']+)'\]$")
_ARTIFACT = re.compile(r"^\.(?P<side>inputs|outputs)\.artifacts\['(?P<key>[^']+)'\]\.(?P<field>uri|path)$")


def substitute(arg: str, executor_input: pipeline_spec_pb2.ExecutorInput) -> str:
    """Replaces the KFP placeholders in one command-line argument; unknown placeholders raise."""

    def replace(match):
        path = match.group("path")
        if path == "":
            return json_format.MessageToJson(executor_input, indent=None)
        if path == ".outputs.output_file":
            return executor_input.outputs.output_file
        m = _INPUT_PARAM.match(path)
        if m:
            return _value_to_text(executor_input.inputs.parameter_values[m.group("key")])
        m = _ARTIFACT.match(path)
        if m:
            side = executor_input.inputs if m.group("side") == "inputs" else executor_input.outputs
            return side.artifacts[m.group("key")].artifacts[0].uri
        raise ValueError(f"placeholder {match.group(0)!r} in {arg!r} is not supported by run-spec")

    return _PLACEHOLDER.sub(replace, arg)


def local_command(command: List[str]) -> List[str]:
    """The container command with the image's Python replaced by this interpreter."""
    if command and os.path.basename(command[0]) in PYTHON_NAMES:
        return [sys.executable, *command[1:]]
    return list(command)


class SpecRunner:
    """Runs one compiled spec under `pipeline_root`; see the module docstring."""

    def __init__(self, spec: pipeline_spec_pb2.PipelineSpec, pipeline_root: str, work_dir: Optional[str] = None,
                 run_id: Optional[str] = None, env: Optional[Mapping[str, str]] = None):
        violations = [v for v in spec_check.check(spec) if v.rule is not spec_check.NO_PRE_CACHE_CHECK]
        if violations:
            raise spec_check.SpecConformanceError("the spec", violations)
        self.spec = spec
        self.deployment = spec_check.deployment_config(spec)
        self.run_id = run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.pipeline_root = pipeline_root
        self.run_root = os.path.join(pipeline_root, self.run_id)
        self.work_dir = work_dir or os.path.join(self.run_root, ".launcher")
        self.env = dict(os.environ if env is None else env)
        self.outputs: Dict[str, Dict[str, List[dict]]] = {}
        self.results: Dict[str, TaskResult] = {}
        self._artifact_count = 0
        self._lock = threading.Lock()

    def _artifact_name(self) -> str:
        with self._lock:
            self._artifact_count += 1
            return f"{self.run_id}/artifacts/{self._artifact_count}"

    def executor_input(self, name: str) -> pipeline_spec_pb2.ExecutorInput:
        task = self.spec.root.dag.tasks[name]
        component = self.spec.components[task.component_ref.name]
        executor_input = pipeline_spec_pb2.ExecutorInput()
        inputs = executor_input.inputs
        for key, parameter in task.inputs.parameters.items():
            if parameter.runtime_value.WhichOneof("value") != "constant":
                raise ValueError(f"{name}: parameter {key!r} is not a constant runtime value")
            inputs.parameter_values[key].CopyFrom(parameter.runtime_value.constant)
        for key, artifact_spec in task.inputs.artifacts.items():
            producer = artifact_spec.task_output_artifact
            produced = self.outputs.get(producer.producer_task, {}).get(producer.output_artifact_key)
            if produced is None:
                raise ValueError(f"{name}: input {key!r} needs "
                                 f"{producer.producer_task}.{producer.output_artifact_key}, "
                                 "which no task produced")
            artifact_type = component.input_definitions.artifacts[key].artifact_type
            for raw in produced:
                artifact = inputs.artifacts[key].artifacts.add()
                json_format.ParseDict(raw, artifact)
                artifact.type.CopyFrom(artifact_type)
        task_dir = os.path.join(self.run_root, name)
        for key, definition in component.output_definitions.artifacts.items():
            artifact = executor_input.outputs.artifacts[key].artifacts.add()
            artifact.name = self._artifact_name()
            artifact.type.CopyFrom(definition.artifact_type)
            artifact.uri = os.path.join(task_dir, key)
        executor_input.outputs.output_file = os.path.join(self.work_dir, name, "executor_output.json")
        return executor_input

    def run_task(self, name: str) -> TaskResult:
        task = self.spec.root.dag.tasks[name]
        component = self.spec.components[task.component_ref.name]
        executor = self.deployment.executors[component.executor_label]
        kind = executor.WhichOneof("spec")
        start = time.monotonic()
        if kind == "importer":
            return self._import(name, task, executor.importer, start)
        if kind != "container":
            raise ValueError(f"{name}: executor kind {kind!r} cannot run on open-source KFP")
        executor_input = self.executor_input(name)
        container = executor.container
        command = local_command([substitute(a, executor_input) for a in [*container.command, *container.args]])
        task_work = os.path.dirname(executor_input.outputs.output_file)
        os.makedirs(task_work, exist_ok=True)
        for outputs in executor_input.outputs.artifacts.values():
            for artifact in outputs.artifacts:
                os.makedirs(os.path.dirname(artifact.uri), exist_ok=True)
        log_path = os.path.join(task_work, "log.txt")
        with open(os.path.join(task_work, "executor_input.json"), "w") as f:
            f.write(json_format.MessageToJson(executor_input))
        logging.info("run-spec: %s: %s", name, shlex.join(command[:4]) + " ...")
        env = {**self.env, **{e.name: e.value for e in container.env}}
        with open(log_path, "w") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=task_work)
        seconds = time.monotonic() - start
        if code != 0:
            with open(log_path) as f:
                tail = "".join(collections.deque(f, LOG_TAIL_LINES))
            raise TaskFailed(f"task {name} failed (exit {code}) after {seconds:.0f} s; full log: {log_path}\n{tail}")
        outputs = {k: [json_format.MessageToDict(a) for a in v.artifacts]
                   for k, v in executor_input.outputs.artifacts.items()}
        if os.path.exists(executor_input.outputs.output_file):
            executor_output = pipeline_spec_pb2.ExecutorOutput()
            with open(executor_input.outputs.output_file) as f:
                json_format.Parse(f.read(), executor_output, ignore_unknown_fields=True)
            for key, artifact_list in executor_output.artifacts.items():
                if key not in outputs:
                    raise ValueError(f"{name}: executor output {key!r} is not an output of the component")
                outputs[key] = [_merge(given, json_format.MessageToDict(a))
                                for given, a in zip(outputs[key], artifact_list.artifacts)]
        for artifacts in outputs.values():
            for artifact in artifacts:
                artifact.pop("type", None)  # the consumer's input definition types it
        return self._done(name, command, seconds, outputs, log_path)

    def _import(self, name, task, importer, start) -> TaskResult:
        uri = importer.artifact_uri
        if uri.WhichOneof("value") != "constant":
            raise ValueError(f"{name}: importer artifact_uri must be a constant")
        artifact = {"name": self._artifact_name(), "uri": uri.constant.string_value,
                    "metadata": json_format.MessageToDict(importer.metadata)}
        component = self.spec.components[task.component_ref.name]
        (key,) = component.output_definitions.artifacts.keys()
        return self._done(name, [], time.monotonic() - start, {key: [artifact]}, "")

    def _done(self, name, command, seconds, outputs, log_path) -> TaskResult:
        self.outputs[name] = outputs
        result = TaskResult(name, command, seconds, outputs, log_path)
        self.results[name] = result
        logging.info("run-spec: %s done in %.1f s.", name, seconds)
        return result

    def run(self, parallelism: int = DEFAULT_PARALLELISM) -> Dict[str, TaskResult]:
        """Runs every task once its upstream tasks are done, up to `parallelism` at a time (as
        Argo starts every ready task); the first failure stops the run."""
        upstream = upstream_tasks(self.spec)
        order = topological_order(self.spec)
        running: Dict[concurrent.futures.Future, str] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            while len(self.results) < len(order):
                started = set(running.values()) | set(self.results)
                for name in order:
                    if name not in started and upstream[name] <= set(self.results) and len(running) < parallelism:
                        running[pool.submit(self.run_task, name)] = name
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    error = future.exception()
                    if error is not None:
                        for pending in running:
                            pending.cancel()
                        raise error
        return self.results


def _merge(given: dict, produced: dict) -> dict:
    """The launcher's artifact updated with what the executor reported (URI, metadata)."""
    merged = dict(given)
    for key in ("uri", "metadata"):
        if produced.get(key):
            merged[key] = produced[key]
    return merged


def run_spec(path: str, pipeline_root: str, run_id: Optional[str] = None,
             parallelism: int = DEFAULT_PARALLELISM) -> SpecRunner:
    """Loads the package at `path` as kfp.Client does and runs it; returns the runner (results, outputs)."""
    spec, violations = spec_check.load_package(path)
    if violations:
        raise spec_check.SpecConformanceError(path, violations)
    runner = SpecRunner(spec, pipeline_root, run_id=run_id)
    runner.run(parallelism)
    return runner


def _constant(spec: pipeline_spec_pb2.PipelineSpec, task: str, parameter: str) -> str:
    try:
        return spec.root.dag.tasks[task].inputs.parameters[parameter].runtime_value.constant.string_value
    except KeyError:
        raise KeyError(f"the spec has no task {task!r} with a parameter {parameter!r}") from None


def decision(runner: SpecRunner) -> dict:
    """The push decision of a finished `run_spec` (the same JSON as a local run's decision.json)."""
    from components.names import SPEC_KEY
    from components.spec import DatasetSpec
    from pipeline import report

    spec = runner.spec
    dataset_spec = DatasetSpec.from_dict(
        json.loads(_constant(spec, "Trainer", "custom_config"))[SPEC_KEY], where="the Trainer's custom_config"
    )
    serving_model_dir = json.loads(_constant(spec, "Pusher", "push_destination"))["filesystem"]["base_directory"]
    pushed_model = runner.outputs["Pusher"]["pushed_model"][0].get("metadata", {})
    pushed = bool(pushed_model.get("pushed"))
    outputs = report.RunOutputs(
        evaluation=runner.outputs["Evaluator"]["evaluation"][0]["uri"],
        serving=runner.outputs["ServingCheck"]["blessing"][0]["uri"],
        pushed=pushed,
        pushed_destination=pushed_model.get("pushed_destination") if pushed else None,
        model_run=runner.outputs["Trainer"]["model_run"][0]["uri"],
    )
    return report.decide_from(spec.pipeline_info.name, dataset_spec, serving_model_dir, outputs)
