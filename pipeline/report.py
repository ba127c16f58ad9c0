"""What a finished local run produced, read from its ML Metadata store."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.eval_config import AUC_KEY, EXAMPLE_COUNT_KEY
from components.spec import DatasetSpec

NODE_CONTEXT = "node"
_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def open_store(metadata_path: str) -> mlmd.MetadataStore:
    return mlmd.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))


def _node_executions(store, pipeline_name: str, node_id: str) -> List[metadata_store_pb2.Execution]:
    context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{pipeline_name}.{node_id}")
    return store.get_executions_by_context(context.id) if context else []


def node_states(store, pipeline_name: str, node_ids) -> Dict[str, Optional[str]]:
    """The state of each node's latest execution (COMPLETE, CACHED, FAILED...), None if it never ran."""
    states = {}
    for node_id in node_ids:
        executions = _node_executions(store, pipeline_name, node_id)
        latest = max(executions, key=lambda e: e.id) if executions else None
        states[node_id] = metadata_store_pb2.Execution.State.Name(latest.last_known_state) if latest else None
    return states


def latest_output_uri(store, pipeline_name: str, node_id: str, artifact_type: str) -> Optional[str]:
    """URI of the newest artifact of `artifact_type` attributed to `node_id`, or None."""
    context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{pipeline_name}.{node_id}")
    if not context:
        return None
    type_id = store.get_artifact_type(artifact_type).id
    artifacts = [a for a in store.get_artifacts_by_context(context.id) if a.type_id == type_id]
    return max(artifacts, key=lambda a: a.id).uri if artifacts else None


@dataclasses.dataclass(frozen=True)
class SliceMetrics:
    slice_name: str
    auc: Dict[str, float]
    example_count: Dict[str, float]


def _value(metric: dict) -> Optional[float]:
    if "doubleValue" in metric:
        return float(metric["doubleValue"])
    return None


def slice_name(slice_key) -> str:
    return tfma.slicer.stringify_slice_key(slice_key) if slice_key else "Overall"


def evaluation_metrics(evaluation_uri: str, spec: DatasetSpec) -> List[SliceMetrics]:
    """AUC and example count per task for every slice of a TFMA evaluation."""
    result = tfma.load_eval_result(evaluation_uri)
    rows = []
    for slice_key, metrics in result.slicing_metrics:
        auc, count = {}, {}
        for task in spec.output_names:
            by_name = metrics.get(task, {}).get("", {})
            if AUC_KEY in by_name:
                auc[task] = _value(by_name[AUC_KEY])
            if EXAMPLE_COUNT_KEY in by_name:
                count[task] = _value(by_name[EXAMPLE_COUNT_KEY])
        rows.append(SliceMetrics(slice_name(slice_key), auc, count))
    return rows


def _custom(store, artifact_uri: str, key: str):
    for artifact in store.get_artifacts_by_uri(artifact_uri):
        if key in artifact.custom_properties:
            prop = artifact.custom_properties[key]
            return prop.string_value or prop.int_value
    return None


def summary(config, seconds: float) -> str:
    """A few lines for the user: what ran, where the model and evaluation are, AUC per task."""
    store = open_store(config.metadata_path)
    name = config.pipeline_name
    evaluation = latest_output_uri(store, name, "Evaluator", "ModelEvaluation")
    pushed = latest_output_uri(store, name, "Pusher", "PushedModel")
    destination = _custom(store, pushed, "pushed_destination") if pushed else None
    lines = [f"Pipeline {name} finished in {seconds:.0f} s."]
    if destination:
        lines.append(f"Pushed model: {destination}")
    else:
        lines.append(f"No model pushed (not blessed); serving directory unchanged: {config.serving_model_dir}")
    if evaluation:
        lines.append(f"Evaluation:   {evaluation}")
        for row in evaluation_metrics(evaluation, config.spec):
            aucs = ", ".join(f"{task} AUC={auc:.4f}" for task, auc in row.auc.items())
            count = max(row.example_count.values(), default=0)
            lines.append(f"  {row.slice_name:<24} n={count:<7.0f} {aucs}")
    return "\n".join(lines)
