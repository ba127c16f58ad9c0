"""Runs the pipeline on this machine with Beam (default) or the Local orchestrator."""

from __future__ import annotations

import enum
import os
import logging

from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

# In-process Beam: no worker processes to start, no runner binary to fetch.
DEFAULT_BEAM_ARGS = ("--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1")


class Orchestrator(str, enum.Enum):
    BEAM = "beam"
    LOCAL = "local"


def run(config: PipelineConfig, orchestrator: Orchestrator = Orchestrator.BEAM) -> None:
    """Builds the pipeline from `config` and runs it to the end."""
    orchestrator = Orchestrator(orchestrator)
    runner = BeamDagRunner() if orchestrator is Orchestrator.BEAM else tfx.orchestration.LocalDagRunner()
    logging.info("Running pipeline %s with %s; artifacts under %s.", config.pipeline_name, orchestrator.value, config.pipeline_root)
    runner.run(create_pipeline(config))


def local_config(
    output_dir: str,
    data_root: str,
    spec,
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
