"""Runs the pipeline on this machine with Beam (default) or the Local orchestrator."""

from __future__ import annotations

import logging
import os
from typing import Optional

from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from components.spec import DatasetSpec
from pipeline import report
from pipeline.config import Orchestrator, PipelineConfig
from pipeline.pipeline import create_pipeline

# No Beam arguments: Beam's default DirectRunner runs in-process, fetches nothing, and TFX
# skips packaging a copy of itself for remote workers (which it does for any non-empty
# argument list). Pass e.g. ("--direct_running_mode=multi_processing",
# "--direct_num_workers=0") to use every core on large data.
DEFAULT_BEAM_ARGS: tuple = ()
DECISION_FILE = "decision.json"


def run(config: PipelineConfig, orchestrator: Orchestrator = Orchestrator.BEAM, decision_path: Optional[str] = None):
    """Builds the pipeline from `config`, runs it to the end and returns the push decision.

    The decision (per task AUC, thresholds, baseline, pushed or not and why) is
    also written as JSON to `decision_path` (default: beside the pipeline root).
    """
    orchestrator = Orchestrator(orchestrator)
    runner = BeamDagRunner() if orchestrator is Orchestrator.BEAM else tfx.orchestration.LocalDagRunner()
    logging.info("Running pipeline %s with %s; artifacts under %s.",
                 config.pipeline_name, orchestrator.value, config.pipeline_root)
    runner.run(create_pipeline(config))
    path = decision_path or os.path.join(os.path.dirname(config.pipeline_root), DECISION_FILE)
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
    (MLMD) and ``output_dir/serving_model`` (pushed models).
    """
    return PipelineConfig(
        pipeline_name=pipeline_name,
        pipeline_root=os.path.join(output_dir, "pipeline_root"),
        data_root=data_root,
        schema_path=schema_path,
        spec=spec,
        serving_model_dir=os.path.join(output_dir, "serving_model"),
        metadata_path=os.path.join(output_dir, "metadata.sqlite"),
        beam_pipeline_args=overrides.pop("beam_pipeline_args", DEFAULT_BEAM_ARGS),
        **overrides,
    )
