"""The TFJob Trainer executor with the real `kubernetes` client against a Kubernetes API on 127.0.0.1."""

import json
import logging

import pytest
from tfx.types import artifact_utils, standard_artifacts

from components import tfjob_trainer
from components.names import RUN_FN
from tests.components.kubernetes_api_server import KubernetesApiServer

JOB = {"image": "registry.example/mmoe:2.0", "replicas": 3, "gpus": 2, "cpu": 4, "memory_gib": 16,
       "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}, "namespace": "ml",
       "poll_interval_s": 0.01}


def _artifact(cls, uri, **props):
    artifact = cls()
    artifact.uri = uri
    for k, v in props.items():
        setattr(artifact, k, v)
    return artifact


def _trainer_args(job=JOB):
    inputs = {
        "examples": [_artifact(standard_artifacts.Examples, "gs://b/root/Transform/transformed_examples/5",
                               split_names=artifact_utils.encode_split_names(["train", "eval"]))],
        "transform_graph": [_artifact(standard_artifacts.TransformGraph, "gs://b/root/Transform/transform_graph/5")],
        "schema": [_artifact(standard_artifacts.Schema, "gs://b/root/SpecSchema/schema/2")],
    }
    outputs = {"model": [_artifact(standard_artifacts.Model, "gs://b/root/Trainer/model/6")],
               "model_run": [_artifact(standard_artifacts.ModelRun, "gs://b/root/Trainer/model_run/6")]}
    custom_config = {"trainer": {}, tfjob_trainer.TFJOB_CONFIG_KEY: job}
    exec_properties = {"run_fn": RUN_FN, "custom_config": json.dumps(custom_config)}
    return inputs, outputs, exec_properties


@pytest.fixture
def kube(monkeypatch, tmp_path):
    servers = []

    def start(states, pod_logs=None):
        server = KubernetesApiServer(states, pod_logs)
        servers.append(server)
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a cluster: use the kubeconfig
        monkeypatch.setenv("KUBECONFIG", server.kubeconfig(tmp_path / "kubeconfig"))
        return server

    yield start
    for server in servers:
        server.close()


