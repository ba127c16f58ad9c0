"""Conformance of a compiled pipeline with the open-source Kubeflow Pipelines backend.

`load_package` reads a package exactly as ``kfp.Client`` does before an upload
(``kfp.client.client._extract_pipeline_yaml``: ``.yaml``/``.yml``/``.zip``/
``.tar.gz``/``.tgz`` only). `check` applies what the open-source backend
(repository kubeflow/pipelines, ``backend/src/v2/``) supports, one rule at a
time; each rule names the backend file it comes from. A spec that passes is not
proven to run on a cluster (see the README), but one that fails would be refused
or misbehave there.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Iterator, List, Tuple

from google.protobuf import json_format
from kfp.client import client as kfp_client
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.graph.config import DEFAULT_BACKEND_ROOT
from pipeline.kubeflow import kfp_entrypoint

WRITABLE_ROOT_SCHEMES = ("s3://", "gs://")  # LocalPathForURI's schemes that a TensorFlow filesystem opens
PACKAGE_SUFFIXES = (".yaml", ".yml", ".zip", ".tar.gz", ".tgz")  # kfp.Client's _extract_pipeline_yaml

# A Kubernetes extended resource name: a DNS-subdomain prefix outside kubernetes.io, "/", a name
# (k8s.io/apimachinery validation IsQualifiedName; core/v1 helper IsExtendedResourceName).
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_QUALIFIED_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
EXTENDED_RESOURCE = re.compile(rf"^(?P<prefix>{_DNS_SUBDOMAIN})/(?P<name>{_QUALIFIED_NAME})$")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One thing the open-source backend requires, and the file that requires it."""

    name: str
    source: str
    why: str


PACKAGE_FORMAT = Rule(
    "package-format", "sdk/python/kfp/client/client.py (_extract_pipeline_yaml)",
    "kfp.Client uploads only .yaml/.yml/.zip/.tar.gz/.tgz packages holding a PipelineSpec",
)
NO_RESOLVER = Rule(
    "no-resolver-executor", "backend/src/v2/compiler/argocompiler/dag.go",
    "the Argo compiler fails with 'resolver executors not implemented'",
)
NO_CUSTOM_JOB = Rule(
    "no-custom-job-executor", "backend/src/v2/compiler/argocompiler/dag.go",
    "the Argo compiler fails with 'custom job executors is Google Cloud only'",
)
CONSTANT_VALUES = Rule(
    "constant-runtime-values", "backend/src/v2/driver/resolve.go",
    "the driver resolves a runtimeValue only from 'constant' (compile with use_pipeline_spec_2_1=True)",
)
IMPORTER_CONDITION = Rule(
    "importer-without-condition", "backend/src/v2/compiler/argocompiler/dag.go",
    "'triggerPolicy.condition on importer task is not supported'",
)
ACCELERATOR_NAME = Rule(
    "accelerator-resource-name", "backend/src/v2/driver/driver.go",
    "the driver sets res.Limits[ResourceName(accelerator.type)]: the type must be a Kubernetes extended "
    "resource name such as 'nvidia.com/gpu' (choose the GPU model with a node selector)",
)
IMAGE_SET = Rule(
    "image-set", "backend/src/v2/compiler/argocompiler/container.go",
    "every container executor runs in its image; an empty image cannot be scheduled",
)
NO_PRE_CACHE_CHECK = Rule(
    "no-pre-cache-check-hook", "backend/src/v2/driver/driver.go",
    "nothing in backend/src/v2 runs a container's lifecycle.preCacheCheck (TFX's ExampleGen driver): "
    "its span resolution and input fingerprint would silently not happen",
)
COMPONENT_REFS = Rule(
    "component-refs", "backend/src/v2/compiler/argocompiler/dag.go",
    "'component spec for ... not found' / 'executor with label ... not found'",
)
PIPELINE_ROOT_SET = Rule(
    "pipeline-root-set", "backend/src/v2/driver/driver.go (RootDAG; driver/root_dag.go on master), "
    "backend/src/v2/config/env.go (DefaultPipelineRoot)",
    "a run without a root in its runtime config writes to the namespace's kfp-launcher default or to "
    f"{DEFAULT_BACKEND_ROOT}; compile with --pipeline-root s3://BUCKET/... or gs://BUCKET/... (written as "
    "defaultPipelineRoot, which `schedule` passes as the run's pipeline_root: neither kfp.Client nor the API "
    "server reads it from the package)",
)
PIPELINE_ROOT_SCHEME = Rule(
    "pipeline-root-scheme", "backend/src/v2/component/launcher_v2.go (LocalPathForURI, prepareOutputFolders)",
    "the launcher fails on an output URI that is not gs://, minio://, s3:// or oci://, and TFX writes through "
    "TensorFlow, which has no minio:// filesystem: use s3://BUCKET/... (S3_ENDPOINT=http://minio-service.kubeflow:9000 "
    "for Kubeflow's MinIO, the s3 extra in the image) or gs://BUCKET/...",
)
KFP_ENTRYPOINT = Rule(
    "kfp-entrypoint", "backend/src/v2/metadata/client.go (GetOutputArtifactsByExecutionId: Schema \"\"), "
    "backend/src/v2/driver/driver.go (provisionOutputs: executor-logs)",
    "input artifacts arrive with instanceSchema \"\" (tensorflow/tfx#7768) and an executor-logs output typed "
    "system.Artifact is added: TFX's own entrypoint fails on both; every TFX task must run "
    "`python -m pipeline.kubeflow.kfp_entrypoint --kfp_task NAME` (compile with `mmoe-pipeline compile --target kfp`)",
)
RULES = (PACKAGE_FORMAT, NO_RESOLVER, NO_CUSTOM_JOB, CONSTANT_VALUES, IMPORTER_CONDITION, ACCELERATOR_NAME,
         IMAGE_SET, NO_PRE_CACHE_CHECK, COMPONENT_REFS, PIPELINE_ROOT_SET, PIPELINE_ROOT_SCHEME, KFP_ENTRYPOINT)
