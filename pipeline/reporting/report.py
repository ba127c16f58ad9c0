"""What a finished local run produced, read from its ML Metadata store.

Over 400 lines: reading a run's artifacts (statistics, TFMA results, the serving check) and the decision
made of them, one reader per artifact, which the console summary and the HTML report share.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.io import fileio

from components.eval_config import BASELINE, CANDIDATE
from components.names import (
    EVALUATOR_COMPONENT,
    PUSHER_COMPONENT,
    SCHEMA_COMPONENT,
    SERVING_CHECK_COMPONENT,
    STATISTICS_FILE,
    TRAINER_COMPONENT,
    TRAINER_CONFIG_FILE,
    WARM_START_FILE,
)
from components.schema import FILLED_PROPERTY
from components.serving_check import RESULT_FILE as SERVING_CHECK_FILE
from components.spec import DatasetSpec
from heads import head_for
from pipeline.graph.pipeline import create_pipeline

NODE_CONTEXT = "node"


def open_store(metadata_path: str) -> mlmd.MetadataStore:
    return mlmd.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))


def _latest_execution(store, pipeline_name: str, node_id: str) -> Optional[metadata_store_pb2.Execution]:
    context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{pipeline_name}.{node_id}")
    executions = store.get_executions_by_context(context.id) if context else []
    return max(executions, key=lambda e: e.id) if executions else None


def latest_executions(store, pipeline_name: str, node_ids) -> Dict[str, Optional[metadata_store_pb2.Execution]]:
    """Each node's latest execution, None if it never ran."""
    return {node_id: _latest_execution(store, pipeline_name, node_id) for node_id in node_ids}


def node_states(store, pipeline_name: str, node_ids) -> Dict[str, Optional[str]]:
    """The state of each node's latest execution (COMPLETE, CACHED, FAILED...), None if it never ran."""
    states = {}
    for node_id in node_ids:
        latest = _latest_execution(store, pipeline_name, node_id)
        states[node_id] = metadata_store_pb2.Execution.State.Name(latest.last_known_state) if latest else None
    return states


def latest_output_uri(store, pipeline_name: str, node_id: str, artifact_type: str) -> Optional[str]:
    """URI of the artifact of `artifact_type` that `node_id`'s latest execution output, or None.

    A cached execution outputs the artifact it reuses, so this is the latest run's artifact
    even when an older one was made later (e.g. a run on other data in between)."""
    execution = _latest_execution(store, pipeline_name, node_id)
    if execution is None:
        return None
    type_id = store.get_artifact_type(artifact_type).id
    outputs = {e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
               if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)}
    artifacts = [a for a in store.get_artifacts_by_id(list(outputs)) if a.type_id == type_id] if outputs else []
    return max(artifacts, key=lambda a: a.id).uri if artifacts else None


def split_statistics(statistics_uri: str) -> dict:
    """Split name -> its `DatasetFeatureStatistics`, from a StatisticsGen (ExampleStatistics) artifact."""
    import tensorflow_data_validation as tfdv

    found = {}
    for split_dir in sorted(d.rstrip("/") for d in fileio.listdir(statistics_uri)):
        path = os.path.join(statistics_uri, split_dir, STATISTICS_FILE)
        if split_dir.startswith("Split-") and fileio.exists(path):
            found[split_dir[len("Split-"):]] = tfdv.load_stats_binary(path).datasets[0]
    return found


def node_seconds(store, pipeline_name: str, node_ids) -> Dict[str, float]:
    """Wall time of each node's latest execution, from its MLMD create and update times."""
    seconds = {}
    for node_id in node_ids:
        latest = _latest_execution(store, pipeline_name, node_id)
        if latest:
            seconds[node_id] = (latest.last_update_time_since_epoch - latest.create_time_since_epoch) / 1000.0
    return seconds


