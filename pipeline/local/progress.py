"""What `mmoe-pipeline run` shows while it runs: one line per component as it starts and ends, the
Trainer's progress, nothing else. Every log record goes to the run's log file as well.

The runners announce each component through their own log records (TFX's Beam runner:
``node %s is running.`` / ``node %s is finished.``; its Local runner: ``Component %s is
...``). `ConsoleProgress` is a `logging.Handler` that turns those, and the Trainer's
progress records, into console lines; when a component ends it reads the component's
state (executed or cached) and its key figure from ML Metadata.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Dict, Optional

from tfx.dsl.io import fileio

from components import object_store
from components.names import (
    DRIFT_COMPONENT,
    EVALUATOR_COMPONENT,
    EXAMPLE_VALIDATOR_COMPONENT,
    PUSHER_COMPONENT,
    SCHEMA_COMPONENT,
    SERVING_CHECK_COMPONENT,
    STATISTICS_GEN_COMPONENT,
    TRAINER_COMPONENT,
    TRAINING_PROGRESS,
)
from pipeline.reporting import report

_STARTED = ("node %s is running.", "Component %s is running.")
_FINISHED = ("node %s is finished.", "Component %s is finished.")


def _statistics_rows(uri: str) -> Optional[str]:
    counts = [f"{split} {stats.num_examples}" for split, stats in report.split_statistics(uri).items()]
    return "rows: " + ", ".join(counts) if counts else None


def _anomalies(uri: str) -> str:
    from components.serving_check import read_anomalies

    splits = sorted(s[len("Split-"):] for s in object_store.list_dir(uri) if s.startswith("Split-"))
    found = read_anomalies(uri, splits)
    if not found:
        return "anomalies: none"
    return f"anomalies: {len(found)} (" + ", ".join(f"{a.feature} in {a.split}" for a in found) + ")"


def key_figure(config, store, node: str, trainer_progress: Optional[str]) -> str:
    """The one figure a user wants from `node`'s latest output; '' when it has none."""
    name = config.pipeline_name
    if node == STATISTICS_GEN_COMPONENT:
        uri = report.latest_output_uri(store, name, node, "ExampleStatistics")
        return (_statistics_rows(uri) or "") if uri else ""
    if node == EXAMPLE_VALIDATOR_COMPONENT:
        uri = report.latest_output_uri(store, name, node, "ExampleAnomalies")
        return _anomalies(uri) if uri else ""
    if node == DRIFT_COMPONENT:
        from components.drift import PREVIOUS_SPAN_PROPERTY, SPAN_PROPERTY, read_drift

        uri = report.latest_output_uri(store, name, node, "ExampleAnomalies")
        if not uri:
            return ""
        span, previous = report._custom(store, uri, SPAN_PROPERTY), report._custom(store, uri, PREVIOUS_SPAN_PROPERTY)
        if previous is None or previous < 0:
            return f"span {span}: no earlier span to compare with" if span else "no span folders: no drift check"
        moved = read_drift(uri, span, previous)
        return (f"span {span} against span {previous}: "
                + (f"DRIFT in {', '.join(d.feature for d in moved)}" if moved else "no drift"))
    if node == SCHEMA_COMPONENT:
        filled = report.filled_columns(store, name)
        return ("filled by default: " + ", ".join(
            f"{f['column']} {100 * f['fraction_missing']:.1f}% with {f['filled_with']} ({f['spec_line']})"
            for f in filled)) if filled else ""
    if node == TRAINER_COMPONENT:
        return trainer_progress or ""
    if node == EVALUATOR_COMPONENT:
        uri = report.latest_output_uri(store, name, node, "ModelEvaluation")
        overall = next((r for r in report.evaluation_metrics(uri, config.spec) if r.slice_name == "Overall"), None)
        if not overall:
            return ""
        parts = [f"{metric} " + ", ".join(f"{task} {report._fmt(value)}" for task, value in values.items())
                 for metric, values in (("AUC", overall.auc), ("MSE", overall.mse)) if values]
        return "; ".join(parts)
    if node == SERVING_CHECK_COMPONENT:
        from components.serving_check import RESULT_FILE

        uri = report.latest_output_uri(store, name, node, "InfraBlessing")
        path = os.path.join(uri, RESULT_FILE) if uri else None
        if not path or not fileio.exists(path):
            return ""
        with fileio.open(path) as f:
            result = json.load(f)
        served = f"{result['num_examples']} raw examples served"
        return served + (", blessed" if result["ok"] else ", NOT blessed")
    if node == PUSHER_COMPONENT:
        uri = report.latest_output_uri(store, name, node, "PushedModel")
        destination = report._custom(store, uri, "pushed_destination") if uri else None
        pushed = uri and report._custom(store, uri, "pushed")
        return f"pushed version {os.path.basename(destination)}" if pushed and destination else "not pushed"
    return ""


class ConsoleProgress(logging.Handler):
    """Console lines for the components of one run (see the module docstring)."""

    def __init__(self, config, echo: Callable[[str], None], live: bool = False):
        super().__init__(level=logging.INFO)
        self.config, self.echo, self.live = config, echo, live
        self.started: Dict[str, float] = {}
        self.trainer_progress: Optional[str] = None
        self.width = max(len(c.id) for c in _components(config))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.msg in _STARTED:
                node = record.args[0]
                self.started[node] = time.monotonic()
                self.echo(f"  {node:<{self.width}} started")
            elif record.msg in _FINISHED:
                self._finished(record.args[0])
            elif record.msg == TRAINING_PROGRESS:
                epoch, step, steps, loss, rate = record.args
                self.trainer_progress = f"{step} steps, loss {loss:.4f}, {rate:.0f} examples/s"
                if self.live:
                    bar = "#" * int(20 * step / steps)
                    self.echo(f"\r  {'Trainer':<{self.width}} [{bar:<20}] {step}/{steps} loss {loss:.4f} "
                              f"{rate:.0f} examples/s", nl=False)
        except Exception:  # a console line must never fail the run; the record is in the log file
            self.handleError(record)

    def _finished(self, node: str) -> None:
        took = time.monotonic() - self.started.pop(node, time.monotonic())
        store = report.open_store(self.config.metadata_path)
        state = report.node_states(store, self.config.pipeline_name, [node])[node] or "?"
        figure = key_figure(self.config, store, node, self.trainer_progress if state != "CACHED" else None)
        if self.live and node == TRAINER_COMPONENT and self.trainer_progress:
            self.echo("")  # end the progress bar's line
        self.echo(f"  {node:<{self.width}} {state.lower():<8} {took:6.1f} s  {figure}".rstrip())


def _components(config):
    from pipeline.graph.pipeline import create_pipeline

    return create_pipeline(config).components