def test_tfjob_has_a_chief_and_workers_running_the_same_executor_command(kube, caplog):
    server = kube([("Created", "created"), ("Running", "running"), ("Running", "running"),
                   ("Succeeded", "TFJob ml/x successfully completed.")])
    inputs, outputs, exec_properties = _trainer_args()
    with caplog.at_level(logging.INFO):
        tfjob_trainer.Executor().Do(inputs, outputs, exec_properties)
    create = server.requests[0]
    assert (create["method"], create["path"]) == ("POST", "/apis/kubeflow.org/v1/namespaces/ml/tfjobs")
    manifest = create["body"]
    assert manifest["apiVersion"] == "kubeflow.org/v1" and manifest["kind"] == "TFJob"
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Chief": 1, "Worker": 2}
    containers = [r["template"]["spec"]["containers"][0] for r in replicas.values()]
    for replica, container in zip(replicas.values(), containers):
        assert container["name"] == "tensorflow" and container["image"] == JOB["image"]
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 2, "cpu": "4", "memory": "16384Mi"}
        assert replica["template"]["spec"]["nodeSelector"] == JOB["node_selector"]
        # GPU nodes are tainted nvidia.com/gpu:NoSchedule on GKE and with NVIDIA's GPU operator.
        assert replica["template"]["spec"]["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert container["command"] == ["python", "-m", "tfx.scripts.run_executor"]
    assert containers[0]["args"] == containers[1]["args"]
    args = containers[0]["args"]
    assert args[args.index("--executor_class_path") + 1] == "tfx.components.trainer.executor.GenericExecutor"
    sent_inputs = artifact_utils.parse_artifact_dict(args[args.index("--inputs") + 1])
    assert sent_inputs["examples"][0].uri == "gs://b/root/Transform/transformed_examples/5"
    sent_outputs = artifact_utils.parse_artifact_dict(args[args.index("--outputs") + 1])
    assert sent_outputs["model"][0].uri == "gs://b/root/Trainer/model/6"
    assert json.loads(args[args.index("--exec-properties") + 1]) == exec_properties
    # Polled until Succeeded, each new state logged once.
    reads = [r for r in server.requests if r["method"] == "GET"]
    assert len(reads) == 4
    states = [r.getMessage().split(": ", 1)[1].split(" (")[0] for r in caplog.records
              if r.getMessage().startswith("TFJob mmoe-trainer-")]
    assert states == ["Created created", "Running running", "Succeeded TFJob ml/x successfully completed."]


def test_a_failed_tfjob_fails_the_component_with_its_message_and_pod_logs_and_is_deleted(kube):
    server = kube([("Running", ""), ("Failed", "TFJob ml/x has failed because 1 Worker replica(s) failed.")],
                  pod_logs={"x-worker-1": "Traceback...\nValueError: bad feature"})
    inputs, outputs, exec_properties = _trainer_args()
    with pytest.raises(tfjob_trainer.TFJobFailed,
                       match=r"(?s)failed: TFJob ml/x has failed because 1 Worker replica\(s\) failed\..*"
                             r"pod x-worker-1.*ValueError: bad feature"):
        tfjob_trainer.Executor().Do(inputs, outputs, exec_properties)
    (delete,) = [r for r in server.requests if r["method"] == "DELETE"]
    assert delete["path"].startswith("/apis/kubeflow.org/v1/namespaces/ml/tfjobs/mmoe-trainer-")
    assert delete["body"]["propagationPolicy"] == "Background"
    assert server.jobs == {}


def test_a_pending_tfjob_times_out_and_is_deleted(kube):
    server = kube([("Created", "TFJob ml/x is created.")])  # never scheduled: no GPU node
    inputs, outputs, exec_properties = _trainer_args(dict(JOB, timeout_s=0.05))
    with pytest.raises(TimeoutError, match=r"did not finish within 0 s \(last state: Created: a Pending job waits "
                                           r"for GPUs or nodes the cluster lacks\); it is deleted\. Raise "
                                           r"--tfjob-timeout-s"):
        tfjob_trainer.Executor().Do(inputs, outputs, exec_properties)
    assert [r["method"] for r in server.requests if "tfjobs" in r["path"]][-1] == "DELETE"
    assert server.jobs == {}
    assert server.requests[0]["body"]["spec"]["runPolicy"]["activeDeadlineSeconds"] == 1  # whole seconds, >= 1


def test_the_tfjob_has_a_deadline_and_is_owned_by_the_trainer_pod(kube, monkeypatch):
    server = kube([("Succeeded", "")])
    monkeypatch.setenv("KFP_POD_NAME", "mmoe-pipeline-abc-trainer-123")
    monkeypatch.setenv("KFP_POD_UID", "6f1c2a3b-0000-4000-8000-000000000001")
    inputs, outputs, exec_properties = _trainer_args(dict(JOB, timeout_s=7200))
    tfjob_trainer.Executor().Do(inputs, outputs, exec_properties)
    manifest = server.requests[0]["body"]
    assert manifest["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 0,
                                             "activeDeadlineSeconds": 7200}
    assert manifest["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Pod", "name": "mmoe-pipeline-abc-trainer-123",
        "uid": "6f1c2a3b-0000-4000-8000-000000000001", "blockOwnerDeletion": False}]
    assert not [r for r in server.requests if r["method"] == "DELETE"]  # a succeeded job stays for its logs
    assert tfjob_trainer.TFJobSpec(image="i").timeout_s == 24 * 3600


def test_tfjob_settings_errors_name_the_field():
    with pytest.raises(ValueError, match=r"TFJobSpec.replicas: received 0, expected an integer >= 1"):
        tfjob_trainer.TFJobSpec(image="i", replicas=0)
    with pytest.raises(ValueError, match=r"custom_config\['tfjob'\]: unknown keys \['gpu'\]"):
        tfjob_trainer.TFJobSpec.from_dict({"image": "i", "gpu": 1})
    inputs, outputs, exec_properties = _trainer_args()
    with pytest.raises(ValueError, match=r"custom_config has no 'tfjob' entry \(keys: \['trainer'\]\)"):
        tfjob_trainer.Executor().Do(inputs, outputs, {**exec_properties, "custom_config": '{"trainer": {}}'})
