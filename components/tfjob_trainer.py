"""A Trainer executor that trains on several workers as a Kubeflow TFJob.

Modelled on TFX's Vertex AI trainer extension
(``tfx.extensions.google_cloud_ai_platform.trainer``): the Trainer's own pod
only submits the work. It creates a TFJob (Kubeflow training operator,
``kubeflow.org/v1``) with one Chief and ``replicas - 1`` Workers; every replica
runs the same command, ``python -m tfx.scripts.run_executor`` with TFX's
``GenericExecutor`` and the Trainer's inputs, outputs and exec properties, so
``run_fn`` runs in each of them under the ``TF_CONFIG`` the operator sets
(``MultiWorkerMirroredStrategy``: ``TrainerConfig.distribution='multi_worker'``).
The chief writes the model to the Trainer's output URIs, which must be on
storage every pod can reach (the pipeline root: ``gs://`` or ``s3://``; the KFP
launcher accepts no local path). The executor waits for the job, logs each change of its state, and
fails with the job's message and the failed pods' last log lines when a
replica fails.

The settings come in the Trainer's ``custom_config[TFJOB_CONFIG_KEY]`` (see
`TFJobSpec`); the Kubernetes credentials are the pod's service account
(in-cluster config) or, outside a cluster, the kubeconfig.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import threading
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional, Tuple

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs

from components.names import DEFAULT_TFJOB_TIMEOUT_S
from components.spec import build_dataclass

TFJOB_CONFIG_KEY = "tfjob"
GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "tfjobs", "TFJob"
CONTAINER_NAME = "tensorflow"  # the container the training operator configures
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_EXECUTOR = "tfx.components.trainer.executor.GenericExecutor"
RUN_EXECUTOR = ["python", "-m", "tfx.scripts.run_executor"]
LOG_TAIL_LINES = 20
# Set in every KFP task pod by the driver (backend/src/v2/component/constants.go EnvPodName, EnvPodUID):
# the TFJob is owned by the Trainer's pod, so Kubernetes deletes it with the pod (a cancelled run).
POD_NAME_ENV, POD_UID_ENV = "KFP_POD_NAME", "KFP_POD_UID"


@dataclasses.dataclass(frozen=True)
class TFJobSpec:
    """What the TFJob asks of the cluster.

    Attributes:
      image: container image of every replica (the pipeline's image).
      replicas: chief + workers (>= 1).
      gpus: GPUs per replica, requested as `gpu_resource` limits.
      gpu_resource: the Kubernetes extended resource of a GPU.
      cpu, memory_gib: limits per replica (0: none).
      node_selector: node labels every replica needs (e.g. the GPU model).
      namespace: where the TFJob is created.
      poll_interval_s: how often its status is read.
      timeout_s: how long the job may take, Pending included (0: forever); also the job's
        ``runPolicy.activeDeadlineSeconds``, so the operator ends it even if this pod is gone.
    """

    image: str
    replicas: int = 2
    gpus: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    cpu: float = 0.0
    memory_gib: float = 0.0
    node_selector: Tuple[Tuple[str, str], ...] = ()
    namespace: str = "kubeflow"
    poll_interval_s: float = 10.0
    timeout_s: float = DEFAULT_TFJOB_TIMEOUT_S

    def __post_init__(self):
        if not self.image:
            raise ValueError("TFJobSpec.image: received an empty string; pass the pipeline's container image.")
        for name, low in (("replicas", 1), ("gpus", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TFJobSpec.{name}: received {value!r}, expected an integer >= {low}.")
        selector = self.node_selector
        object.__setattr__(self, "node_selector",
                           tuple(sorted((selector.items() if isinstance(selector, Mapping) else selector))))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["node_selector"] = dict(self.node_selector)
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "TFJobSpec":
        return build_dataclass(cls, raw, f"custom_config[{TFJOB_CONFIG_KEY!r}]")


def run_executor_args(input_dict, output_dict, exec_properties, executor_class_path: str = REPLICA_EXECUTOR
                      ) -> List[str]:
    """The arguments of ``python -m tfx.scripts.run_executor`` that run `executor_class_path` on these
    artifacts, as TFX's Vertex AI trainer passes them to every replica."""
    return [
        "--executor_class_path", executor_class_path,
        "--inputs", artifact_utils.jsonify_artifact_dict(input_dict),
        "--outputs", artifact_utils.jsonify_artifact_dict(output_dict),
        "--exec-properties", json.dumps(exec_properties, sort_keys=True),
    ]


def gpu_tolerations(gpu_resource: str) -> List[Dict[str, str]]:
    """Tolerations for nodes tainted by their GPU resource (GKE and the NVIDIA GPU operator taint GPU
    nodes ``nvidia.com/gpu=present:NoSchedule``): without them such nodes never take the pod."""
    return [{"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"}]


def _replica(spec: TFJobSpec, count: int, args: List[str]) -> dict:
    limits: Dict[str, Any] = {}
    if spec.gpus:
        limits[spec.gpu_resource] = spec.gpus
    if spec.cpu:
        limits["cpu"] = str(spec.cpu)
    if spec.memory_gib:
        limits["memory"] = f"{int(spec.memory_gib * 1024)}Mi"
    pod: Dict[str, Any] = {"containers": [{
        "name": CONTAINER_NAME, "image": spec.image, "command": list(RUN_EXECUTOR), "args": list(args),
        **({"resources": {"limits": limits}} if limits else {}),
    }]}
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.gpus:
        pod["tolerations"] = [dict(t) for t in gpu_tolerations(spec.gpu_resource)]
    return {"replicas": count, "restartPolicy": "Never", "template": {"spec": pod}}


def owner_pod(environ: Mapping[str, str] = os.environ) -> Optional[dict]:
    """The ownerReference to the KFP task pod this executor runs in, or None outside one."""
    name, uid = environ.get(POD_NAME_ENV), environ.get(POD_UID_ENV)
    if not name or not uid:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid, "blockOwnerDeletion": False}


