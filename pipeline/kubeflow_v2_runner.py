"""Compiles the pipeline for Kubeflow Pipelines (IR JSON) and schedules recurring runs.

Compiling needs no cluster and no cloud credentials: Transform and Trainer
point at functions of the installed package (``preprocessing_fn=``,
``run_fn=``), so nothing is uploaded at compile time. The container image must
have this project installed (see the Dockerfile) with its schemas under
``IMAGE_PROJECT_DIR``.
"""

from __future__ import annotations

import logging
import posixpath

from tfx import v1 as tfx

from pipeline.config import DEFAULT_CRON, DEFAULT_GPU, PipelineConfig
from pipeline.pipeline import create_pipeline

IMAGE_PROJECT_DIR = "/pipeline"  # where the Dockerfile copies the project


def image_schema_path(*parts: str) -> str:
    """Path of a shipped schema file inside the container image."""
    return posixpath.join(IMAGE_PROJECT_DIR, "schemas", *parts)


def kubeflow_config(pipeline_root: str, data_root: str, spec, schema_path: str, serving_model_dir: str,
                    pipeline_name: str = "mmoe-pipeline", **overrides) -> PipelineConfig:
    """A config for Kubeflow: remote paths, the Trainer on a GPU, no local metadata."""
    overrides.setdefault("trainer_resources", DEFAULT_GPU)
    return PipelineConfig(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=schema_path,
        spec=spec,
        serving_model_dir=serving_model_dir,
        **overrides,
    )


def compile_pipeline(config: PipelineConfig, image: str, output_path: str) -> str:
    """Writes the KFP v2 pipeline JSON for `config` to `output_path`; returns the path."""
    if not image:
        raise ValueError("image: received an empty string; pass the container image that has this project installed.")
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_filename=output_path,
    )
    runner.run(create_pipeline(config), write_out=True)
    logging.info("Wrote the Kubeflow pipeline to %s.", output_path)
    return output_path


def validate_cron(cron: str) -> str:
    fields = cron.split()
    if len(fields) != 6:
        raise ValueError(
            f"cron: received {cron!r} ({len(fields)} fields); Kubeflow Pipelines expects 6 fields "
            f"with seconds first, e.g. {DEFAULT_CRON!r} for every day at 03:00."
        )
    return cron


def schedule(client, package_path: str, cron: str, experiment: str, job_name: str, enable_caching: bool = True):
    """Creates a recurring run of the compiled pipeline on a KFP cluster (`client`: a kfp.Client)."""
    validate_cron(cron)
    experiment_id = client.create_experiment(name=experiment).experiment_id
    run = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=job_name,
        cron_expression=cron,
        pipeline_package_path=package_path,
        enable_caching=enable_caching,
        max_concurrency=1,
        no_catchup=True,
    )
    logging.info("Scheduled %s (%s) in experiment %s.", job_name, cron, experiment)
    return run
