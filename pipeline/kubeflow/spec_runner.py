"""Runs a compiled Kubeflow Pipelines package here, task by task, as the open-source backend does.

Strict by default: each task gets what the KFP 2.x driver and launcher
(kubeflow/pipelines ``backend/src/v2/``, tag 2.5.0; master the same where cited)
give a pod, derived from their source, each behaviour citing its file and
function below:

* the run's pipeline root from its runtime config, else the ``kfp-launcher``
  default, else ``minio://mlpipeline/v2/artifacts``; the run root
  ``ROOT/PIPELINE/RUN_ID`` (`run_root`);
* input artifacts read back from ML Metadata: ``instanceSchema: ""``, the
  artifact's MLMD id as its name, custom properties as MLMD stores them
  (numbers as doubles, booleans as 0/1, structs and lists wrapped), plus
  ``display_name`` and ``store_session_info`` (`Metadata`);
* output artifacts as ``provisionOutputs`` lays them out
  (``RUN_ROOT/TASK/UUID/NAME``), with an ``executor-logs`` output when log
  publishing is on (the driver's default);
* ``{{$}}`` and the other placeholders as ``getPlaceholders`` fills them
  (remote URIs; ``.path`` as ``LocalPathForURI``), output folders as
  ``prepareOutputFolders`` demands them (a URI that is not gs://, minio://,
  s3:// or oci:// fails the task), input artifacts downloaded and output
  artifacts uploaded as ``downloadArtifacts`` / ``uploadOutputArtifacts`` do;
* caching as ``cacheutils.GenerateCacheKey`` keys it (input artifact *names*,
  parameters, output specs, command and image), across runs of one `Metadata`.

What differs, and why: each task is a subprocess of this machine, not a pod.
The pod's private filesystem (``/tmp/kfp_outputs/output_metadata.json``, the
``/s3/...`` local copies) is a folder per task under the work directory; the
image's ``python`` is this interpreter; Kubernetes (resources, node selectors,
tolerations, the image itself) is not applied; ``lifecycle.preCacheCheck`` is
not run (the backend never runs it either). What only a cluster proves: see
the README's Kubeflow section.

Over 400 lines: one emulation of the backend's driver and launcher, each behaviour beside the citation of
the backend file and function it follows; split, a behaviour would be apart from its neighbours in the
same Go function.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import uuid
from typing import Dict, List, Mapping, Optional, Set

from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.graph.config import DEFAULT_BACKEND_ROOT
from pipeline.kubeflow import spec_check

PYTHON_NAMES = ("python", "python3", "python3.10")
LOG_TAIL_LINES = 30
DEFAULT_PARALLELISM = 2  # tasks at once; each is a process of its own
# backend/src/v2/component/launcher_v2.go OutputMetadataFilepath (2.5.0): the same path in every pod.
OUTPUT_METADATA_FILE = "/tmp/kfp_outputs/output_metadata.json"
LOG_ARTIFACT = "executor-logs"  # backend/src/v2/driver/driver.go provisionOutputs
# backend/src/v2/component/launcher_v2.go LocalPathForURI: scheme -> local folder in the pod.
LOCAL_PATH_PREFIXES = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}
STATE_FILE = "metadata.json"


class TaskFailed(RuntimeError):
    """A task failed, as its pod would."""


@dataclasses.dataclass
class TaskResult:
    name: str
    command: List[str]
    seconds: float
    outputs: Dict[str, List[dict]]  # output name -> RuntimeArtifacts as the next task reads them
    log_path: str
    cached: bool = False


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


def pipeline_root_of(pipeline_root: Optional[str], launcher_default_root: Optional[str] = None) -> str:
    """driver/driver.go RootDAG (driver/root_dag.go on master): the runtime config's root, else
    config/env.go DefaultPipelineRoot (the namespace's kfp-launcher ConfigMap, else
    minio://mlpipeline/v2/artifacts)."""
    return pipeline_root or launcher_default_root or DEFAULT_BACKEND_ROOT


def run_root(pipeline_root: Optional[str], pipeline_name: str, run_id: str,
             launcher_default_root: Optional[str] = None) -> str:
    """The run's root as the backend builds it: `pipeline_root_of`, then metadata/client.go GetPipeline
    appends PIPELINE/RUN_ID with GenerateOutputURI (no path.Join: it keeps the scheme's //)."""
    return generate_output_uri(pipeline_root_of(pipeline_root, launcher_default_root), [pipeline_name, run_id])


def generate_output_uri(root: str, parts: List[str]) -> str:
    """metadata/client.go GenerateOutputURI, the query string dropped."""
    root = root.split("?", 1)[0]
    return root.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts if p)