@dataclasses.dataclass(frozen=True)
class SliceMetrics:
    """Per-task metrics of one slice, as each task's head reads them (`heads.base.Head.slice_values`).
    AUC is None where it is undefined (a binary slice holding one class only); ``extra``: other metrics of
    the head, by name (e.g. per-class AUCs)."""

    slice_name: str
    auc: Dict[str, Optional[float]]
    example_count: Dict[str, float]
    mse: Dict[str, float] = dataclasses.field(default_factory=dict)
    mean_label: Dict[str, Optional[float]] = dataclasses.field(default_factory=dict)
    auc_pr: Dict[str, Optional[float]] = dataclasses.field(default_factory=dict)
    calibration: Dict[str, Optional[float]] = dataclasses.field(default_factory=dict)
    extra: Dict[str, Dict[str, Optional[float]]] = dataclasses.field(default_factory=dict)


_SLICE_FIELDS = tuple(f.name for f in dataclasses.fields(SliceMetrics) if f.name != "slice_name")


def slice_name(slice_key) -> str:
    return tfma.slicer.stringify_slice_key(slice_key) if slice_key else "Overall"


def evaluation_metrics(evaluation_uri: str, spec: DatasetSpec, model_name: str = CANDIDATE) -> List[SliceMetrics]:
    """AUC and example count per task for every slice of a TFMA evaluation of `model_name`."""
    from tensorflow_model_analysis.writers import eval_config_writer

    # The models the evaluation ran (its eval config): a run without a baseline evaluated the
    # candidate alone, under no model name.
    _, _, _, model_locations = eval_config_writer.load_eval_run(evaluation_uri)
    if model_name in model_locations:
        result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
    elif model_name == CANDIDATE and len(model_locations) <= 1:
        result = tfma.load_eval_result(evaluation_uri)
    else:
        return []
    heads = [head_for(task) for task in spec.tasks]
    rows = []
    for slice_key, metrics in sorted(result.slicing_metrics, key=lambda sm: (bool(sm[0]), slice_name(sm[0]))):
        fields = {name: {} for name in _SLICE_FIELDS}
        for head in heads:
            if head.name not in metrics:
                continue
            for name, value in head.slice_values(metrics[head.name]).items():
                fields[name][head.name] = value
        rows.append(SliceMetrics(slice_name(slice_key), **fields))
    return rows


def _custom(store, artifact_uri: str, key: str):
    for artifact in store.get_artifacts_by_uri(artifact_uri):
        if key in artifact.custom_properties:
            prop = artifact.custom_properties[key]
            return prop.string_value or prop.int_value
    return None


def _overall(rows: List[SliceMetrics]) -> Optional[SliceMetrics]:
    return next((r for r in rows if r.slice_name == "Overall"), None)


def _validation_failures(evaluation_uri: str) -> List[dict]:
    """Threshold failures of a TFMA validation: task, slice, metric, kind, value."""
    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    if result.missing_thresholds:
        failures.append({"task": None, "slice": "Overall", "metric": "thresholds", "kind": "missing", "value": None})
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            failures.append({
                "task": key.output_name,
                "slice": slice_name(tfma.slicer.deserialize_slice_key(per_slice.slice_key)),
                "metric": key.name,
                "kind": "change against baseline" if key.is_diff else "absolute",
                "value": failure.metric_value.double_value.value,
            })
    return failures


@dataclasses.dataclass(frozen=True)
class RunOutputs:
    """Where a run's Evaluator and ServingCheck wrote, and what its Pusher did."""

    evaluation: Optional[str]
    serving: Optional[str]
    pushed: bool
    pushed_destination: Optional[str]
    model_run: Optional[str] = None  # the Trainer's ModelRun (warm_start.json)
    filled_missing: Optional[str] = None  # SpecSchema's FILLED_PROPERTY (JSON): the columns filled by default


