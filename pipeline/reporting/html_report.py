"""`mmoe-pipeline report OUTPUT`: one self-contained ``report.html`` of a local run, read through ML Metadata.

Sections (each a ``<section id=...>``; plots are matplotlib PNGs embedded as data URIs, so the
page is one file that can be mailed or attached to a ticket):

* ``decision``: pushed or not and why; per task the AUC, its bounds, the baseline and the change;
* ``slices``: AUC per task per slice (bars, with the example count; slices where the AUC is
  undefined because they hold one class are drawn empty and marked);
* ``quality``: AUC-PR and calibration (mean prediction / mean label) per task, overall;
* ``other``: the other metrics of the tasks' heads, overall (e.g. a multi-class task's accuracy and
  per-class AUCs), when a head has any;
* ``gates``: the gate utilisation heatmap (task x expert) from the Trainer's ``gate_stats.json``;
* ``training``: each task's loss per step, from the Trainer's TensorBoard logs;
* ``data``: rows per split, each feature's missing fraction and mean or number of values, and
  every anomaly the ExampleValidator found;
* ``lineage``: the data read, the model trained, the baseline it was compared with, where it went.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Dict, List

from tfx.dsl.io import fileio

from components.names import (
    EXAMPLE_GEN_COMPONENT,
    GATE_STATS_FILE,
    SPEC_KEY,
    STATISTICS_GEN_COMPONENT,
    TRAINER_COMPONENT,
    TRANSFORM_COMPONENT,
)
from components.spec import DatasetSpec
from pipeline.local import local_runner
from pipeline.reporting import report

REPORT_FILE = "report.html"


class ReportError(ValueError):
    """The output directory holds no finished run to report on."""


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(uri: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def _table(header: List[str], rows: List[List[str]], table_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table{f" id={table_id!r}" if table_id else ""}><tr>{head}</tr>{body}</table>'


def spec_of_run(store, pipeline_name: str) -> DatasetSpec:
    """The spec the run's Transform used (its custom_config), so the report needs nothing but OUTPUT."""
    execution = report.latest_executions(store, pipeline_name, [TRANSFORM_COMPONENT])[TRANSFORM_COMPONENT]
    if execution is None or "custom_config" not in execution.custom_properties:
        raise ReportError(f"no Transform execution of pipeline {pipeline_name!r} in this store; run the pipeline first.")
    config = json.loads(execution.custom_properties["custom_config"].string_value)
    return DatasetSpec.from_dict(config[SPEC_KEY], where="the run's Transform custom_config")


# --- figures ------------------------------------------------------------------------------------------------

def slice_figure(rows: List[report.SliceMetrics], task: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.slice_name for r in rows]
    aucs = [r.auc.get(task) for r in rows]
    figure, axis = plt.subplots(figsize=(8, 0.28 * len(rows) + 1))
    positions = range(len(rows))
    axis.barh(positions, [a or 0.0 for a in aucs], color=["#4c72b0" if a is not None else "#dddddd" for a in aucs])
    for y, (auc, row) in enumerate(zip(aucs, rows)):
        count = row.example_count.get(task, 0)
        label = f"{auc:.3f}  n={count:.0f}" if auc is not None else f"undefined (one class)  n={count:.0f}"
        axis.text(0.01 if auc is None else min(auc, 0.99), y, " " + label, va="center", fontsize=7)
    axis.set_yticks(list(positions), names, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlim(0, 1.25)
    axis.set_xlabel("AUC")
    axis.set_title(f"{task}: AUC per slice (test split)")
    return figure


def quality_figure(overall: report.SliceMetrics, tasks: List[str]):
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 2.5))
    left.bar(tasks, [overall.auc_pr.get(t) or 0.0 for t in tasks], color="#55a868")
    left.set_title("AUC-PR (overall)")
    left.set_ylim(0, 1)
    right.bar(tasks, [overall.calibration.get(t) or 0.0 for t in tasks], color="#c44e52")
    right.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    right.set_title("calibration: mean prediction / mean label")
    return figure


def gate_figure(gate_stats: dict):
    import matplotlib.pyplot as plt

    tasks = sorted(gate_stats["gates"]["tasks"])
    weights = [gate_stats["gates"]["tasks"][t]["mean_gate_weight"] for t in tasks]
    figure, axis = plt.subplots(figsize=(1.0 + 0.7 * len(weights[0]), 0.6 * len(tasks) + 1.2))
    image = axis.imshow(weights, cmap="viridis", vmin=0, vmax=max(max(w) for w in weights))
    axis.set_xticks(range(len(weights[0])), [f"expert {i}" for i in range(len(weights[0]))], fontsize=8)
    axis.set_yticks(range(len(tasks)), tasks, fontsize=8)
    for i, row in enumerate(weights):
        for j, value in enumerate(row):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", color="white", fontsize=8)
    figure.colorbar(image, ax=axis, label="mean gate weight")
    axis.set_title(f"gate utilisation ({gate_stats['variant']}, {gate_stats['gates']['examples']} eval examples)")
    return figure


