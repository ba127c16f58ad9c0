"""Compiles the pipeline for Kubeflow Pipelines or Vertex AI, and schedules recurring runs.

Two targets, one `create_pipeline`:

* ``kfp`` (open-source Kubeflow Pipelines 2.x): a PipelineSpec ``.yaml`` (what
  ``kfp.Client`` uploads) compiled with ``use_pipeline_spec_2_1=True`` (the
  backend driver resolves only ``constant`` runtime values), GPUs as the
  Kubernetes resource name (``nvidia.com/gpu``), no ExampleGen driver hook (the
  backend never runs ``lifecycle.preCacheCheck``) and no caching of the nodes
  whose result depends on the outside world (ExampleGen reads the data root,
  ServingBaseline the serving directory, SpanDrift its history; ExampleGen's
  executor resolves the newest span itself). `spec_check` must pass before the
  file is written.
* ``vertex`` (Vertex AI Pipelines): TFX's PipelineJob ``.json`` with Vertex
  accelerator names; ServingBaseline and SpanDrift not cached.

On every target the Evaluator's baseline and warm start's base is the model in
serving (`components.baseline.ServingBaseline`).

Compiling needs no cluster and no cloud credentials: Transform and Trainer
point at functions of the installed package, so nothing is uploaded at
compile time. The container image must have this project installed (see the
Dockerfile) with its schemas under ``IMAGE_PROJECT_DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import posixpath
import tempfile
from typing import Dict, Optional, Sequence

import yaml
from google.protobuf import json_format
from kfp.client import client as kfp_client
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

import schemas
from components import object_store, tfjob_trainer
from components.names import DRIFT_COMPONENT, EXAMPLE_GEN_COMPONENT, SERVING_BASELINE_COMPONENT, TRAINER_COMPONENT
from pipeline.graph.config import DEFAULT_CRON, DEFAULT_GPU, DEFAULT_PIPELINE_NAME, DEFAULT_TARGET, PipelineConfig, Target
from pipeline.graph.pipeline import create_pipeline
from pipeline.graph.settings import DEFAULT_SCHEMA, SettingsError, default_schema
from pipeline.kubeflow import kfp_entrypoint, spec_check, targets
from trainer.config import Distribution, TrainerConfig

IMAGE_PROJECT_DIR = "/pipeline"  # where the Dockerfile copies the project
EXAMPLE_GEN = EXAMPLE_GEN_COMPONENT
# Their output depends on files outside the spec: the data root's newest span (ExampleGen resolves it
# itself: no driver runs there), the serving directory, the drift history.
UNCACHED_TASKS = (EXAMPLE_GEN, SERVING_BASELINE_COMPONENT, DRIFT_COMPONENT)
# On Vertex AI, TFX's ExampleGen driver runs and keys the cache with the data's fingerprint.
VERTEX_UNCACHED_TASKS = (SERVING_BASELINE_COMPONENT, DRIFT_COMPONENT)
TFX_COMMAND_PREFIX = ["python", "-m"]  # TFX's compiler: python -m <its entrypoint>


def image_schema_path(*parts: str) -> str:
    """Path of a shipped schema file inside the container image."""
    return posixpath.join(IMAGE_PROJECT_DIR, "schemas", *parts)


def image_schema(spec_path: Optional[str]) -> Optional[str]:
    """`default_schema` inside the container image: only the schemas shipped with the project are there."""
    local = default_schema(spec_path)
    if local is None:
        return None  # no curated schema: SchemaGen infers it, as `run` does
    shipped_root = os.path.dirname(os.path.dirname(os.path.abspath(schemas.path(*DEFAULT_SCHEMA))))
    relative = os.path.relpath(os.path.abspath(local), shipped_root)
    if not relative.startswith(os.pardir):
        return image_schema_path(*relative.split(os.sep))
    # `run` would validate with this curated schema; the image does not have it.
    raise SettingsError(
        f"the spec {spec_path} has a curated schema beside it ({local}), which `run` uses, but it is not "
        f"shipped in the image (only {shipped_root}/ is, under {image_schema_path()}). Ship it under "
        "schemas/<dataset>/ and rebuild the image, or pass --schema with its path inside the image.")


def kubeflow_config(pipeline_root: str, data_root: str, spec, schema_path: str, serving_model_dir: str,
                    pipeline_name: str = DEFAULT_PIPELINE_NAME, target: Target = DEFAULT_TARGET,
                    **overrides) -> PipelineConfig:
    """A config for `target`: remote paths, the Trainer on a GPU named for the target, no local
    metadata."""
    rules = targets.profile(target)
    overrides.setdefault("trainer_resources", dataclasses.replace(DEFAULT_GPU, accelerator_type=rules.gpu_type))
    workers = overrides.get("trainer_workers")
    if workers is not None and workers.replicas > 1:
        # Every replica runs run_fn under the TF_CONFIG its platform sets.
        overrides["trainer_workers"] = dataclasses.replace(workers, backend=rules.worker_backend)
        trainer = overrides.get("trainer", TrainerConfig())
        if trainer.distribution is Distribution.AUTO:
            overrides["trainer"] = dataclasses.replace(trainer, distribution=Distribution.MULTI_WORKER)
        elif trainer.distribution is not Distribution.MULTI_WORKER:
            # Each replica would train its own model under a single-worker strategy, and the chief's
            # would be exported as if it had seen all the data.
            raise ValueError(
                f"distribution: received {trainer.distribution.value!r} with {workers.replicas} Trainer replicas "
                f"(--workers); replicas train one model only under {Distribution.MULTI_WORKER.value!r}. Set "
                f"distribution to {Distribution.AUTO.value!r} or {Distribution.MULTI_WORKER.value!r} in the "
                "--trainer-config file, or train with --workers 1."
            )
    return PipelineConfig(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=schema_path,
        spec=spec,
        serving_model_dir=serving_model_dir,
        **overrides,
    )


def executor_label(spec: pipeline_spec_pb2.PipelineSpec, task: str) -> str:
    """The deploymentSpec executor of root task `task`."""
    if task not in spec.root.dag.tasks:
        raise KeyError(f"no task {task!r} in the spec; tasks: {sorted(spec.root.dag.tasks)}")
    return spec.components[spec.root.dag.tasks[task].component_ref.name].executor_label


def adapt_for_kfp(spec: pipeline_spec_pb2.PipelineSpec, pipeline_root: str, env: Sequence[dict] = ()) -> None:
    """What the open-source backend needs beyond TFX's compiler output (in place): our entrypoint in
    every TFX task (`pipeline.kubeflow.kfp_entrypoint`: tensorflow/tfx#7768, ``executor-logs``), no
    preCacheCheck hooks, no caching of the tasks that read the outside world, and the pipeline root
    as ``defaultPipelineRoot`` (which `schedule` passes on as the run's root)."""
    spec.default_pipeline_root = pipeline_root
    tasks_of = {}
    for task_name, task in spec.root.dag.tasks.items():
        tasks_of.setdefault(spec.components[task.component_ref.name].executor_label, []).append(task_name)
    deployment = json_format.MessageToDict(spec.deployment_spec)
    for name, executor in deployment["executors"].items():
        container = executor.get("container", {})
        if container.pop("lifecycle", None) is not None:
            logging.info("%s: dropped the preCacheCheck hook (open-source KFP never runs it).", name)
        if container.get("command") == [*TFX_COMMAND_PREFIX, kfp_entrypoint.TFX_ENTRYPOINT]:
            (task_name,) = tasks_of[name]
            container["command"] = [*TFX_COMMAND_PREFIX, kfp_entrypoint.ENTRYPOINT, kfp_entrypoint.TASK_FLAG,
                                    task_name]
        if env and "container" in executor:
            container["env"] = [*container.get("env", []), *env]
    spec.deployment_spec.Clear()
    spec.deployment_spec.update(deployment)
    for task in UNCACHED_TASKS:
        if task in spec.root.dag.tasks:
            spec.root.dag.tasks[task].caching_options.enable_cache = False


def platform_spec(spec: pipeline_spec_pb2.PipelineSpec, gpu_node_selector: Dict[str, str],
                  secret_as_env: Sequence[dict] = ()) -> dict:
    """The kfp-kubernetes platform document: the Trainer's node selector (GPU model) and, when it asks
    for GPUs, the toleration of GPU nodes' taint; the object store's credentials in every task
    (driver/driver.go extendPodSpecPatch applies all three)."""
    trainer = executor_label(spec, TRAINER_COMPONENT)
    deployment = spec_check.deployment_config(spec)
    executors: Dict[str, dict] = {}
    if secret_as_env:
        for label, executor in deployment.executors.items():
            if executor.WhichOneof("spec") == "container":
                executors[label] = {"secretAsEnv": [dict(s) for s in secret_as_env]}
    config = executors.setdefault(trainer, {})
    if gpu_node_selector:
        config["nodeSelector"] = {"labels": dict(gpu_node_selector)}
    accelerator = deployment.executors[trainer].container.resources.accelerator
    if accelerator.count:
        config["tolerations"] = tfjob_trainer.gpu_tolerations(accelerator.type)
    executors = {label: value for label, value in executors.items() if value}
    if not executors:
        return {}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def write_package(spec: pipeline_spec_pb2.PipelineSpec, platform: dict, path: str) -> None:
    """Writes the PipelineSpec (and the platform document, if any) as kfp's compiler does."""
    docs = [json_format.MessageToDict(spec)] + ([platform] if platform else [])
    with open(path, "w") as f:
        f.write(f"# PIPELINE DEFINITION\n# Name: {spec.pipeline_info.name}\n")
        yaml.safe_dump_all(docs, f, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class S3Access:
    """How every task reaches an s3:// store (MinIO on open-source Kubeflow): the endpoint as
    container environment (S3_ENDPOINT for TensorFlow, AWS_ENDPOINT_URL for Beam's boto3) and the
    credentials from a Kubernetes secret (kfp-kubernetes secretAsEnv), by default Kubeflow's own
    MinIO secret."""

    endpoint: str = ""
    secret: str = ""
    access_key_key: str = "accesskey"  # the keys of Kubeflow's mlpipeline-minio-artifact secret
    secret_key_key: str = "secretkey"

    def __post_init__(self):
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"s3 endpoint: received {self.endpoint!r}; tensorflow-io needs the scheme, e.g. "
                             "http://minio-service.kubeflow:9000.")

    def env(self) -> list:
        if not self.endpoint:
            return []
        return [{"name": object_store.ENDPOINT_ENV, "value": self.endpoint},
                {"name": object_store.BOTO_ENDPOINT_ENV, "value": self.endpoint}]

    def secret_as_env(self) -> list:
        if not self.secret:
            return []
        return [{"secretName": self.secret, "keyToEnv": [
            {"secretKey": self.access_key_key, "envVar": "AWS_ACCESS_KEY_ID"},
            {"secretKey": self.secret_key_key, "envVar": "AWS_SECRET_ACCESS_KEY"}]}]


def compile_pipeline(config: PipelineConfig, image: str, output_path: str, target: Target = DEFAULT_TARGET,
                     gpu_node_selector: Optional[Dict[str, str]] = None, s3: S3Access = S3Access()) -> str:
    """Compiles `config` for `target` to `output_path` and returns the path.

    For ``kfp`` the spec is checked with `spec_check` first; a spec that breaks a
    rule raises `spec_check.SpecConformanceError` and nothing is written.
    """
    rules = targets.profile(target)
    if not image:
        raise ValueError("image: received an empty string; pass the container image that has this project installed.")
    rules.check_output(output_path)
    if gpu_node_selector and not rules.node_selector:
        raise ValueError(f"gpu_node_selector: a Kubernetes node selector does not apply to --target "
                         f"{rules.target.value}; only to "
                         f"{', '.join('--target ' + p.target.value for p in targets.PROFILES.values() if p.node_selector)}.")
    workers = config.trainer_workers
    if workers.replicas > 1:
        if rules.workers_need_project and not workers.vertex_project:
            raise ValueError(f"vertex_project: empty; Vertex AI worker pools (--workers > 1 on --target "
                             f"{rules.target.value}) need the Google Cloud project (--vertex-project).")
        config = dataclasses.replace(config, trainer_workers=dataclasses.replace(workers, image=workers.image or image))
    WRITERS[rules.target](create_pipeline(config), config, image, output_path, gpu_node_selector or {}, s3)
    return output_path


def _write_vertex(pipeline, config: PipelineConfig, image: str, output_path: str, gpu_node_selector: Dict[str, str],
                  s3: S3Access) -> None:
    """TFX's PipelineJob .json, with the tasks that read the outside world not cached."""
    _run_tfx_compiler(pipeline, image, output_path, spec_2_1=False)
    with open(output_path) as f:
        job = json.load(f)
    for task in VERTEX_UNCACHED_TASKS:  # their output depends on the outside world (see above)
        job["pipelineSpec"]["root"]["dag"]["tasks"][task].setdefault("cachingOptions", {})["enableCache"] = False
    with open(output_path, "w") as f:
        json.dump(job, f, indent=2, sort_keys=True)
    logging.info("Wrote the Vertex AI pipeline job to %s.", output_path)


def _write_kfp(pipeline, config: PipelineConfig, image: str, output_path: str, gpu_node_selector: Dict[str, str],
               s3: S3Access) -> None:
    """TFX's PipelineSpec 2.1 adapted for the open-source backend and checked against its rules, then written
    with the kfp-kubernetes platform document; a spec that breaks a rule writes nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "tfx_pipeline.yaml")
        _run_tfx_compiler(pipeline, image, raw, spec_2_1=True)
        spec = kfp_client._extract_pipeline_yaml(raw).pipeline_spec
    adapt_for_kfp(spec, config.pipeline_root, s3.env())
    violations = spec_check.check(spec)
    if violations:
        raise spec_check.SpecConformanceError(output_path, violations)
    write_package(spec, platform_spec(spec, gpu_node_selector, s3.secret_as_env()), output_path)
    logging.info("Wrote the Kubeflow Pipelines package to %s.", output_path)


# How each target's package is written (`targets.PROFILES` holds the rest of what differs).
WRITERS = {Target.KFP: _write_kfp, Target.VERTEX: _write_vertex}


def _run_tfx_compiler(pipeline, image: str, path: str, spec_2_1: bool) -> None:
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=spec_2_1
        ),
        output_dir=os.path.dirname(os.path.abspath(path)),
        output_filename=os.path.basename(path),
    )
    runner.run(pipeline, write_out=True)


def validate_cron(cron: str) -> str:
    fields = cron.split()
    if len(fields) != 6:
        raise ValueError(
            f"cron: received {cron!r} ({len(fields)} fields); Kubeflow Pipelines expects 6 fields "
            f"with seconds first, e.g. {DEFAULT_CRON!r} for every day at 03:00."
        )
    return cron