def local_path_for_uri(uri: str) -> str:
    """component/launcher_v2.go LocalPathForURI (oci:// aside: no model cars here)."""
    for scheme, prefix in LOCAL_PATH_PREFIXES.items():
        if uri.startswith(scheme):
            return prefix + uri[len(scheme):]
    raise ValueError(f"failed to generate local path for URI {uri}: unsupported storage scheme")


def _format_number(number: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest decimal, never an exponent."""
    text = repr(float(number))
    if "e" in text or "E" in text:
        text = f"{number:f}".rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def _value_to_text(value: struct_pb2.Value) -> str:
    """component/launcher_v2.go getPlaceholders, input parameters."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return _format_number(value.number_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    return json.dumps(json_format.MessageToDict(value), separators=(",", ":"))


_PLACEHOLDER = re.compile(r"\{\{\$(?P<path>[^}]*)\}\}")
_INPUT_PARAM = re.compile(r"^\.inputs\.parameters\['(?P<key>[^']+)'\]$")
_ARTIFACT = re.compile(r"^\.(?P<side>inputs|outputs)\.artifacts\['(?P<key>[^']+)'\]\.(?P<field>uri|path)$")


def substitute(arg: str, executor_input: pipeline_spec_pb2.ExecutorInput, pod_dir: str = "/") -> str:
    """One command-line argument with the placeholders of component/launcher_v2.go getPlaceholders
    filled (``.path`` is the pod's local copy under `pod_dir`); any other placeholder raises (the
    launcher would pass it through verbatim)."""

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
            uri = side.artifacts[m.group("key")].artifacts[0].uri
            return uri if m.group("field") == "uri" else _in_pod(pod_dir, local_path_for_uri(uri))
        raise ValueError(f"placeholder {match.group(0)!r} in {arg!r} is not supported by run-spec")

    return _PLACEHOLDER.sub(replace, arg)


def _in_pod(pod_dir: str, path: str) -> str:
    return os.path.join(pod_dir, path.lstrip("/"))


def local_command(command: List[str]) -> List[str]:
    """The container command with the image's Python replaced by this interpreter."""
    if command and os.path.basename(command[0]) in PYTHON_NAMES:
        return [sys.executable, *command[1:]]
    return list(command)


def artifact_schema(artifact_type: pipeline_spec_pb2.ArtifactTypeSchema) -> str:
    """component/launcher_v2.go getArtifactSchema."""
    kind = artifact_type.WhichOneof("kind")
    if kind == "instance_schema":
        return artifact_type.instance_schema
    if kind == "schema_title":
        return "title: " + artifact_type.schema_title
    raise ValueError(f"unsupported artifact type schema {json_format.MessageToDict(artifact_type)}")


def to_mlmd_value(value: struct_pb2.Value) -> dict:
    """metadata/converter.go StructValueToMLMDValue: numbers become doubles, booleans ints, lists and
    structs are wrapped; null is refused."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return {"string_value": value.string_value}
    if kind == "number_value":
        return {"double_value": value.number_value}
    if kind == "bool_value":
        return {"int_value": int(value.bool_value)}
    if kind == "list_value":
        return {"struct_value": {"list": json_format.MessageToDict(value.list_value)}}
    if kind == "struct_value":
        return {"struct_value": {"struct": json_format.MessageToDict(value.struct_value)}}
    raise ValueError(f"unknown/unsupported value type {kind}")


def from_mlmd_value(value: dict):
    """metadata/converter.go toRuntimeArtifact: MLMD value -> the metadata's JSON value."""
    (kind, raw), = value.items()
    if kind == "int_value":
        return float(raw)
    return raw


class Metadata:
    """The ML Metadata records the driver and launcher keep: artifacts, each task's outputs, cache
    entries; in memory, and as JSON in `path` (if given) so that later runs see them."""

    def __init__(self, path: Optional[str] = None):
        self.path = path
        self._lock = threading.Lock()
        self.state = {"next_id": 1, "artifacts": {}, "executions": {}, "cache": {}}
        if path and os.path.exists(path):
            with open(path) as f:
                self.state = json.load(f)

    def _save(self) -> None:
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path + ".tmp", "w") as f:
                json.dump(self.state, f, indent=1, sort_keys=True)
            os.replace(self.path + ".tmp", self.path)

    def record_artifact(self, output_name: str, schema: str, artifact: pipeline_spec_pb2.RuntimeArtifact,
                        session_info: str) -> str:
        """metadata/client.go RecordArtifact + converter.go toMLMDArtifact; returns the artifact's id."""
        custom = {k: to_mlmd_value(v) for k, v in artifact.metadata.fields.items()}
        custom.setdefault("display_name", {"string_value": output_name})
        custom.setdefault("store_session_info", {"string_value": session_info})
        with self._lock:
            artifact_id = str(self.state["next_id"])
            self.state["next_id"] += 1
            self.state["artifacts"][artifact_id] = {"uri": artifact.uri, "schema": schema,
                                                    "custom_properties": custom}
            self._save()
        return artifact_id

    def runtime_artifact(self, artifact_id: str) -> pipeline_spec_pb2.RuntimeArtifact:
        """An upstream output as the driver resolves it: metadata/client.go
        GetOutputArtifactsByExecutionId (Schema: "") -> OutputArtifact.ToRuntimeArtifact ->
        converter.go toRuntimeArtifact (the MLMD id as the name)."""
        stored = self.state["artifacts"][artifact_id]
        artifact = pipeline_spec_pb2.RuntimeArtifact(name=artifact_id, uri=stored["uri"])
        artifact.metadata.update({k: from_mlmd_value(v) for k, v in stored["custom_properties"].items()})
        artifact.type.instance_schema = ""
        return artifact

    def record_execution(self, run_id: str, task: str, outputs: Dict[str, List[str]],
                         fingerprint: str) -> str:
        with self._lock:
            execution_id = f"{run_id}/{task}"
            self.state["executions"][execution_id] = {"outputs": outputs}
            if fingerprint:
                # launcher_v2.go Execute: CreateExecutionCache after a successful run.
                self.state["cache"][fingerprint] = execution_id
            self._save()
        return execution_id

    def outputs_of(self, execution_id: str) -> Dict[str, List[str]]:
        return self.state["executions"][execution_id]["outputs"]

    def cached_execution(self, fingerprint: str) -> Optional[str]:
        return self.state["cache"].get(fingerprint)