def decide(config, store) -> dict:
    """The decision of the latest local run, found through ML Metadata."""
    name = config.pipeline_name
    pushed_uri = latest_output_uri(store, name, PUSHER_COMPONENT, "PushedModel")
    pushed = bool(pushed_uri and _custom(store, pushed_uri, "pushed"))
    outputs = RunOutputs(
        evaluation=latest_output_uri(store, name, EVALUATOR_COMPONENT, "ModelEvaluation"),
        serving=latest_output_uri(store, name, SERVING_CHECK_COMPONENT, "InfraBlessing"),
        pushed=pushed,
        pushed_destination=_custom(store, pushed_uri, "pushed_destination") if pushed else None,
        model_run=latest_output_uri(store, name, TRAINER_COMPONENT, "ModelRun"),
        filled_missing=json.dumps(filled_columns(store, name)),
    )
    return decide_from(name, config.spec, config.serving_model_dir, outputs)


def filled_columns(store, pipeline_name: str) -> List[dict]:
    """The columns SpecSchema let the default policy fill in the latest run (an inferred schema; see
    components.schema)."""
    uri = latest_output_uri(store, pipeline_name, SCHEMA_COMPONENT, "Schema")
    return json.loads(_custom(store, uri, FILLED_PROPERTY) or "[]") if uri else []


# Anomaly types that mean "this column has no value in some rows".
_MISSING_VALUE_TYPES = {"FEATURE_TYPE_LOW_NUMBER_VALUES", "FEATURE_TYPE_LOW_FRACTION_PRESENT",
                        "FEATURE_TYPE_NOT_PRESENT", "SCHEMA_MISSING_COLUMN"}


def anomaly_fix(anomaly: dict, spec: DatasetSpec) -> str:
    """What to change so that `anomaly` no longer stops the push: a spec line, the data, or
    `--allow-anomaly TYPE` (the spec's allowed_anomalies)."""
    feature, types = anomaly["feature"], list(anomaly.get("types") or [])
    columns = {c.name: c for c in spec.columns}
    if set(types) & _MISSING_VALUE_TYPES and feature in columns:
        if feature in spec.label_columns:
            return f"remove the rows without a {feature} label from the data (a label is never imputed)"
        numeric = columns[feature].kind.value == "numeric"
        return (f"declare how to fill it: `missing: {'mean' if numeric else '{constant: VALUE}'}` for column "
                f"{feature} in the spec")
    allow = " ".join(f"--allow-anomaly {t}" for t in types) or "--allow-anomaly TYPE"
    return f"fix the data, or accept it with {allow} (the spec's allowed_anomalies)"


def warm_start_summary(model_run: Optional[str]) -> Optional[dict]:
    """What the Trainer started from (its warm_start.json): None when it did not say."""
    path = os.path.join(model_run, WARM_START_FILE) if model_run else None
    if not path or not fileio.exists(path):
        return None
    with fileio.open(path) as f:
        started = json.load(f)
    return {"base_model": started["base_model"], "weights_loaded": len(started["loaded"]),
            "reinitialised": started["reinitialised"], "remapped": started.get("remapped", []),
            "initial_loss": started.get("initial_loss"),
            "cold_initial_loss": started.get("cold_initial_loss")}


def training_summary(model_run: Optional[str]) -> Optional[dict]:
    """How the Trainer trained (the ``training`` entry of its trainer_config.json): epochs and steps run,
    the best epoch by eval loss, whether early stopping ended it; None when it did not say."""
    path = os.path.join(model_run, TRAINER_CONFIG_FILE) if model_run else None
    if not path or not fileio.exists(path):
        return None
    with fileio.open(path) as f:
        return json.load(f).get("training")


def _failure_text(failure: dict, metrics: Optional[SliceMetrics], task) -> str:
    """One threshold failure in words, by the task's head (which knows when its metric is undefined)."""
    values = {name: getattr(metrics, name).get(task.output_name) for name in _SLICE_FIELDS} if metrics else {}
    return head_for(task).failure_text(failure, values)


