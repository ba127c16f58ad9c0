"""The one typed config a pipeline is built from."""

from __future__ import annotations

import dataclasses
import enum
from typing import Optional, Tuple

from components.names import DEFAULT_SPAN_FOLDER, DEFAULT_TFJOB_TIMEOUT_S, SPAN_TOKEN
from components.spec import DatasetSpec
from trainer.config import TrainerConfig


@dataclasses.dataclass(frozen=True)
class ResourceRequest:
    """Container resources of a component on Kubeflow (ignored by local runners)."""

    cpu: float = 0.0
    memory_gib: float = 0.0
    accelerator_type: str = ""  # e.g. "NVIDIA_TESLA_T4"; empty for none
    accelerator_count: int = 0

    def __post_init__(self):
        if self.cpu < 0 or self.memory_gib < 0:
            raise ValueError(
                f"ResourceRequest: received cpu={self.cpu!r}, memory_gib={self.memory_gib!r}; expected >= 0."
            )
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise ValueError(
                f"ResourceRequest: received accelerator_type={self.accelerator_type!r} with "
                f"accelerator_count={self.accelerator_count!r}; set both (a type and a count >= 1) or neither."
            )


class Orchestrator(str, enum.Enum):
    """Local orchestrators: Apache Beam (default) or TFX's LocalDagRunner."""

    BEAM = "beam"
    LOCAL = "local"


class Target(str, enum.Enum):
    """Where a compiled pipeline runs."""

    KFP = "kfp"  # open-source Kubeflow Pipelines 2.x: a PipelineSpec .yaml
    VERTEX = "vertex"  # Vertex AI Pipelines: a PipelineJob .json


class WorkerBackend(str, enum.Enum):
    """Who runs the Trainer's replicas when there are several."""

    TFJOB = "tfjob"  # a Kubeflow TFJob, submitted by the Trainer's pod (open-source KFP)
    VERTEX = "vertex"  # Vertex AI worker pools (tfx.extensions.google_cloud_ai_platform.Trainer)


@dataclasses.dataclass(frozen=True)
class TrainerWorkers:
    """Multi-worker training on Kubeflow or Vertex AI (local runners train in one process).

    Attributes:
      replicas: chief + workers; 1 trains in the Trainer's own pod.
      gpus: GPUs per replica.
      gpu_type: the accelerator (Kubernetes resource name for TFJob, Vertex name for Vertex).
      cpu, memory_gib: limits per TFJob replica (0: none).
      node_selector: node labels of every TFJob replica (the GPU model).
      namespace: Kubernetes namespace of the TFJob.
      image: image of every replica (set from the compile image).
      backend: see `WorkerBackend`.
      vertex_project, vertex_region, machine_type: Vertex AI worker pools.
      timeout_s: how long the TFJob may take, Pending included (0: forever).
    """

    replicas: int = 1
    gpus: int = 0
    gpu_type: str = ""
    cpu: float = 0.0
    memory_gib: float = 0.0
    node_selector: Tuple[Tuple[str, str], ...] = ()
    namespace: str = "kubeflow"
    image: str = ""
    backend: WorkerBackend = WorkerBackend.TFJOB
    vertex_project: str = ""
    vertex_region: str = "us-central1"
    machine_type: str = "n1-standard-8"
    timeout_s: float = DEFAULT_TFJOB_TIMEOUT_S

    def __post_init__(self):
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or self.timeout_s < 0:
            raise ValueError(f"TrainerWorkers.timeout_s: received {self.timeout_s!r}, expected seconds >= 0 "
                             "(0: no limit).")
        for name in ("replicas", "gpus"):
            value = getattr(self, name)
            low = 1 if name == "replicas" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TrainerWorkers.{name}: received {value!r}, expected an integer >= {low}.")
        if self.gpus and not self.gpu_type:
            raise ValueError(f"TrainerWorkers.gpu_type: empty with gpus={self.gpus}; name the accelerator.")
        selector = self.node_selector
        object.__setattr__(self, "node_selector", tuple(sorted(
            selector.items() if isinstance(selector, dict) else (tuple(p) for p in selector))))
        object.__setattr__(self, "backend", WorkerBackend(self.backend))


# Open-source KFP uses the accelerator type as the Kubernetes resource name (backend/src/v2/driver/driver.go);
# each target's default is in pipeline/kubeflow/targets.py.
KFP_GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_TARGET = Target.KFP
# Kubeflow defaults: the Trainer on one GPU with 4 CPUs and 16 GiB, a daily run (KFP cron has a seconds field).
DEFAULT_GPU = ResourceRequest(cpu=4, memory_gib=16, accelerator_type=KFP_GPU_RESOURCE, accelerator_count=1)
# The open-source backend's root when neither the run nor the namespace names one.
DEFAULT_BACKEND_ROOT = "minio://mlpipeline/v2/artifacts"  # backend/src/v2/config/env.go defaultPipelineRoot
DEFAULT_CRON = "0 0 3 * * *"
# Run defaults, one place for the CLI, the runners and the tests.
DEFAULT_TRAIN_STEPS = 2000
DEFAULT_EVAL_STEPS = 50
DEFAULT_SEED = 42
DEFAULT_PIPELINE_NAME = "mmoe-pipeline"
DRIFT_HISTORY_FOLDER = "span-statistics"  # under the pipeline root