def fingerprint(executor_input: pipeline_spec_pb2.ExecutorInput, component: pipeline_spec_pb2.ComponentSpec,
                container) -> str:
    """cacheutils/cache.go GenerateCacheKey + GenerateFingerPrint, as driver/driver.go getFingerPrint
    calls them: input artifact names (MLMD ids), parameter values, output artifacts without URIs,
    output parameter types, the raw command + args and the image; sha256 of its JSON."""
    key = {
        "inputArtifactNames": {k: {"artifactNames": [a.name for a in v.artifacts]}
                               for k, v in executor_input.inputs.artifacts.items()},
        "inputParameterValues": {k: json_format.MessageToDict(v)
                                 for k, v in executor_input.inputs.parameter_values.items()},
        "outputArtifactsSpec": {k: json_format.MessageToDict(pipeline_spec_pb2.RuntimeArtifact(
            name=v.artifacts[0].name, type=v.artifacts[0].type, metadata=v.artifacts[0].metadata))
            for k, v in executor_input.outputs.artifacts.items() if v.artifacts},
        "outputParametersSpec": {k: pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(p.parameter_type)
                                 for k, p in component.output_definitions.parameters.items()},
        "containerSpec": {"image": container.image, "cmdArgs": [*container.command, *container.args]},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def session_info(root: str) -> str:
    """config/env.go GetStoreSessionInfo with no kfp-launcher providers (config/s3.go: fromEnv)."""
    provider = root.split("://", 1)[0]
    if provider == "minio":  # config/env.go getDefaultMinioSessionInfo
        params = {"accessKeyKey": "accesskey", "disableSSL": "true", "endpoint": "minio-service.kubeflow:9000",
                  "fromEnv": "false", "region": "minio", "secretKeyKey": "secretkey",
                  "secretName": "mlpipeline-minio-artifact"}
    else:
        params = {"fromEnv": "true"}
    return json.dumps({"Provider": provider, "Params": params}, separators=(",", ":"))


def _copy_tree(source: str, target: str) -> int:
    """Copies a file or a folder (recursively) through TFX fileio; returns the files copied
    (objectstore.DownloadBlob / UploadBlob)."""
    from tfx.dsl.io import fileio

    if not fileio.exists(source):
        return 0
    if not fileio.isdir(source):
        fileio.makedirs(os.path.dirname(target))
        fileio.copy(source, target, overwrite=True)
        return 1
    copied = 0
    for directory, _, files in fileio.walk(source):
        relative = directory[len(source):].lstrip("/")
        fileio.makedirs(os.path.join(target, relative))
        for name in files:
            fileio.copy(os.path.join(directory, name), os.path.join(target, relative, name), overwrite=True)
            copied += 1
    return copied


class SpecRunner:
    """Runs one compiled spec as one KFP run; see the module docstring.

    `pipeline_root` is the run's runtime config root (what `schedule` submits); None means
    the backend's default (`launcher_default_root`, the namespace's kfp-launcher ConfigMap, else
    minio://). `publish_logs` is the driver's log publishing (on by default, as in KFP 2.5).
    `metadata` carries artifacts and cache entries from run to run."""

    def __init__(self, spec: pipeline_spec_pb2.PipelineSpec, pipeline_root: Optional[str], work_dir: str,
                 run_id: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                 metadata: Optional[Metadata] = None, publish_logs: bool = True,
                 launcher_default_root: Optional[str] = None):
        violations = [v for v in spec_check.check(spec) if v.rule not in spec_check.RUNTIME_RULES]
        if violations:
            raise spec_check.SpecConformanceError("the spec", violations)
        self.spec = spec
        self.deployment = spec_check.deployment_config(spec)
        self.run_id = run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.pipeline_root = pipeline_root_of(pipeline_root, launcher_default_root)
        self.run_root = run_root(pipeline_root, spec.pipeline_info.name, self.run_id, launcher_default_root)
        self.work_dir = os.path.join(work_dir, self.run_id)
        self.env = dict(os.environ if env is None else env)
        self.metadata = metadata or Metadata(os.path.join(work_dir, STATE_FILE))
        self.publish_logs = publish_logs
        self.session_info = session_info(self.pipeline_root)
        self.executions: Dict[str, str] = {}  # task -> MLMD execution id
        self.outputs: Dict[str, Dict[str, List[dict]]] = {}
        self.results: Dict[str, TaskResult] = {}

    def _upstream_artifacts(self, name: str, key: str, producer) -> List[pipeline_spec_pb2.RuntimeArtifact]:
        execution = self.executions.get(producer.producer_task)
        ids = self.metadata.outputs_of(execution).get(producer.output_artifact_key) if execution else None
        if ids is None:
            raise ValueError(f"{name}: input {key!r} needs {producer.producer_task}.{producer.output_artifact_key}, "
                             "which no task produced")
        return [self.metadata.runtime_artifact(i) for i in ids]

    def provision_outputs(self, name: str, component) -> pipeline_spec_pb2.ExecutorInput.Outputs:
        """driver/driver.go provisionOutputs (2.5.0): RUN_ROOT/TASK/UUID/NAME, the definitions' type and
        metadata, no name; executor-logs typed system.Artifact when logs are published; the one
        OutputMetadataFilepath."""
        outputs = pipeline_spec_pb2.ExecutorInput.Outputs(output_file=OUTPUT_METADATA_FILE)
        definitions = {k: v for k, v in component.output_definitions.artifacts.items()}
        if self.publish_logs:
            definitions[LOG_ARTIFACT] = pipeline_spec_pb2.ComponentOutputsSpec.ArtifactSpec(
                artifact_type=pipeline_spec_pb2.ArtifactTypeSchema(schema_title="system.Artifact"))
        salt = str(uuid.uuid4())
        for key, definition in definitions.items():
            artifact = outputs.artifacts[key].artifacts.add()
            artifact.uri = generate_output_uri(self.run_root, [name, salt, key])
            artifact.type.CopyFrom(definition.artifact_type)
            if definition.HasField("metadata"):
                artifact.metadata.CopyFrom(definition.metadata)
        for key in component.output_definitions.parameters:
            outputs.parameters[key].output_file = f"/tmp/kfp/outputs/{key}"
        return outputs

    def executor_input(self, name: str) -> pipeline_spec_pb2.ExecutorInput:
        """What the driver hands the launcher (driver/driver.go Container -> resolveInputs,
        provisionOutputs)."""
        task = self.spec.root.dag.tasks[name]
        component = self.spec.components[task.component_ref.name]
        executor_input = pipeline_spec_pb2.ExecutorInput()
        inputs = executor_input.inputs
        for key, parameter in task.inputs.parameters.items():
            if parameter.runtime_value.WhichOneof("value") != "constant":
                raise ValueError(f"{name}: parameter {key!r} is not a constant runtime value")
            inputs.parameter_values[key].CopyFrom(parameter.runtime_value.constant)
        for key, artifact_spec in task.inputs.artifacts.items():
            for artifact in self._upstream_artifacts(name, key, artifact_spec.task_output_artifact):
                inputs.artifacts[key].artifacts.add().CopyFrom(artifact)
        executor_input.outputs.CopyFrom(self.provision_outputs(name, component))
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
        container = executor.container
        executor_input = self.executor_input(name)
        key = fingerprint(executor_input, component, container) if task.caching_options.enable_cache else ""
        cached = self.metadata.cached_execution(key) if key else None
        if cached:  # driver/driver.go reuseCachedOutputs: the cached execution's artifacts, nothing runs
            self.executions[name] = cached
            return self._done(name, [], time.monotonic() - start, "", cached=True)
        pod = os.path.join(self.work_dir, name)
        os.makedirs(pod, exist_ok=True)
        # The one per-pod path, inside this task's folder.
        executor_input.outputs.output_file = _in_pod(pod, OUTPUT_METADATA_FILE)
        # launcher_v2.go Execute -> prepareOutputFolders: every output needs a local path.
        for output_key, artifact_list in executor_input.outputs.artifacts.items():
            for artifact in artifact_list.artifacts:
                try:
                    os.makedirs(os.path.dirname(_in_pod(pod, local_path_for_uri(artifact.uri))), exist_ok=True)
                except ValueError as e:
                    raise TaskFailed(f"task {name} failed before its command ran: failed to generate local "
                                     f"storage path for output artifact {output_key!r}: {e} (the launcher's "
                                     "prepareOutputFolders; use an s3:// or gs:// pipeline root)") from None
        self._download(name, executor_input, pod)
        command = local_command([substitute(a, executor_input, pod) for a in [*container.command, *container.args]])
        os.makedirs(os.path.dirname(executor_input.outputs.output_file), exist_ok=True)
        log_path = os.path.join(pod, "log.txt")
        with open(os.path.join(pod, "executor_input.json"), "w") as f:
            f.write(json_format.MessageToJson(executor_input))
        logging.info("run-spec: %s: %s", name, shlex.join(command[:5]) + " ...")
        env = {**self.env, **{e.name: e.value for e in container.env}}
        with open(log_path, "w") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=pod)
        seconds = time.monotonic() - start
        if code != 0:
            with open(log_path) as f:
                tail = "".join(collections.deque(f, LOG_TAIL_LINES))
            raise TaskFailed(f"task {name} failed (exit {code}) after {seconds:.0f} s; full log: {log_path}\n{tail}")
        if self.publish_logs:  # launcher_v2.go getLogWriter: the log is the executor-logs artifact
            logs = _in_pod(pod, local_path_for_uri(executor_input.outputs.artifacts[LOG_ARTIFACT].artifacts[0].uri))
            with open(log_path, "rb") as src, open(logs, "wb") as dst:
                dst.write(src.read())
        outputs = self._publish(name, executor_input, pod)
        self.executions[name] = self.metadata.record_execution(self.run_id, name, outputs, key)
        return self._done(name, command, seconds, log_path)

    def _download(self, name: str, executor_input, pod: str) -> None:
        """launcher_v2.go downloadArtifacts: every input artifact with a storage URI, copied to the pod."""
        for key, artifact_list in executor_input.inputs.artifacts.items():
            if not artifact_list.artifacts:
                continue
            uri = artifact_list.artifacts[0].uri
            try:
                local = _in_pod(pod, local_path_for_uri(uri))
            except ValueError:
                continue  # "does not have a recognized storage URI ... Skipping downloading"
            try:
                _copy_tree(uri, local)
            except Exception as e:  # noqa: BLE001 (the launcher fails the task on any download error)
                raise TaskFailed(f"task {name} failed: failed to download input artifact {key!r} from remote "
                                 f"storage URI {uri!r}: {type(e).__name__}: {e}") from None

    def _publish(self, name: str, executor_input, pod: str) -> Dict[str, List[str]]:
        """launcher_v2.go getExecutorOutputFile + uploadOutputArtifacts: the executor's output merged
        in (mergeRuntimeArtifacts), the pod's local copy uploaded, the artifact recorded in MLMD."""
        executor_output = pipeline_spec_pb2.ExecutorOutput()
        if os.path.exists(executor_input.outputs.output_file):
            with open(executor_input.outputs.output_file) as f:
                json_format.Parse(f.read(), executor_output)  # protojson.Unmarshal: unknown fields fail
        recorded: Dict[str, List[str]] = {}
        for key, artifact_list in executor_input.outputs.artifacts.items():
            if not artifact_list.artifacts:
                continue
            recorded[key] = []
            for artifact in artifact_list.artifacts:
                produced = executor_output.artifacts.get(key)
                if produced is not None and produced.artifacts:
                    source = produced.artifacts[0]
                    if source.uri:
                        artifact.uri = source.uri
                    for field, value in source.metadata.fields.items():
                        artifact.metadata.fields[field].CopyFrom(value)
                try:
                    local = _in_pod(pod, local_path_for_uri(artifact.uri))
                except ValueError:
                    local = None  # "does not have a recognized storage URI ... Skipping uploading"
                if local and os.path.exists(local):
                    _copy_tree(local, artifact.uri)
                recorded[key].append(self.metadata.record_artifact(
                    key, artifact_schema(artifact.type), artifact, self.session_info))
        return recorded

    def _import(self, name, task, importer, start) -> TaskResult:
        """component/importer_launcher.go: the artifact at a constant URI, recorded in MLMD."""
        uri = importer.artifact_uri
        if uri.WhichOneof("value") != "constant":
            raise ValueError(f"{name}: importer artifact_uri must be a constant")
        component = self.spec.components[task.component_ref.name]
        (key,) = component.output_definitions.artifacts.keys()
        artifact = pipeline_spec_pb2.RuntimeArtifact(uri=uri.constant.string_value, metadata=importer.metadata,
                                                     type=importer.type_schema)
        artifact_id = self.metadata.record_artifact(key, artifact_schema(importer.type_schema), artifact,
                                                    self.session_info)
        self.executions[name] = self.metadata.record_execution(self.run_id, name, {key: [artifact_id]}, "")
        return self._done(name, [], time.monotonic() - start, "")

    def _done(self, name, command, seconds, log_path, cached: bool = False) -> TaskResult:
        outputs = {key: [json_format.MessageToDict(self.metadata.runtime_artifact(i)) for i in ids]
                   for key, ids in self.metadata.outputs_of(self.executions[name]).items()}
        self.outputs[name] = outputs
        result = TaskResult(name, command, seconds, outputs, log_path, cached)
        self.results[name] = result
        logging.info("run-spec: %s %s in %.1f s.", name, "cached" if cached else "done", seconds)
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


