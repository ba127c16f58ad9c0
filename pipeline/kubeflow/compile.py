"""`mmoe-pipeline compile`'s (and `schedule`'s) work, once click has parsed the flags: the URIs and the
object-store access checked, the Trainer's resources and replicas, the Kubeflow config, and the
compiled package (checked against the open-source backend's rules for --target kfp).

Errors about a flag are `pipeline.graph.settings.SettingsError` naming the flag; a package the
backend would reject is a `CompileError` with every violation."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from pipeline.graph import settings
from pipeline.graph.config import DEFAULT_GPU, ResourceRequest, Target, TrainerWorkers
from pipeline.kubeflow import targets


class CompileError(ValueError):
    """The package cannot be compiled as asked (e.g. it would break an open-source backend rule)."""


@dataclasses.dataclass(frozen=True)
class CompileRequest:
    """What `compile` was asked for (its flags, parsed)."""

    target: Target
    pipeline_root: str
    data_root: str
    serving_model_dir: str
    image: str
    output: Optional[str] = None
    span_folder: Optional[str] = None
    warm_start: bool = True
    gpus: int = 0
    gpu_type: Optional[str] = None
    gpu_node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    workers: int = 1
    namespace: Optional[str] = None
    vertex_project: str = ""
    vertex_region: str = TrainerWorkers.vertex_region
    machine_type: str = TrainerWorkers.machine_type
    tfjob_timeout_s: float = TrainerWorkers.timeout_s
    s3_endpoint: str = ""
    s3_secret: str = ""
    settings: settings.RunSettings = settings.RunSettings()  # shared with `run`


def compile_package(request: CompileRequest) -> str:
    """Compiles `request`'s pipeline and returns the package's path."""
    from components import object_store
    from pipeline.graph import beam_options
    from pipeline.kubeflow import kubeflow_v2_runner as kfp_runner

    for option, uri in (("--pipeline-root", request.pipeline_root), ("--data-root", request.data_root),
                        ("--serving-model-dir", request.serving_model_dir)):
        try:
            object_store.check_uri(uri, option)
        except object_store.ObjectStoreError as e:
            raise settings.SettingsError(str(e), option) from None
    try:
        s3 = kfp_runner.S3Access(endpoint=request.s3_endpoint, secret=request.s3_secret)
    except ValueError as e:
        raise settings.SettingsError(str(e), "--s3-endpoint") from None
    target, gpus = request.target, request.gpus
    shared = request.settings
    spec = shared.spec()
    resources = (
        dataclasses.replace(DEFAULT_GPU, accelerator_type=request.gpu_type or targets.profile(target).gpu_type,
                            accelerator_count=gpus)
        if gpus else ResourceRequest()
    )
    trainer_workers = TrainerWorkers(
        replicas=request.workers, gpus=gpus, gpu_type=resources.accelerator_type, cpu=DEFAULT_GPU.cpu,
        memory_gib=DEFAULT_GPU.memory_gib, node_selector=dict(request.gpu_node_selector),
        namespace=request.namespace or TrainerWorkers.namespace, vertex_project=request.vertex_project,
        vertex_region=request.vertex_region, machine_type=request.machine_type, timeout_s=request.tfjob_timeout_s,
    )
    trainer, tuning = shared.trainer(), shared.tuning()
    schema_path = shared.schema_path or kfp_runner.image_schema(shared.spec_path)
    try:
        config = kfp_runner.kubeflow_config(
            request.pipeline_root, request.data_root, spec, schema_path, request.serving_model_dir, target=target,
            trainer=trainer, train_steps=shared.train_steps, eval_steps=shared.eval_steps,
            trainer_resources=resources, trainer_workers=trainer_workers, span_folder=request.span_folder,
            num_spans=shared.num_spans, warm_start=request.warm_start,
            beam_pipeline_args=beam_options.with_worker_image(shared.beam_args, request.image), **tuning,
        )
        output = request.output or targets.profile(target).default_output
        return kfp_runner.compile_pipeline(config, request.image, output, target,
                                           dict(request.gpu_node_selector) if request.workers == 1 else None, s3=s3)
    except settings.SettingsError:
        raise
    except ValueError as e:  # SpecConformanceError included: one message, no traceback
        raise CompileError(str(e)) from None
