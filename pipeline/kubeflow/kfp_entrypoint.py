"""The container entrypoint of every task of the ``--target kfp`` package: TFX's
``kubeflow_v2_run_executor``, given the ExecutorInput that open-source Kubeflow
Pipelines really sends.

What the open-source backend (kubeflow/pipelines ``backend/src/v2/``) sends, and
what TFX 1.16's entrypoint makes of it:

* **Input artifacts arrive untyped.** The driver resolves each input from ML
  Metadata (``driver/driver.go`` resolveUpstreamArtifacts ->
  ``metadata/client.go`` GetOutputArtifactsByExecutionId, which fills
  ``Schema: ""``; ``OutputArtifact.ToRuntimeArtifact`` turns it into
  ``type: {instanceSchema: ""}``). TFX's
  ``kubeflow_v2_entrypoint_utils._retrieve_class_path`` then calls
  ``yaml.safe_load("")`` (None) and fails with ``AttributeError: 'NoneType'
  object has no attribute 'get'``: tensorflow/tfx#7768. This entrypoint gives
  each input artifact the type of the task's own ``inputDefinitions``, which
  the compiled spec already passes as ``--json_serialized_inputs_spec_args``.
* **``executor-logs``.** With log publishing on (the driver's default), the
  driver adds an output ``executor-logs`` typed ``system.Artifact``
  (``driver/driver.go`` provisionOutputs); the launcher writes the task's log
  there itself (``component/launcher_v2.go`` getLogWriter). TFX cannot import
  ``system.Artifact``; the output is left out of what TFX sees.
* Anything else it cannot map to a TFX artifact class stops the task with one
  message naming the task, the artifact and what to do.

It also registers ``s3://`` (`components.object_store`) before TFX runs, and ends
the process cleanly once it was used (tensorflow/io#2039).

Command line: ``python -m pipeline.kubeflow.kfp_entrypoint --kfp_task NAME`` followed by
TFX's own arguments (``--executor_class_path``,
``--json_serialized_invocation_args {{$}}``,
``--json_serialized_inputs_spec_args``, Beam arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from typing import List, Optional, Tuple

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

TASK_FLAG = "--kfp_task"
INVOCATION_FLAG = "--json_serialized_invocation_args"
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"
TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
ENTRYPOINT = "pipeline.kubeflow.kfp_entrypoint"
# Outputs the backend adds that are its own business, not the component's (driver/driver.go provisionOutputs).
BACKEND_OUTPUTS = ("executor-logs",)


class EntrypointError(RuntimeError):
    """The ExecutorInput holds an artifact this entrypoint cannot give TFX."""


def _type_is_empty(artifact_type: pipeline_spec_pb2.ArtifactTypeSchema) -> bool:
    kind = artifact_type.WhichOneof("kind")
    return kind is None or (kind == "instance_schema" and not artifact_type.instance_schema.strip())


def _class_path(task: str, side: str, key: str, artifact_type: pipeline_spec_pb2.ArtifactTypeSchema) -> str:
    """The TFX artifact class `artifact_type` names (as TFX's entrypoint resolves it), importable."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils
    from tfx.utils import import_utils

    described = json_format.MessageToJson(artifact_type, indent=None)
    try:
        path = utils._retrieve_class_path(artifact_type)  # noqa: SLF001 (TFX's own resolution, reused)
        import_utils.import_class_by_path(path)
    except Exception as e:  # noqa: BLE001 (any failure here is the same user-facing error)
        raise EntrypointError(
            f"task {task}: {side} artifact {key!r} has type {described}, which is no TFX artifact class "
            f"({type(e).__name__}: {e}). Compile the package with `mmoe-pipeline compile --target kfp` from the "
            "same version of this project as the image, so that the spec's types and the image's classes agree."
        ) from None
    return path


def restore(executor_input: pipeline_spec_pb2.ExecutorInput,
            inputs_spec: Optional[pipeline_spec_pb2.ComponentInputsSpec], task: str) -> List[str]:
    """Makes `executor_input` (in place) what TFX's entrypoint can read; returns what it changed."""
    changes = []
    for key, artifact_list in executor_input.inputs.artifacts.items():
        for artifact in artifact_list.artifacts:
            if _type_is_empty(artifact.type):
                if inputs_spec is None or key not in inputs_spec.artifacts:
                    raise EntrypointError(
                        f"task {task}: input artifact {key!r} ({artifact.uri}) arrived without a type (as "
                        "open-source Kubeflow Pipelines sends it, tensorflow/tfx#7768) and the task's "
                        f"{INPUTS_SPEC_FLAG} has no definition for it. Recompile the package with "
                        "`mmoe-pipeline compile --target kfp`, which passes every input's type."
                    )
                artifact.type.CopyFrom(inputs_spec.artifacts[key].artifact_type)
                changes.append(f"input {key}: type from the task's inputDefinitions")
            _class_path(task, "input", key, artifact.type)
    for key in list(executor_input.outputs.artifacts):
        if key in BACKEND_OUTPUTS:
            del executor_input.outputs.artifacts[key]
            changes.append(f"output {key}: left out (the launcher writes it)")
            continue
        for artifact in executor_input.outputs.artifacts[key].artifacts:
            _class_path(task, "output", key, artifact.type)
    return changes


def _split(argv: List[str]) -> Tuple[str, List[str]]:
    """(the task name, TFX's arguments) from our command line."""
    parser = argparse.ArgumentParser(prog=ENTRYPOINT, add_help=False)
    parser.add_argument(TASK_FLAG, required=True)
    ours, rest = parser.parse_known_args(argv)
    return ours.kfp_task, rest


def _value(args: List[str], flag: str) -> Optional[int]:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return i + 1
    return None


def prepare_args(argv: List[str]) -> Tuple[str, List[str], List[str]]:
    """(task, TFX's arguments with the ExecutorInput restored, what changed)."""
    task, args = _split(argv)
    position = _value(args, INVOCATION_FLAG)
    if position is None:
        raise EntrypointError(f"task {task}: no {INVOCATION_FLAG} argument; the container args must pass "
                              "the ExecutorInput as '{{$}}'.")
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(args[position], executor_input, ignore_unknown_fields=True)
    inputs_spec = None
    spec_position = _value(args, INPUTS_SPEC_FLAG)
    if spec_position is not None and args[spec_position]:
        inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
        json_format.Parse(args[spec_position], inputs_spec, ignore_unknown_fields=True)
    changes = restore(executor_input, inputs_spec, task)
    args = list(args)
    args[position] = json_format.MessageToJson(executor_input, indent=None)
    return task, args, changes


def _uris(executor_input_json: str) -> List[str]:
    raw = json.loads(executor_input_json)
    uris = []
    for side in ("inputs", "outputs"):
        for artifact_list in raw.get(side, {}).get("artifacts", {}).values():
            uris.extend(a.get("uri", "") for a in artifact_list.get("artifacts", []))
    uris.append(raw.get("outputs", {}).get("outputFile", ""))
    return uris


def main(argv: Optional[List[str]] = None) -> None:
    from components import object_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    status = 1
    try:
        task, args, changes = prepare_args(argv)
        for change in changes:
            logging.info("%s: %s", task, change)
        object_store.enable(_uris(args[_value(args, INVOCATION_FLAG)]))
        from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

        # TFX's own `app.run` hands its parser sys.argv with the program path, which then counts as a Beam
        # argument: any Beam argument makes TFX build and stage a package of itself for every Beam
        # component. Only the real Beam arguments are passed on here.
        tfx_entrypoint.main(tfx_entrypoint._parse_flags(args))  # noqa: SLF001 (TFX's own parser)
        status = 0
    except (EntrypointError, object_store.ObjectStoreError) as e:
        logging.error("%s", e)
    except Exception:  # noqa: BLE001 (the task fails with the executor's traceback)
        traceback.print_exc()
    object_store.exit_now(status)


if __name__ == "__main__":
    main()