def tfjob_manifest(name: str, spec: TFJobSpec, args: List[str], owner: Optional[dict] = None) -> dict:
    """The TFJob: one Chief and `replicas - 1` Workers running the same command, ended by the operator
    after `spec.timeout_s`, owned by `owner` (the Trainer's pod) when given."""
    replica_specs = {"Chief": _replica(spec, 1, args)}
    if spec.replicas > 1:
        replica_specs["Worker"] = _replica(spec, spec.replicas - 1, args)
    run_policy: Dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": 0}
    if spec.timeout_s:
        run_policy["activeDeadlineSeconds"] = max(1, math.ceil(spec.timeout_s))
    metadata: Dict[str, Any] = {"name": name, "namespace": spec.namespace, "labels": {"app": "mmoe-pipeline-trainer"}}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": {"runPolicy": run_policy, "tfReplicaSpecs": replica_specs},
    }


def job_state(job: Mapping[str, Any]) -> Tuple[Optional[str], str]:
    """The newest condition of the job whose status is True: (type, message)."""
    conditions = [c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    if not conditions:
        return None, ""
    latest = conditions[-1]
    return latest.get("type"), latest.get("message", "")


def _kubernetes_clients():
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        # Outside a cluster: $KUBECONFIG (read now, not at import), else ~/.kube/config.
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return kubernetes.client.CustomObjectsApi(), kubernetes.client.CoreV1Api()


class TFJobFailed(RuntimeError):
    """The TFJob ended in Failed."""


class Executor(base_executor.BaseExecutor):
    """Runs the Trainer as a TFJob; see the module docstring."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        custom_config = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null") or {}
        if TFJOB_CONFIG_KEY not in custom_config:
            raise ValueError(f"Trainer: custom_config has no {TFJOB_CONFIG_KEY!r} entry "
                             f"(keys: {sorted(custom_config)}); "
                             "build the pipeline with create_pipeline and trainer workers > 1.")
        spec = TFJobSpec.from_dict(custom_config[TFJOB_CONFIG_KEY])
        name = f"mmoe-trainer-{uuid.uuid4().hex[:10]}"
        manifest = tfjob_manifest(name, spec, run_executor_args(input_dict, output_dict, exec_properties),
                                  owner_pod())
        custom, core = _kubernetes_clients()
        custom.create_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, manifest)
        logging.info("TFJob %s/%s created: 1 chief + %d worker(s), %d GPU(s) each.",
                     spec.namespace, name, spec.replicas - 1, spec.gpus)
        with _terminate_raises():
            try:
                wait_for_tfjob(custom, core, spec, name)
            except BaseException:  # failed, timed out, cancelled (SIGTERM) or interrupted: nothing left behind
                _delete_tfjob(custom, spec, name)
                raise


def wait_for_tfjob(custom, core, spec: TFJobSpec, name: str) -> None:
    """Polls the TFJob until Succeeded (returns) or Failed (raises `TFJobFailed`), logging each new state."""
    start, last = time.monotonic(), None
    while True:
        job = custom.get_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, name)
        state, message = job_state(job)
        replicas = (job.get("status") or {}).get("replicaStatuses") or {}
        if (state, message) != last:
            logging.info("TFJob %s: %s %s (replicas: %s)", name, state or "Pending", message, replicas)
            last = (state, message)
        if state == "Succeeded":
            return
        if state == "Failed":
            raise TFJobFailed(f"TFJob {spec.namespace}/{name} failed: {message}{_failed_pod_logs(core, spec, name)}")
        if spec.timeout_s and time.monotonic() - start > spec.timeout_s:
            raise TimeoutError(f"TFJob {spec.namespace}/{name} did not finish within {spec.timeout_s:.0f} s "
                               f"(last state: {state or 'Pending'}: a Pending job waits for GPUs or nodes the "
                               "cluster lacks); it is deleted. Raise --tfjob-timeout-s, or check the job's events.")
        time.sleep(spec.poll_interval_s)


@contextlib.contextmanager
def _terminate_raises():
    """SIGTERM (what Kubernetes sends a cancelled run's pod) raises SystemExit while waiting, so that
    the TFJob is deleted before the pod goes; outside the main thread, signals stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _delete_tfjob(custom, spec: TFJobSpec, name: str) -> None:
    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, spec.namespace, PLURAL, name,
                                               body={"propagationPolicy": "Background"})
        logging.warning("TFJob %s/%s deleted (the Trainer did not succeed).", spec.namespace, name)
    except Exception:  # noqa: BLE001 (the job's own failure is the error to raise; this one is logged)
        logging.exception("TFJob %s/%s could not be deleted; delete it by hand.", spec.namespace, name)


def _failed_pod_logs(core, spec: TFJobSpec, name: str) -> str:
    pods = core.list_namespaced_pod(spec.namespace, label_selector=f"{JOB_NAME_LABEL}={name}").items
    parts = []
    for pod in pods:
        if pod.status.phase != "Failed":
            continue
        log = core.read_namespaced_pod_log(pod.metadata.name, spec.namespace, container=CONTAINER_NAME,
                                           tail_lines=LOG_TAIL_LINES)
        parts.append(f"\n--- last lines of pod {pod.metadata.name} ---\n{log.rstrip()}")
    return "".join(parts)
