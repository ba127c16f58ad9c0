"""Runs the pipeline on this machine with Beam (default) or the Local orchestrator."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import re
import time
from typing import Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from components.spec import DatasetSpec
from pipeline.graph import beam_options
from pipeline.graph.config import Orchestrator, PipelineConfig
from pipeline.graph.pipeline import create_pipeline
from pipeline.reporting import report

# No Beam arguments: Beam's DirectRunner runs each component's bundles in this process. The CLI's
# --beam-workers and --beam-args add options (pipeline.graph.beam_options).
DEFAULT_BEAM_ARGS: tuple = ()
DECISION_FILE = "decision.json"
METADATA_FILE = "metadata.sqlite"
LOCK_FILE = ".mmoe-pipeline.lock"
_BEAM_SUFFIX = re.compile(r"\s*\[while running '[^']*'\]")


class RunLocked(RuntimeError):
    """Another run holds the output directory."""


class ComponentFailed(RuntimeError):
    """A component of the pipeline raised; the message names it and the cause."""


@contextlib.contextmanager
def output_lock(directory: str):
    """Holds an exclusive lock on `directory` for one run; a second run is refused, not queued.

    The lock is an `flock` on ``directory/.mmoe-pipeline.lock``: the kernel releases it when the
    holder exits, so a killed run never leaves a stale lock behind.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunLocked(
                f"{directory} is in use by another run ({holder}); wait for it to finish, or give this "
                "run another output directory."
            ) from None
        os.ftruncate(fd, 0)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()}, started {started}".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def root_cause(error: BaseException) -> str:
    """`Type: message` of the innermost exception, without Beam's "[while running ...]" wrapper."""
    seen = set()
    while (error.__cause__ or error.__context__) is not None and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    message = _BEAM_SUFFIX.sub("", lines[-1] if lines else "").strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def failed_component(config: PipelineConfig, since: float) -> Optional[str]:
    """The component whose execution failed (or never finished) in the run started at `since`."""
    store = report.open_store(config.metadata_path)
    nodes = [c.id for c in create_pipeline(config).components]
    for node, execution in report.latest_executions(store, config.pipeline_name, nodes).items():
        if execution and execution.create_time_since_epoch >= since * 1000 - 1000 and execution.last_known_state in (
                metadata_store_pb2.Execution.FAILED, metadata_store_pb2.Execution.RUNNING):
            return node
    return None


def run(config: PipelineConfig, orchestrator: Orchestrator = Orchestrator.BEAM, decision_path: Optional[str] = None):
    """Builds the pipeline from `config`, runs it to the end and returns the push decision.

    The decision (per task AUC, thresholds, baseline, pushed or not and why) is
    also written as JSON to `decision_path` (default: beside the pipeline root).
    One run at a time per output directory (`output_lock`); a component that fails
    ends the run with `ComponentFailed`, which names it and the cause.
    """
    orchestrator = Orchestrator(orchestrator)
    runner = BeamDagRunner() if orchestrator is Orchestrator.BEAM else tfx.orchestration.LocalDagRunner()
    # The output directory (ML Metadata, logs, decision) is local even when the artifacts are not.
    output_dir = os.path.dirname(config.metadata_path or config.pipeline_root)
    with output_lock(output_dir):
        logging.info("Running pipeline %s with %s; artifacts under %s.",
                     config.pipeline_name, orchestrator.value, config.pipeline_root)
        started = time.time()
        try:
            with beam_options.local_execution():
                runner.run(create_pipeline(config))
        except Exception as e:
            node = failed_component(config, started) if config.metadata_path else None
            logging.exception("Pipeline %s failed in %s.", config.pipeline_name, node or "an unknown component")
            raise ComponentFailed(f"{node or 'the pipeline'} failed: {root_cause(e)}") from e
        path = decision_path or os.path.join(output_dir, DECISION_FILE)
        decision = report.write_decision(config, path)
    logging.info("Push decision written to %s: pushed=%s.", path, decision["pushed"])
    return decision


def local_config(
    output_dir: str,
    data_root: str,
    spec: DatasetSpec,
    schema_path: str,
    pipeline_name: str = "mmoe-pipeline",
    **overrides,
) -> PipelineConfig:
    """The standard layout of a local run under `output_dir`.

    ``output_dir/pipeline_root`` (artifacts), ``output_dir/metadata.sqlite``
    (MLMD) and ``output_dir/serving_model`` (pushed models); `pipeline_root` and
    `serving_model_dir` may be object-store URIs instead (``s3://``, ``gs://``).
    """
    pipeline_root = overrides.pop("pipeline_root", None) or os.path.join(output_dir, "pipeline_root")
    serving_model_dir = overrides.pop("serving_model_dir", None) or os.path.join(output_dir, "serving_model")
    return PipelineConfig(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=schema_path,
        spec=spec,
        serving_model_dir=serving_model_dir,
        metadata_path=os.path.join(output_dir, METADATA_FILE),
        baseline_cache_key=True,
        beam_pipeline_args=overrides.pop("beam_pipeline_args", DEFAULT_BEAM_ARGS),
        **overrides,
    )
