"""What differs between the targets `compile` writes for, in one table: the package's file, the default
accelerator name, who runs several Trainer replicas, and what each target accepts. The CLI's help, the
compile checks and `kubeflow_v2_runner` read it; nothing else branches on the target.

A new target is a `Target` member (`pipeline.graph.config`), its `TargetProfile` here, and the function
that writes its package in `kubeflow_v2_runner.WRITERS`; `tests/pipeline/test_kubeflow.py` checks that
every target has both. Importing this module imports nothing heavy (the CLI's ``--help`` reads it)."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from pipeline.graph.config import KFP_GPU_RESOURCE, Target, WorkerBackend

VERTEX_GPU_TYPE = "NVIDIA_TESLA_T4"  # Vertex AI's accelerator names (aiplatform AcceleratorType)


@dataclasses.dataclass(frozen=True)
class TargetProfile:
    """One target's rules.

    Attributes:
      target: the `Target` it describes.
      summary: what runs the package (the --target help).
      suffixes: the package file's suffixes, the first the default output's.
      gpu_type: the default accelerator name; gpu_type_meaning: what the name is on this target (the --gpu-type help).
      worker_backend: who runs the Trainer's replicas when --workers > 1.
      node_selector: whether a Kubernetes node selector (--gpu-node-selector) applies.
      workers_need_project: whether --workers > 1 needs the Google Cloud project (--vertex-project).
    """

    target: Target
    summary: str
    suffixes: Tuple[str, ...]
    gpu_type: str
    gpu_type_meaning: str
    worker_backend: WorkerBackend
    node_selector: bool
    workers_need_project: bool

    @property
    def default_output(self) -> str:
        return f"mmoe_pipeline{self.suffixes[0]}"

    def check_output(self, path: str) -> None:
        if not path.endswith(self.suffixes):
            raise ValueError(f"output: received {path!r}; --target {self.target.value} writes a "
                             f"{' or '.join(self.suffixes)} file ({self.summary}).")


PROFILES = {profile.target: profile for profile in (
    TargetProfile(
        Target.KFP, summary="open-source Kubeflow Pipelines 2.x: a PipelineSpec that kfp.Client uploads",
        suffixes=(".yaml", ".yml"),
        # open-source KFP uses the accelerator type as the Kubernetes resource name (driver/driver.go)
        gpu_type=KFP_GPU_RESOURCE, gpu_type_meaning="the Kubernetes resource",
        worker_backend=WorkerBackend.TFJOB, node_selector=True, workers_need_project=False),
    TargetProfile(
        Target.VERTEX, summary="Vertex AI Pipelines: a PipelineJob", suffixes=(".json",),
        gpu_type=VERTEX_GPU_TYPE, gpu_type_meaning="Vertex AI's accelerator name",
        worker_backend=WorkerBackend.VERTEX, node_selector=False, workers_need_project=True),
)}


def profile(target) -> TargetProfile:
    """The profile of `target` (a `Target` or its value)."""
    try:
        return PROFILES[Target(target)]
    except ValueError:
        raise ValueError(f"target: received {target!r}; expected one of {[t.value for t in Target]}.") from None