@dataclasses.dataclass(frozen=True)
class TuningConfig:
    """The Tuner's search: at most `max_trials` trials, none started after `budget_s` seconds."""

    budget_s: float = 600.0
    max_trials: int = 20

    def __post_init__(self):
        if isinstance(self.budget_s, bool) or not isinstance(self.budget_s, (int, float)) or self.budget_s <= 0:
            raise ValueError(f"TuningConfig.budget_s: received {self.budget_s!r}, expected seconds > 0.")
        if isinstance(self.max_trials, bool) or not isinstance(self.max_trials, int) or self.max_trials < 1:
            raise ValueError(f"TuningConfig.max_trials: received {self.max_trials!r}, expected an integer >= 1.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything `create_pipeline` needs: paths, data spec, model and run settings.

    Attributes:
      pipeline_name: TFX pipeline name (also names the MLMD contexts).
      pipeline_root: where every component writes its artifacts.
      data_root: folder with the CSV files as the spec's ``split`` says (``train/``, ``eval/`` and
        ``test/`` folders, or the files to split), or with one such folder per span.
      schema_path: curated schema.pbtxt, checked against the spec and adjusted to it by SpecSchema;
        None: SchemaGen infers one from the data's statistics.
      spec: the dataset spec (columns, features, tasks, slices).
      serving_model_dir: where the Pusher writes blessed models.
      trainer: model hyper-parameters.
      train_steps, eval_steps: Trainer steps.
      metadata_path: SQLite MLMD file for local runs (None on Kubeflow).
      beam_pipeline_args: arguments of every Beam-powered component.
      enable_cache: reuse outputs of unchanged components.
      trainer_resources: container resources of the Trainer on Kubeflow.
      run_fn: import path of the Trainer's run_fn; None for ``trainer.run.run_fn``.
      baseline_cache_key: pass the served version to `ServingBaseline` as a parameter (local runners:
        TFX's cache then re-runs it exactly when the served model changed); off on Kubeflow and Vertex,
        where the compiled task is never cached instead.
      trainer_workers: multi-worker training on Kubeflow / Vertex AI, see `TrainerWorkers`.
      span_folder: the data root's span folders, e.g. ``span-{SPAN}``; None: no spans.
      num_spans: how many of the newest spans each run reads (with `span_folder`).
      warm_start: the Trainer starts from the weights of the model in serving (the baseline).
      tuning: run the Tuner (KerasTuner) before the Trainer, which takes its best hyper-parameters.
      hyperparameters_uri: instead, a previous Tuner's ``best_hyperparameters`` folder (an Importer).
    """

    pipeline_name: str
    pipeline_root: str
    data_root: str
    schema_path: Optional[str]
    spec: DatasetSpec
    serving_model_dir: str
    trainer: TrainerConfig = TrainerConfig()
    train_steps: int = DEFAULT_TRAIN_STEPS
    eval_steps: int = DEFAULT_EVAL_STEPS
    metadata_path: Optional[str] = None
    beam_pipeline_args: Tuple[str, ...] = ()
    enable_cache: bool = True
    trainer_resources: ResourceRequest = ResourceRequest()
    run_fn: Optional[str] = None
    baseline_cache_key: bool = False
    trainer_workers: TrainerWorkers = TrainerWorkers()
    span_folder: Optional[str] = None
    num_spans: int = 1
    warm_start: bool = False
    tuning: Optional[TuningConfig] = None
    hyperparameters_uri: Optional[str] = None

    @property
    def drift_history_dir(self) -> str:
        """Where SpanDrift keeps each span's statistics (inside the pipeline root, on every target)."""
        return self.pipeline_root.rstrip("/") + "/" + DRIFT_HISTORY_FOLDER

    def __post_init__(self):
        if self.schema_path is not None and (not isinstance(self.schema_path, str) or not self.schema_path):
            raise ValueError(f"PipelineConfig.schema_path: received {self.schema_path!r}, expected a schema.pbtxt "
                             "path, or None to infer the schema from the data.")
        if isinstance(self.num_spans, bool) or not isinstance(self.num_spans, int) or self.num_spans < 1:
            raise ValueError(f"PipelineConfig.num_spans: received {self.num_spans!r}, expected an integer >= 1.")
        if self.span_folder is not None and (self.span_folder.count(SPAN_TOKEN) != 1 or "/" in self.span_folder):
            raise ValueError(f"PipelineConfig.span_folder: received {self.span_folder!r}; expected one folder name "
                             f"holding {SPAN_TOKEN} once, e.g. {DEFAULT_SPAN_FOLDER!r}.")
        if self.tuning is not None and self.hyperparameters_uri:
            raise ValueError("PipelineConfig: tuning and hyperparameters_uri both set; tune (--tune) or reuse a "
                             "previous Tuner's result (--hyperparameters), not both.")
        if self.num_spans > 1 and not self.span_folder:
            raise ValueError(f"PipelineConfig.num_spans: {self.num_spans} spans asked for, but the data has no span "
                             "folders (span_folder is None); lay the data out as span-1/, span-2/, ...")
        for name in ("pipeline_name", "pipeline_root", "data_root", "serving_model_dir"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"PipelineConfig.{name}: received {value!r}, expected a non-empty string.")
        for name in ("train_steps", "eval_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"PipelineConfig.{name}: received {value!r}, expected a positive integer.")
        object.__setattr__(self, "beam_pipeline_args", tuple(self.beam_pipeline_args))