# What the backend itself does not refuse at submission: a run of such a package starts and then
# fails (or misbehaves) in its tasks, as `spec_runner` shows.
RUNTIME_RULES = (NO_PRE_CACHE_CHECK, PIPELINE_ROOT_SET, PIPELINE_ROOT_SCHEME, KFP_ENTRYPOINT)


@dataclasses.dataclass(frozen=True)
class Violation:
    task: str
    rule: Rule
    detail: str

    def __str__(self) -> str:
        return f"{self.task}: [{self.rule.name}] {self.detail} ({self.rule.why}; {self.rule.source})"


class SpecConformanceError(ValueError):
    """A compiled spec breaks rules of the open-source Kubeflow Pipelines backend."""

    def __init__(self, path: str, violations: List[Violation]):
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(
            f"{path} would be refused or misbehave on open-source Kubeflow Pipelines "
            f"({len(violations)} problem(s)):\n{lines}"
        )


def load_package(path: str) -> Tuple[pipeline_spec_pb2.PipelineSpec, List[Violation]]:
    """The PipelineSpec in `path`, read as kfp.Client reads it; a `.json` PipelineJob (the Vertex
    format) is read too, so that it can be checked, with a package-format violation."""
    if path.endswith(".json"):
        with open(path) as f:
            raw = json.load(f)
        spec = json_format.ParseDict(raw.get("pipelineSpec", raw), pipeline_spec_pb2.PipelineSpec(),
                                     ignore_unknown_fields=True)
        return spec, [Violation("<package>", PACKAGE_FORMAT,
                                f"{path} is a JSON PipelineJob; compile with --target kfp for a .yaml")]
    if not path.endswith(PACKAGE_SUFFIXES):
        raise ValueError(f"{path}: expected one of {list(PACKAGE_SUFFIXES)} (what kfp.Client uploads) or .json.")
    return kfp_client._extract_pipeline_yaml(path).pipeline_spec, []