def run_spec(path: str, work_dir: str, pipeline_root: Optional[str] = None, run_id: Optional[str] = None,
             parallelism: int = DEFAULT_PARALLELISM, **options) -> SpecRunner:
    """Loads the package at `path` as kfp.Client does and runs it as `schedule` submits it: the run's
    root is `pipeline_root`, else the package's defaultPipelineRoot. `options` go to `SpecRunner`."""
    spec, violations = spec_check.load_package(path)
    if violations:
        raise spec_check.SpecConformanceError(path, violations)
    runner = SpecRunner(spec, pipeline_root or spec.default_pipeline_root or None, work_dir, run_id=run_id,
                        **options)
    runner.run(parallelism)
    return runner


def _constant(spec: pipeline_spec_pb2.PipelineSpec, task: str, parameter: str) -> str:
    try:
        return spec.root.dag.tasks[task].inputs.parameters[parameter].runtime_value.constant.string_value
    except KeyError:
        raise KeyError(f"the spec has no task {task!r} with a parameter {parameter!r}") from None


def decision(runner: SpecRunner) -> dict:
    """The push decision of a finished `run_spec` (the same JSON as a local run's decision.json)."""
    from components.names import (
        EVALUATOR_COMPONENT,
        PUSHER_COMPONENT,
        SCHEMA_COMPONENT,
        SERVING_CHECK_COMPONENT,
        SPEC_KEY,
        TRAINER_COMPONENT,
    )
    from components.schema import FILLED_PROPERTY
    from components.spec import DatasetSpec
    from pipeline.reporting import report

    spec = runner.spec
    dataset_spec = DatasetSpec.from_dict(
        json.loads(_constant(spec, TRAINER_COMPONENT, "custom_config"))[SPEC_KEY], where="the Trainer's custom_config"
    )
    serving_model_dir = json.loads(_constant(spec, PUSHER_COMPONENT, "push_destination"))["filesystem"]["base_directory"]
    pushed_model = runner.outputs[PUSHER_COMPONENT]["pushed_model"][0].get("metadata", {})
    pushed = bool(pushed_model.get("pushed"))
    outputs = report.RunOutputs(
        evaluation=runner.outputs[EVALUATOR_COMPONENT]["evaluation"][0]["uri"],
        serving=runner.outputs[SERVING_CHECK_COMPONENT]["blessing"][0]["uri"],
        pushed=pushed,
        pushed_destination=pushed_model.get("pushed_destination") if pushed else None,
        model_run=runner.outputs[TRAINER_COMPONENT]["model_run"][0]["uri"],
        filled_missing=runner.outputs[SCHEMA_COMPONENT]["schema"][0].get("metadata", {}).get(FILLED_PROPERTY),
    )
    return report.decide_from(spec.pipeline_info.name, dataset_spec, serving_model_dir, outputs)