def decide_from(name: str, spec: DatasetSpec, serving_model_dir: str, outputs: RunOutputs) -> dict:
    """Per task: AUC, thresholds, baseline AUC, failures; and whether and why the model was pushed."""
    evaluation, serving, pushed = outputs.evaluation, outputs.serving, outputs.pushed
    slices = {r.slice_name: r for r in evaluation_metrics(evaluation, spec)} if evaluation else {}
    candidate = slices.get("Overall")
    baseline = _overall(evaluation_metrics(evaluation, spec, BASELINE)) if evaluation else None
    failures = _validation_failures(evaluation) if evaluation else []
    serving_result = {}
    if serving and fileio.exists(os.path.join(serving, SERVING_CHECK_FILE)):
        with fileio.open(os.path.join(serving, SERVING_CHECK_FILE)) as f:
            serving_result = json.load(f)
    tasks = {}
    for task in spec.tasks:
        auc = candidate.auc.get(task.output_name) if candidate else None
        base = baseline.auc.get(task.output_name) if baseline else None
        reasons = [_failure_text(f, slices.get(f["slice"]), task) for f in failures if f["task"] == task.output_name]
        if task.name in serving_result.get("failures", {}):
            reasons.append("serving check: " + serving_result["failures"][task.name])
        tasks[task.name] = {
            "type": task.type.value,
            "auc": auc,
            "mse": candidate.mse.get(task.output_name) if candidate else None,
            "max_mse": task.max_mse,
            "min_auc": task.min_auc,
            "baseline_auc": base,
            "auc_change": None if auc is None or base is None else auc - base,
            "max_auc_drop": task.max_auc_drop,
            "passed": not reasons,
            "failures": reasons,
        }
    why = [f"{t}: {r}" for t, d in tasks.items() for r in d["failures"]]
    anomalies = serving_result.get("anomalies", [])
    if anomalies:
        why.append("data anomalies: " + "; ".join(
            f"{a['feature']} in {a['split']}: {a['short_description']} ({anomaly_fix(a, spec)})" for a in anomalies))
    drift = serving_result.get("drift", [])
    if drift:
        why.append("data drift: " + "; ".join(
            f"{d['feature']} Jensen-Shannon divergence {d['divergence']:.3f} > {d['threshold']:g} (span "
            f"{d['span']} against span {d['previous_span']})" for d in drift))
    if any(f["kind"] == "missing" for f in failures):
        unset = [t.name for t in spec.tasks if not head_for(t).thresholds_set()]
        why.append(f"the spec sets no threshold for {', '.join(unset) or 'any task'} (min_auc, max_auc_drop or max_mse), "
                   "so TFMA cannot bless the model")
    if not pushed and not why:
        why = ["the Pusher did not push (see its logs)"]
    return {
        "pipeline": name,
        "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "pushed": pushed,
        "pushed_destination": outputs.pushed_destination if pushed else None,
        "serving_model_dir": serving_model_dir,
        "evaluation": evaluation,
        "has_baseline": baseline is not None,
        "failing_tasks": sorted(t for t, d in tasks.items() if not d["passed"]),
        "reasons": [] if pushed else why,
        "tasks": tasks,
        "serving_check": serving_result,
        "anomalies": anomalies,
        "drift": drift,
        "spans": serving_result.get("spans", []),
        "warm_start": warm_start_summary(outputs.model_run),
        "training": training_summary(outputs.model_run),
        "filled_missing": json.loads(outputs.filled_missing or "[]"),
    }


def write_decision(config, path: str) -> dict:
    """Writes `decide(...)` as JSON to `path` and returns it."""
    decision = decide(config, open_store(config.metadata_path))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(decision, f, indent=2, sort_keys=True)
    return decision


def _fmt(value, spec="{:.4f}", missing="-") -> str:
    return missing if value is None else spec.format(value)


DECISION_HEADER = ("task", "AUC", "min", "baseline", "change", "max drop", "verdict")