def _tasks(spec: pipeline_spec_pb2.PipelineSpec) -> Iterator[Tuple[str, pipeline_spec_pb2.PipelineTaskSpec]]:
    yield from spec.root.dag.tasks.items()
    for name, component in spec.components.items():
        if component.HasField("dag"):
            for task_name, task in component.dag.tasks.items():
                yield f"{name}/{task_name}", task


def deployment_config(spec: pipeline_spec_pb2.PipelineSpec) -> pipeline_spec_pb2.PipelineDeploymentConfig:
    """The spec's deploymentSpec (a Struct in the PipelineSpec) as its typed proto."""
    return json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                 pipeline_spec_pb2.PipelineDeploymentConfig())


def root_violations(root: str) -> List[Violation]:
    """The pipeline root's violations: none set, or one that TFX cannot write on a cluster."""
    if not root:
        return [Violation("<package>", PIPELINE_ROOT_SET, "the package has no defaultPipelineRoot")]
    if not root.startswith(WRITABLE_ROOT_SCHEMES):
        return [Violation("<package>", PIPELINE_ROOT_SCHEME, f"defaultPipelineRoot {root!r}")]
    return []


def check(spec: pipeline_spec_pb2.PipelineSpec) -> List[Violation]:
    """Every rule of `RULES` that `spec` breaks, task by task."""
    violations: List[Violation] = root_violations(spec.default_pipeline_root)
    deployment = deployment_config(spec)
    for task_name, task in _tasks(spec):
        not_constant = sorted(
            f"{key} ({parameter.runtime_value.WhichOneof('value')})"
            for key, parameter in task.inputs.parameters.items()
            if parameter.HasField("runtime_value") and parameter.runtime_value.WhichOneof("value") != "constant"
        )
        if not_constant:
            violations.append(Violation(task_name, CONSTANT_VALUES, f"parameters {', '.join(not_constant)}"))
        component = spec.components.get(task.component_ref.name)
        if component is None:
            violations.append(Violation(task_name, COMPONENT_REFS, f"no component {task.component_ref.name!r}"))
            continue
        if component.HasField("dag"):
            continue
        executor = deployment.executors.get(component.executor_label)
        if executor is None:
            violations.append(Violation(task_name, COMPONENT_REFS, f"no executor {component.executor_label!r}"))
            continue
        kind = executor.WhichOneof("spec")
        if kind == "resolver":
            violations.append(Violation(task_name, NO_RESOLVER, "its executor is a resolver"))
        elif kind == "custom_job":
            violations.append(Violation(task_name, NO_CUSTOM_JOB, "its executor is a Vertex AI custom job"))
        elif kind == "importer" and task.trigger_policy.condition:
            violations.append(Violation(task_name, IMPORTER_CONDITION,
                                        f"condition {task.trigger_policy.condition!r}"))
        elif kind == "container":
            container = executor.container
            if not container.image.strip():
                violations.append(Violation(task_name, IMAGE_SET, "its container image is empty"))
            accelerator = container.resources.accelerator
            if accelerator.type or accelerator.count:
                match = EXTENDED_RESOURCE.match(accelerator.type)
                if not match or match.group("prefix").endswith("kubernetes.io"):
                    violations.append(Violation(
                        task_name, ACCELERATOR_NAME, f"accelerator type {accelerator.type!r} is not one"))
            command = list(container.command)
            if kfp_entrypoint.TFX_ENTRYPOINT in command:
                violations.append(Violation(task_name, KFP_ENTRYPOINT, f"its command is {' '.join(command)}"))
            if container.HasField("lifecycle") and container.lifecycle.HasField("pre_cache_check"):
                hook = " ".join(container.lifecycle.pre_cache_check.command)
                violations.append(Violation(task_name, NO_PRE_CACHE_CHECK, f"it has a preCacheCheck hook ({hook})"))
    return violations


def check_package(path: str) -> List[Violation]:
    """Loads `path` as kfp.Client would and returns every violation."""
    spec, violations = load_package(path)
    return violations + check(spec)