def training_curves(model_run: str, tasks: List[str]) -> Dict[str, List[tuple]]:
    """Per task, (step, loss) from the Trainer's TensorBoard batch scalars (`batch_<task>_loss`)."""
    import tensorflow as tf

    curves: Dict[str, List[tuple]] = {t: [] for t in tasks}
    for path in sorted(fileio.glob(os.path.join(model_run, "train", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                for task in tasks:
                    if value.tag == f"batch_{task}_loss":
                        curves[task].append((event.step, float(tf.make_ndarray(value.tensor))))
    return curves


def training_figure(curves: Dict[str, List[tuple]]):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3))
    for task, points in sorted(curves.items()):
        if points:
            steps, losses = zip(*sorted(points))
            axis.plot(steps, losses, label=task)
    axis.set_xlabel("step")
    axis.set_ylabel("loss (train batches)")
    axis.legend()
    axis.set_title("training loss per task")
    return figure


# --- data ---------------------------------------------------------------------------------------------------

def data_statistics(statistics_uri: str) -> Dict[str, dict]:
    """Per split: rows, and per feature its missing fraction and its mean (numeric) or distinct values."""
    splits = {}
    for split, stats in report.split_statistics(statistics_uri).items():
        features = {}
        for feature in stats.features:
            name = feature.path.step[0]
            if feature.HasField("num_stats"):
                common, summary = feature.num_stats.common_stats, f"mean {feature.num_stats.mean:.3g}"
            else:
                common, summary = feature.string_stats.common_stats, f"{feature.string_stats.unique} values"
            present = common.num_non_missing
            empty = sum(b.sample_count for b in common.num_values_histogram.buckets
                        if b.high_value == 0) if common.min_num_values == 0 else 0
            missing = (stats.num_examples - present + empty) / max(stats.num_examples, 1)
            features[name] = {"missing": missing, "summary": summary}
        splits[split] = {"rows": stats.num_examples, "features": features}
    return splits


# --- the page -----------------------------------------------------------------------------------------------

_STYLE = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}
th{background:#f0f0f0}.pushed{color:#2a7}.notpushed{color:#c33}section{margin-bottom:2em}"""


def build(output_dir: str) -> str:
    """Writes OUTPUT/report.html for the run whose decision is OUTPUT/decision.json; returns its path."""
    decision_path = os.path.join(output_dir, local_runner.DECISION_FILE)
    metadata_path = os.path.join(output_dir, local_runner.METADATA_FILE)
    if not os.path.exists(decision_path) or not os.path.exists(metadata_path):
        raise ReportError(f"{output_dir} holds no finished run ({local_runner.DECISION_FILE} and "
                          f"{local_runner.METADATA_FILE}); "
                          "run `mmoe-pipeline run --output-dir` there first.")
    import matplotlib

    matplotlib.use("Agg")
    with open(decision_path) as f:
        decision = json.load(f)
    name = decision["pipeline"]
    store = report.open_store(metadata_path)
    spec = spec_of_run(store, name)
    tasks = list(spec.output_names)
    sections = []

    verdict = (f'<p class="pushed">PUSHED to {html.escape(str(decision["pushed_destination"]))}</p>'
               if decision["pushed"] else
               '<p class="notpushed">NOT PUSHED: ' + html.escape("; ".join(decision["reasons"])) + "</p>")
    sections.append(("decision", "Decision", verdict + _table(
        list(report.DECISION_HEADER), report.decision_rows(decision), "decision-table")))

    evaluation = decision["evaluation"]
    slices = report.evaluation_metrics(evaluation, spec) if evaluation else []
    if slices:
        body = "".join(_img(_png(slice_figure(slices, t)), f"AUC per slice of {t}") for t in tasks)
        table = [[r.slice_name, *(v for t in tasks for v in (report._fmt(r.auc.get(t)) if r.auc.get(t) is not None
                                                            else "undefined", f"{r.example_count.get(t, 0):.0f}"))]
                 for r in slices]
        body += _table(["slice", *(h for t in tasks for h in (f"{t} AUC", f"{t} n"))], table, "slice-table")
        sections.append(("slices", "AUC per task and slice", body))
        overall = next(r for r in slices if r.slice_name == "Overall")
        quality = [[t, report._fmt(overall.auc_pr.get(t)), report._fmt(overall.calibration.get(t))] for t in tasks]
        sections.append(("quality", "AUC-PR and calibration", _img(_png(quality_figure(overall, tasks)), "quality")
                         + _table(["task", "AUC-PR", "calibration"], quality, "quality-table")))
        other = [[t, metric, report._fmt(value, missing="undefined")]
                 for t in tasks for metric, value in (overall.extra.get(t) or {}).items()]
        if other:  # the heads' other metrics, e.g. a multi-class task's accuracy and per-class AUCs
            sections.append(("other", "Other metrics per task (overall)",
                             _table(["task", "metric", "value"], other, "other-table")))

    model_run = report.latest_output_uri(store, name, TRAINER_COMPONENT, "ModelRun")
    gate_path = os.path.join(model_run, GATE_STATS_FILE) if model_run else None
    if gate_path and fileio.exists(gate_path):
        with fileio.open(gate_path) as f:
            gates = json.load(f)
        if gates.get("gates"):
            sections.append(("gates", "Gate utilisation", _img(_png(gate_figure(gates)), "gate heatmap")))
        curves = training_curves(model_run, tasks)
        if any(curves.values()):
            sections.append(("training", "Training curves", _img(_png(training_figure(curves)), "training")))

    statistics_uri = report.latest_output_uri(store, name, STATISTICS_GEN_COMPONENT, "ExampleStatistics")
    if statistics_uri:
        stats = data_statistics(statistics_uri)
        body = _table(["split", "rows"], [[s, str(d["rows"])] for s, d in stats.items()], "rows-table")
        features = sorted({f for d in stats.values() for f in d["features"]})
        body += _table(["feature", *(h for s in stats for h in (f"{s} missing or empty", f"{s}"))],
                       [[f, *(v for s in stats for v in (f"{stats[s]['features'][f]['missing']:.1%}",
                                                         stats[s]["features"][f]["summary"]))] for f in features],
                       "feature-table")
        filled = decision.get("filled_missing", [])
        if filled:  # an inferred schema: the data's own missing values were filled by the default policy
            body += _table(["column", "train rows missing", "filled with", "spec line that makes it explicit"],
                           [[f["column"], f"{f['fraction_missing']:.1%}", f["filled_with"], f["spec_line"]]
                            for f in filled], "filled-table")
        anomalies = decision.get("anomalies", [])
        body += (_table(["feature", "split", "types", "description", "fix"],
                        [[a["feature"], a["split"], ", ".join(a["types"]), a["description"],
                          report.anomaly_fix(a, spec)] for a in anomalies],
                        "anomaly-table") if anomalies else "<p id='anomalies'>No anomaly against the schema.</p>")
        drift, spans = decision.get("drift", []), decision.get("spans", [])
        if drift:
            body += _table(["feature", "Jensen-Shannon divergence", "threshold", "span", "previous span"],
                           [[d["feature"], f"{d['divergence']:.3f}", f"{d['threshold']:g}", str(d["span"]),
                             str(d["previous_span"])] for d in drift], "drift-table")
        elif any(spans):
            body += f"<p id='drift'>No column drifted beyond its threshold since the span before {spans[0]}.</p>"
        else:
            body += "<p id='drift'>Drift against the previous span: no spans in this data root.</p>"
        sections.append(("data", "Data", body))

    example_gen = report.latest_executions(store, name, [EXAMPLE_GEN_COMPONENT])[EXAMPLE_GEN_COMPONENT]
    props = example_gen.custom_properties if example_gen else {}
    lineage = [
        ["data", props["input_base"].string_value if "input_base" in props else "-"],
        ["spans", ", ".join(map(str, decision.get("spans") or [])) or "-"],
        ["warm start", (decision.get("warm_start") or {}).get("base_model") or "no (cold start)"],
        ["model", report.latest_output_uri(store, name, TRAINER_COMPONENT, "Model") or "-"],
        ["baseline", "the model serving when the run started" if decision["has_baseline"] else "none (first model)"],
        ["evaluation", evaluation or "-"],
        ["pushed to", decision["pushed_destination"] or "not pushed"],
        ["decided at", decision["written_at"]],
    ]
    sections.append(("lineage", "Lineage", _table(["", ""], lineage, "lineage-table")))

    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)} report</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(name)}</h1>"]
    for section_id, title, body in sections:
        page.append(f'<section id="{section_id}"><h2>{html.escape(title)}</h2>{body}</section>')
    page.append("</body></html>")
    path = os.path.join(output_dir, REPORT_FILE)
    with open(path, "w") as f:
        f.write("".join(page))
    return path