def decision_rows(decision: dict) -> List[List[str]]:
    """Per task, the cells of `DECISION_HEADER` (the console table and the HTML report)."""
    return [[task, _fmt(d["auc"]), _fmt(d["min_auc"], "{:.2f}"), _fmt(d["baseline_auc"]),
             _fmt(d["auc_change"], "{:+.4f}"), _fmt(d["max_auc_drop"], "{:.3f}"),
             "pass" if d["passed"] else "FAIL: " + "; ".join(d["failures"])]
            for task, d in decision["tasks"].items()]


def format_decision(decision: dict) -> List[str]:
    widths = (-16, 7, 6, 9, 8, 9)  # negative: left-aligned

    def line(cells):
        columns = [f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(cells, widths)]
        return " ".join(columns) + "  " + cells[-1]

    lines = [line(DECISION_HEADER)] + [line(row) for row in decision_rows(decision)]
    spans = decision.get("spans") or []
    if any(spans):
        lines.append(f"Data: span {spans[0]}" + (f" with spans {spans[1:]}" if len(spans) > 1 else ""))
    started = decision.get("warm_start")
    if started and started["base_model"]:
        lines.append(f"Warm start: {started['weights_loaded']} weights from {started['base_model']} "
                     f"({len(started['reinitialised'])} re-initialised); initial loss {started['initial_loss']:.4f}, "
                     f"a cold start's {started['cold_initial_loss']:.4f}")
    training = decision.get("training")
    if training and training.get("stopped_early"):
        lines.append(f"Training: stopped early after epoch {training['epochs_run']} of {training['epochs']} "
                     f"(eval loss best at epoch {training['best_epoch']}: {training['best_eval_loss']:.4f}; "
                     "its weights kept)")
    if decision["pushed"]:
        lines.append(f"PUSHED to {decision['pushed_destination']}")
    else:
        lines.append("NOT PUSHED: " + "; ".join(decision["reasons"]))
    return lines


def summary(config, seconds: float, decision: Optional[dict] = None, detailed: bool = True) -> str:
    """A few lines for the user: what ran, where the model and evaluation are, AUC per task.

    `detailed`: each component's state and time, and the AUC of every slice (the quiet
    console has shown the components already, and keeps the overall slice only)."""
    store = open_store(config.metadata_path)
    name = config.pipeline_name
    evaluation = latest_output_uri(store, name, EVALUATOR_COMPONENT, "ModelEvaluation")
    pushed = latest_output_uri(store, name, PUSHER_COMPONENT, "PushedModel")
    destination = _custom(store, pushed, "pushed_destination") if pushed else None
    lines = [f"Pipeline {name} finished in {seconds:.0f} s."]
    if detailed:
        nodes = [c.id for c in create_pipeline(config).components]
        states = node_states(store, name, nodes)
        width = max(map(len, nodes))
        for node, took in node_seconds(store, name, nodes).items():
            lines.append(f"  {node:<{width}} {states[node]:<9} {took:7.1f} s")
    if decision:
        lines.extend(format_decision(decision))
    elif destination:
        lines.append(f"Pushed model: {destination}")
    else:
        lines.append(f"No model pushed; serving directory unchanged: {config.serving_model_dir}")
    if evaluation:
        lines.append(f"Evaluation:   {evaluation}")
        rows = evaluation_metrics(evaluation, config.spec)
        if not detailed and len(rows) > 1:
            lines.append(f"  ({len(rows) - 1} slices besides Overall: see the log file, or run with -v)")
            rows = [r for r in rows if r.slice_name == "Overall"]
        for row in rows:
            aucs = ", ".join([f"{task} AUC={_fmt(auc, missing='n/a')}" for task, auc in row.auc.items()]
                             + [f"{task} MSE={mse:.4f}" for task, mse in row.mse.items()])
            count = max(row.example_count.values(), default=0)
            lines.append(f"  {row.slice_name:<40.40} n={count:<7.0f} {aucs}")
    return "\n".join(lines)
