"""Compiling for open-source Kubeflow Pipelines and Vertex AI, the conformance check, and
scheduling through the real kfp.Client against a KFP API on 127.0.0.1."""

import json
import socket

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import cli
from pipeline.graph.config import ResourceRequest, Target, TrainerWorkers
from pipeline.kubeflow import kubeflow_v2_runner as kfp_runner
from pipeline.kubeflow import schedule as kfp_schedule
from pipeline.kubeflow import spec_check, targets
from tests.pipeline.kfp_api_server import KfpApiServer

KFP_TASKS = ["CsvExampleGen", "StatisticsGen", "SpecSchema", "ExampleValidator", "SpanDrift", "Transform", "Trainer",
             "ServingBaseline", "Evaluator", "ServingCheck", "Pusher"]
IMAGE = "registry.example/mmoe:1.0"
SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}


def _config(census_spec, target, **overrides):
    return kfp_runner.kubeflow_config(
        "gs://bucket/root", "gs://bucket/data", census_spec, kfp_runner.image_schema_path("census", "schema.pbtxt"),
        "gs://bucket/serving", target=target, **overrides,
    )


@pytest.fixture(scope="module")
def packages(census_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    kfp = kfp_runner.compile_pipeline(_config(census_spec, Target.KFP), IMAGE, str(out / "p.yaml"),
                                      Target.KFP, gpu_node_selector=SELECTOR)
    vertex = kfp_runner.compile_pipeline(_config(census_spec, Target.VERTEX), IMAGE, str(out / "p.json"),
                                         Target.VERTEX)
    return {"kfp": kfp, "vertex": vertex, "dir": out}


def _docs(path):
    with open(path) as f:
        return list(yaml.safe_load_all(f))


def test_kfp_package_conforms_and_requests_a_kubernetes_gpu(packages):
    assert spec_check.check_package(packages["kfp"]) == []
    spec, platform = _docs(packages["kfp"])
    assert spec["schemaVersion"] == "2.1.0"
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(KFP_TASKS)
    executors = spec["deploymentSpec"]["executors"]
    trainer = executors["Trainer_executor"]["container"]
    assert trainer["image"] == IMAGE
    assert trainer["resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": "1"}
    # 16 GiB in the backend's "<memoryLimit>G" units: 17179869184 bytes, what the TFJob's 16384Mi asks for.
    assert trainer["resources"]["cpuLimit"] == 4.0
    assert trainer["resources"]["memoryLimit"] * 10 ** 9 == pytest.approx(16 * 1024 ** 3, abs=1)
    assert platform == {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        "Trainer_executor": {"nodeSelector": {"labels": SELECTOR}, "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}}}}}
    # The root the runs write to, and every task through our entrypoint (tfx#7768, executor-logs).
    assert spec["defaultPipelineRoot"] == "gs://bucket/root"
    for label, executor in executors.items():
        task = label[:-len("_executor")]
        assert executor["container"]["command"] == ["python", "-m", "pipeline.kubeflow.kfp_entrypoint", "--kfp_task", task]
        assert "--json_serialized_inputs_spec_args" in executor["container"]["args"]
    # Every parameter is a constant (the backend driver resolves nothing else).
    kinds = {kind for t in tasks.values() for p in t["inputs"].get("parameters", {}).values()
             for kind in p["runtimeValue"]}
    assert kinds == {"constant"}
    # The ExampleGen driver hook is gone, and what reads the outside world is never cached.
    assert "lifecycle" not in executors["CsvExampleGen_executor"]["container"]
    assert not tasks["CsvExampleGen"]["cachingOptions"].get("enableCache", False)
    assert not tasks["ServingBaseline"]["cachingOptions"].get("enableCache", False)
    assert not tasks["SpanDrift"]["cachingOptions"].get("enableCache", False)
    assert tasks["Trainer"]["cachingOptions"]["enableCache"] is True
    # The Evaluator's baseline is ServingBaseline's output, read from the serving directory.
    baseline = tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert baseline == {"producerTask": "ServingBaseline", "outputArtifactKey": "baseline"}
    assert tasks["ServingBaseline"]["inputs"]["parameters"]["serving_model_dir"]["runtimeValue"] == {
        "constant": "gs://bucket/serving"}


def test_check_spec_command_accepts_the_kfp_package(packages):
    result = CliRunner().invoke(cli.main, ["check-spec", packages["kfp"]])
    assert result.exit_code == 0, result.output
    assert f"{len(KFP_TASKS)} tasks conform" in result.output


def test_vertex_job_has_the_serving_baseline_uncached_and_fails_the_kfp_check(packages):
    with open(packages["vertex"]) as f:
        job = json.load(f)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert not [t for t in tasks if "resolver" in t]  # one baseline on every target: the served model
    assert tasks["ServingBaseline"]["cachingOptions"]["enableCache"] is False
    assert tasks["SpanDrift"]["cachingOptions"]["enableCache"] is False
    assert tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"] == {
        "producerTask": "ServingBaseline", "outputArtifactKey": "baseline"}
    trainer = job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert trainer["resources"]["accelerator"] == {"type": "NVIDIA_TESLA_T4", "count": "1"}
    broken = {(v.task, v.rule.name) for v in spec_check.check_package(packages["vertex"])}
    assert ("<package>", "package-format") in broken
    assert ("Trainer", "accelerator-resource-name") in broken
    assert ("CsvExampleGen", "no-pre-cache-check-hook") in broken
    result = CliRunner().invoke(cli.main, ["check-spec", packages["vertex"]])
    assert result.exit_code == 1
    assert "Trainer: [accelerator-resource-name] accelerator type 'NVIDIA_TESLA_T4' is not one" in result.output
    assert "backend/src/v2/driver/driver.go" in result.output


def test_t4_as_a_kfp_resource_type_is_refused_and_nothing_written(census_spec, tmp_path):
    config = _config(census_spec, Target.KFP, trainer_resources=ResourceRequest(4, 16, "NVIDIA_TESLA_T4", 1))
    path = tmp_path / "bad.yaml"
    with pytest.raises(spec_check.SpecConformanceError,
                       match=r"Trainer: \[accelerator-resource-name\] accelerator type 'NVIDIA_TESLA_T4' is not one"):
        kfp_runner.compile_pipeline(config, IMAGE, str(path))
    assert not path.exists()


def test_compile_names_the_right_suffix(census_spec, tmp_path):
    with pytest.raises(ValueError, match=r"--target kfp writes a \.yaml or \.yml file"):
        kfp_runner.compile_pipeline(_config(census_spec, Target.KFP), IMAGE, str(tmp_path / "p.json"))
    with pytest.raises(ValueError, match=r"--target vertex writes a \.json file"):
        kfp_runner.compile_pipeline(_config(census_spec, Target.VERTEX), IMAGE, str(tmp_path / "p.yaml"), Target.VERTEX)


def test_every_target_has_its_rules_and_its_writer():
    """A new Target member without its profile or its writer fails here, not in a user's compile."""
    assert set(targets.PROFILES) == set(Target) == set(kfp_runner.WRITERS)
    assert all(p.target is t for t, p in targets.PROFILES.items())
    with pytest.raises(ValueError, match=r"target: received 'argo'; expected one of \['kfp', 'vertex'\]"):
        targets.profile("argo")


def test_compile_help_and_defaults_come_from_the_target_profiles(census_spec):
    help_text = " ".join(CliRunner().invoke(cli.main, ["compile", "--help"]).output.split())
    assert "nvidia.com/gpu (the Kubernetes resource) for kfp" in help_text
    assert "NVIDIA_TESLA_T4 (Vertex AI's accelerator name) for vertex" in help_text
    assert "mmoe_pipeline.yaml for kfp, mmoe_pipeline.json for vertex" in help_text
    for target, accelerator in ((Target.KFP, "nvidia.com/gpu"), (Target.VERTEX, "NVIDIA_TESLA_T4")):
        assert _config(census_spec, target).trainer_resources.accelerator_type == accelerator


def test_a_node_selector_on_vertex_is_refused(census_spec, tmp_path):
    with pytest.raises(ValueError, match=r"node selector does not apply to --target vertex; only to --target kfp"):
        kfp_runner.compile_pipeline(_config(census_spec, Target.VERTEX), IMAGE, str(tmp_path / "p.json"),
                                    Target.VERTEX, gpu_node_selector=SELECTOR)
    assert not (tmp_path / "p.json").exists()


def _spec(tasks: dict, executors: dict, root: str = "s3://b/r") -> pipeline_spec_pb2.PipelineSpec:
    components = {name: {"executorLabel": f"{name}_executor"} for name in tasks}
    return json_format.ParseDict({
        "pipelineInfo": {"name": "p"}, "defaultPipelineRoot": root,
        "components": components,
        "deploymentSpec": {"executors": {f"{k}_executor": v for k, v in executors.items()}},
        "root": {"dag": {"tasks": {name: {"componentRef": {"name": name}, "taskInfo": {"name": name}, **body}
                                   for name, body in tasks.items()}}},
    }, pipeline_spec_pb2.PipelineSpec())


@pytest.mark.parametrize("task, executor, rule, detail", [
    ({"inputs": {"parameters": {"x": {"runtimeValue": {"constantValue": {"stringValue": "a"}}}}}},
     {"container": {"image": "i"}}, "constant-runtime-values", "parameters x (constant_value)"),
    ({"triggerPolicy": {"condition": "inputs.parameter_values['x'] == 'a'"}},
     {"importer": {"artifactUri": {"constant": "gs://b/a"}, "typeSchema": {"schemaTitle": "system.Artifact"}}},
     "importer-without-condition", "condition"),
    ({}, {"container": {"image": " "}}, "image-set", "its container image is empty"),
    ({}, {"container": {"image": "i", "resources": {"accelerator": {"type": "kubernetes.io/gpu", "count": "1"}}}},
     "accelerator-resource-name", "'kubernetes.io/gpu'"),
    ({}, {"container": {"image": "i", "lifecycle": {"preCacheCheck": {"command": ["python", "-m", "d"]}}}},
     "no-pre-cache-check-hook", "python -m d"),
    ({}, {"customJob": {"customJob": {}}}, "no-custom-job-executor", "Vertex AI custom job"),
    ({}, {"resolver": {"outputArtifactQueries": {}}}, "no-resolver-executor", "its executor is a resolver"),
    ({}, {"container": {"image": "i", "command": [
        "python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]}},
     "kfp-entrypoint", "tensorflow/tfx#7768"),
])
def test_each_rule_names_the_task_and_the_backend_file(task, executor, rule, detail):
    (violation,) = spec_check.check(_spec({"T": task}, {"T": executor}))
    assert (violation.task, violation.rule.name) == ("T", rule)
    assert detail in str(violation) and violation.rule.source.startswith("backend/src/v2/")


@pytest.mark.parametrize("root, rule, detail", [
    ("", "pipeline-root-set", "the package has no defaultPipelineRoot"),
    ("minio://mlpipeline/v2/artifacts", "pipeline-root-scheme", "'minio://mlpipeline/v2/artifacts'"),
    ("/mnt/shared/root", "pipeline-root-scheme", "'/mnt/shared/root'"),
])
def test_a_package_without_a_root_tfx_can_write_is_refused(root, rule, detail):
    (violation,) = spec_check.check(_spec({"T": {}}, {"T": {"container": {"image": "i"}}}, root=root))
    assert (violation.task, violation.rule.name) == ("<package>", rule)
    assert detail in str(violation)
    assert "s3://" in str(violation)  # the fix is named


def test_check_spec_command_names_the_rule_of_a_minio_root(census_spec, tmp_path):
    path = kfp_runner.compile_pipeline(_config(census_spec, Target.KFP), IMAGE, str(tmp_path / "p.yaml"))
    with open(path) as f:
        docs = list(yaml.safe_load_all(f))
    docs[0]["defaultPipelineRoot"] = "minio://mlpipeline/v2/artifacts"
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f)
    result = CliRunner().invoke(cli.main, ["check-spec", path])
    assert result.exit_code == 1
    assert ("<package>: [pipeline-root-scheme] defaultPipelineRoot 'minio://mlpipeline/v2/artifacts'"
            in result.output)
    assert "backend/src/v2/component/launcher_v2.go" in result.output


def test_compile_refuses_a_local_root(census_spec, tmp_path):
    config = kfp_runner.kubeflow_config(
        str(tmp_path / "root"), "gs://bucket/data", census_spec,
        kfp_runner.image_schema_path("census", "schema.pbtxt"), "gs://bucket/serving")
    with pytest.raises(spec_check.SpecConformanceError, match=r"\[pipeline-root-scheme\] defaultPipelineRoot"):
        kfp_runner.compile_pipeline(config, IMAGE, str(tmp_path / "p.yaml"))
    assert not (tmp_path / "p.yaml").exists()


def test_extended_resource_names():
    ok = ["nvidia.com/gpu", "amd.com/gpu", "example.com/foo_bar-1"]
    bad = ["NVIDIA_TESLA_T4", "gpu", "nvidia.com/", "/gpu", "Nvidia.com/gpu"]
    assert [bool(spec_check.EXTENDED_RESOURCE.match(n)) for n in ok + bad] == [True] * 3 + [False] * 5


@pytest.fixture
def api():
    server = KfpApiServer()
    yield server
    server.close()


def test_schedule_uploads_the_package_and_creates_the_recurring_run(packages, api, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json of the user's
    client = kfp_schedule.connect(api.host)
    scheduled = kfp_schedule.schedule(client, api.host, packages["kfp"], "0 30 2 * * *", "mmoe", "nightly")
    (version,) = api.versions
    uploaded = list(yaml.safe_load_all(version["package"]))
    assert uploaded == _docs(packages["kfp"])  # the PipelineSpec and platform doc, byte for byte in content
    (run,) = api.recurring_runs
    assert run["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * *"}}
    assert int(run["max_concurrency"]) == 1 and run["no_catchup"] is True
    assert run["mode"] == "ENABLE" and run["display_name"] == "nightly"
    assert run["experiment_id"] == scheduled.experiment_id == "experiment-1"
    assert run["pipeline_version_reference"] == {"pipeline_id": "pipeline-1", "pipeline_version_id": "version-1"}
    assert "pipeline_spec" not in run  # the run refers to the uploaded version
    # The backend reads the root from the run's runtime config only, never from the package.
    assert run["runtime_config"]["pipeline_root"] == "gs://bucket/root"
    assert api.experiments[0]["display_name"] == "mmoe"
    # A second schedule adds a version to the same pipeline and reuses the experiment.
    again = kfp_schedule.schedule(client, api.host, packages["kfp"], "0 0 4 * * *", "mmoe", "nightly-2")
    assert (again.pipeline_id, again.version_id, again.experiment_id) == ("pipeline-1", "version-2", "experiment-1")
    assert len(api.pipelines) == 1 and len(api.experiments) == 1
    assert again.replaced == () and len(api.recurring_runs) == 2


def test_scheduling_the_same_job_again_replaces_its_recurring_run(packages, api, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    client = kfp_schedule.connect(api.host)
    first = kfp_schedule.schedule(client, api.host, packages["kfp"], "0 30 2 * * *", "mmoe", "nightly")
    second = kfp_schedule.schedule(client, api.host, packages["kfp"], "0 0 4 * * *", "mmoe", "nightly")
    assert second.replaced == (first.recurring_run_id,)
    (run,) = api.recurring_runs  # one nightly run, the new one
    assert run["recurring_run_id"] == second.recurring_run_id != first.recurring_run_id
    assert run["trigger"] == {"cron_schedule": {"cron": "0 0 4 * * *"}}
    deletes = [r["path"] for r in api.requests if r["method"] == "DELETE"]
    assert deletes == [f"/apis/v2beta1/recurringruns/{first.recurring_run_id}"]
    created = [i for i, r in enumerate(api.requests) if r["method"] == "POST" and r["path"].endswith("/recurringruns")]
    assert created[-1] < api.requests.index(next(r for r in api.requests if r["method"] == "DELETE"))


def test_mirrored_distribution_with_several_workers_is_refused(census_spec):
    from trainer.config import TrainerConfig

    with pytest.raises(ValueError, match=r"distribution: received 'mirrored' with 2 Trainer replicas \(--workers\); "
                                         r"replicas train one model only under 'multi_worker'"):
        kfp_runner.kubeflow_config(
            "gs://bucket/root", "gs://bucket/data", census_spec, "/s.pbtxt", "gs://bucket/serving",
            trainer=TrainerConfig(distribution="mirrored"), trainer_workers=TrainerWorkers(replicas=2))


def test_compile_refuses_a_curated_schema_beside_the_spec_that_the_image_lacks(tmp_path, census_spec):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(census_spec.to_dict()))
    (tmp_path / "schema.pbtxt").write_text("")
    result = CliRunner().invoke(cli.main, [
        "compile", "--pipeline-root", "gs://b/root", "--data-root", "gs://b/data", "--serving-model-dir",
        "gs://b/serving", "--image", IMAGE, "--spec", str(spec_path), "--output", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2, result.output
    assert f"has a curated schema beside it ({tmp_path / 'schema.pbtxt'}), which `run` uses" in result.output
    assert not (tmp_path / "p.yaml").exists()


def test_schedule_reports_http_errors(packages, api, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    client = kfp_schedule.connect(api.host)
    api.fail[("POST", "/apis/v2beta1/pipelines/upload")] = (500, "minio is down")
    with pytest.raises(kfp_schedule.SchedulingError,
                       match=r"answered 500 .* to upload the pipeline: .*minio is down"):
        kfp_schedule.schedule(client, api.host, packages["kfp"], "0 0 3 * * *", "mmoe", "nightly")
    api.fail.clear()
    api.fail[("GET", "/apis/v2beta1/experiments")] = (403, "forbidden")
    with pytest.raises(kfp_schedule.SchedulingError, match=r"answered 403 .*forbidden.*check --namespace"):
        kfp_schedule.schedule(client, api.host, packages["kfp"], "0 0 3 * * *", "mmoe", "nightly")
    assert api.recurring_runs == []


TOKEN = "eyJhbGciOiJSUzI1NiJ9.sa-token-of-the-test"


def test_schedule_sends_the_token_file_and_creates_everything_in_the_namespace(packages, api, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(kfp_schedule.TOKEN_ENV, raising=False)
    api.token = TOKEN
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    client = kfp_schedule.connect(api.host, namespace="team-a", token_file=str(token_file))
    kfp_schedule.schedule(client, api.host, packages["kfp"], "0 30 2 * * *", "mmoe", "nightly", namespace="team-a")
    assert api.requests and all(r["authorization"] == f"Bearer {TOKEN}" for r in api.requests)
    assert api.experiments[0]["namespace"] == "team-a"
    uploads = [r for r in api.requests if r["path"].endswith("/pipelines/upload")]
    lookups = [r for r in api.requests if (r["method"], r["path"]) == ("GET", "/apis/v2beta1/pipelines")]
    assert uploads[0]["query"]["namespace"] == ["team-a"] and lookups[0]["query"]["namespace"] == ["team-a"]
    assert len(api.recurring_runs) == 1


def test_a_missing_or_wrong_token_ends_in_one_clear_line_without_the_token(packages, api, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    api.token = TOKEN
    monkeypatch.delenv(kfp_schedule.TOKEN_ENV, raising=False)
    with pytest.raises(kfp_schedule.SchedulingError, match=r"answered 401 .*pass --token-file, or set "
                                                           r"\$KF_PIPELINES_TOKEN"):
        kfp_schedule.schedule(kfp_schedule.connect(api.host), api.host, packages["kfp"], "0 0 3 * * *", "m", "n")
    wrong = "wrong-" + TOKEN
    monkeypatch.setenv(kfp_schedule.TOKEN_ENV, wrong)
    api.fail[("GET", "/apis/v2beta1/pipelines")] = (401, f"token {wrong} is not valid")  # a server echoing it
    with pytest.raises(kfp_schedule.SchedulingError) as error:
        kfp_schedule.schedule(kfp_schedule.connect(api.host), api.host, packages["kfp"], "0 0 3 * * *", "m", "n")
    assert wrong not in str(error.value) and "token <token> is not valid" in str(error.value)
    assert api.requests[-1]["authorization"] == f"Bearer {wrong}"  # $KF_PIPELINES_TOKEN was sent
    assert api.recurring_runs == []


def test_plain_http_to_another_host_is_refused_unless_insecure(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(kfp_schedule.SchedulingError, match=r"--host http://kubeflow\.example\.com is plain http:// "
                                                           r"to another machine.*pass --insecure"):
        kfp_schedule.connect("http://kubeflow.example.com", token_file=str(tmp_path / "unread"))
    with pytest.raises(kfp_schedule.SchedulingError, match=r"--token-file '.*unread' cannot be read"):
        kfp_schedule.connect("http://kubeflow.example.com", token_file=str(tmp_path / "unread"), insecure=True)
    with pytest.raises(kfp_schedule.SchedulingError, match=r"--host: received 'kubeflow:8080'; expected a URL"):
        kfp_schedule.connect("kubeflow:8080")


def test_schedule_reports_an_unreachable_host(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(kfp_schedule.SchedulingError,
                       match=rf"cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}"):
        kfp_schedule.connect(f"http://127.0.0.1:{port}")


def test_schedule_refuses_a_five_field_cron_and_a_json_package(packages, api):
    with pytest.raises(ValueError, match=r"cron: received '0 3 \* \* \*' \(5 fields\).*6 fields"):
        kfp_schedule.schedule(None, api.host, packages["kfp"], "0 3 * * *", "mmoe", "nightly")
    with pytest.raises(ValueError, match=r"package: received .*p\.json.*compile with --target kfp"):
        kfp_schedule.schedule(None, api.host, packages["vertex"], "0 0 3 * * *", "mmoe", "nightly")
    assert api.requests == []


def _compile_cli(tmp_path, *extra):
    suffix = ".json" if "vertex" in extra else ".yaml"
    output = str(tmp_path / f"workers{suffix}")
    result = CliRunner().invoke(cli.main, [
        "compile", "--pipeline-root", "gs://b/root", "--data-root", "gs://b/data", "--serving-model-dir",
        "gs://b/serving", "--image", IMAGE, "--output", output, "--workers", "2", "--gpus", "1", *extra])
    assert result.exit_code == 0, result.output
    return output


def _trainer_custom_config(tasks):
    return json.loads(tasks["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constant"])


def test_kfp_compile_with_two_workers_submits_a_tfjob_and_conforms(tmp_path):
    path = _compile_cli(tmp_path, "--gpu-node-selector", "cloud.google.com/gke-accelerator=nvidia-l4")
    assert spec_check.check_package(path) == []
    spec, *platform = _docs(path)
    trainer = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert trainer["args"][trainer["args"].index("--executor_class_path") + 1] == "components.tfjob_trainer.Executor"
    assert "accelerator" not in trainer.get("resources", {})  # the launcher pod only submits the TFJob
    assert platform == []  # the node selector goes to the TFJob replicas
    custom = _trainer_custom_config(spec["root"]["dag"]["tasks"])
    assert custom["trainer"]["distribution"] == "multi_worker"
    assert custom["tfjob"] == {
        "image": IMAGE, "replicas": 2, "gpus": 1, "gpu_resource": "nvidia.com/gpu", "cpu": 4, "memory_gib": 16,
        "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}, "namespace": "kubeflow",
        "poll_interval_s": 10.0, "timeout_s": 86400.0,
    }


def test_vertex_compile_with_two_workers_carries_the_worker_pools(tmp_path):
    path = _compile_cli(tmp_path, "--target", "vertex", "--vertex-project", "my-project")
    with open(path) as f:
        spec = json.load(f)["pipelineSpec"]
    trainer = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    executor = trainer["args"][trainer["args"].index("--executor_class_path") + 1]
    assert executor == "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
    custom = json.loads(spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"]
                        ["runtimeValue"]["constantValue"]["stringValue"])
    assert custom["ai_platform_enable_vertex"] is True and custom["ai_platform_vertex_region"] == "us-central1"
    machine = {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}
    assert custom["ai_platform_training_args"] == {"project": "my-project", "worker_pool_specs": [
        {"machine_spec": machine, "container_spec": {"image_uri": IMAGE}, "replica_count": 1},
        {"machine_spec": machine, "container_spec": {"image_uri": IMAGE}, "replica_count": 1},
    ]}
    assert custom["trainer"]["distribution"] == "multi_worker"


def test_vertex_workers_need_a_project(tmp_path):
    result = CliRunner().invoke(cli.main, [
        "compile", "--target", "vertex", "--pipeline-root", "gs://b/r", "--data-root", "gs://b/d",
        "--serving-model-dir", "gs://b/s", "--image", IMAGE, "--workers", "2", "--output", str(tmp_path / "p.json")])
    assert result.exit_code == 1
    assert "vertex_project: empty; Vertex AI worker pools" in result.output


def test_schedule_command_compiles_uploads_and_schedules(api, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    output = tmp_path / "scheduled.yaml"
    result = CliRunner().invoke(cli.main, [
        "schedule", "--host", api.host, "--cron", "0 15 1 * * *", "--job-name", "nightly", "--pipeline-root",
        "gs://b/r", "--data-root", "gs://b/d", "--serving-model-dir", "gs://b/s", "--image", IMAGE,
        "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "Scheduled nightly (0 15 1 * * *)" in result.output and "recurring run recurring-run-1" in result.output
    assert list(yaml.safe_load_all(api.versions[0]["package"])) == _docs(str(output))
    assert api.recurring_runs[0]["trigger"] == {"cron_schedule": {"cron": "0 15 1 * * *"}}


def test_schedule_command_reports_an_unreachable_host_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(cli.main, [
        "schedule", "--host", f"http://127.0.0.1:{port}", "--pipeline-root", "gs://b/r", "--data-root", "gs://b/d",
        "--serving-model-dir", "gs://b/s", "--image", IMAGE, "--output", str(tmp_path / "p.yaml")])
    assert result.exit_code == 1
    assert f"Error: cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_compile_for_minio_sets_the_endpoint_and_the_secret_in_every_task(census_spec, tmp_path):
    config = kfp_runner.kubeflow_config(
        "s3://mlpipeline/mmoe/root", "s3://mlpipeline/mmoe/data", census_spec,
        kfp_runner.image_schema_path("census", "schema.pbtxt"), "s3://mlpipeline/mmoe/serving")
    access = kfp_runner.S3Access(endpoint="http://minio-service.kubeflow:9000", secret="mlpipeline-minio-artifact")
    spec, platform = _docs(kfp_runner.compile_pipeline(config, IMAGE, str(tmp_path / "p.yaml"), s3=access))
    executors = spec["deploymentSpec"]["executors"]
    secret = [{"secretName": "mlpipeline-minio-artifact", "keyToEnv": [
        {"secretKey": "accesskey", "envVar": "AWS_ACCESS_KEY_ID"},
        {"secretKey": "secretkey", "envVar": "AWS_SECRET_ACCESS_KEY"}]}]
    by_executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(by_executor) == sorted(executors)
    for label, executor in executors.items():
        assert executor["container"]["env"] == [
            {"name": "S3_ENDPOINT", "value": "http://minio-service.kubeflow:9000"},
            {"name": "AWS_ENDPOINT_URL", "value": "http://minio-service.kubeflow:9000"}], label
        assert by_executor[label]["secretAsEnv"] == secret, label
    assert "tolerations" in by_executor["Trainer_executor"]
    with pytest.raises(ValueError, match=r"s3 endpoint: received 'minio-service:9000'; tensorflow-io needs the "
                                         r"scheme"):
        kfp_runner.S3Access(endpoint="minio-service:9000")


def test_compile_command_refuses_a_minio_data_root_naming_the_option_and_the_fix():
    result = CliRunner().invoke(cli.main, [
        "compile", "--pipeline-root", "s3://b/root", "--data-root", "minio://mlpipeline/data",
        "--serving-model-dir", "s3://b/serving", "--image", IMAGE])
    assert result.exit_code == 2
    assert "--data-root" in result.output and "no TensorFlow filesystem implements minio://" in result.output
    assert "s3://mlpipeline/data" in result.output


def test_the_image_installs_the_s3_extra_and_its_build_context_leaves_out_environments_and_outputs():
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "Dockerfile")) as f:
        dockerfile = f.read()
    assert "pip install --no-cache-dir --constraint constraints.txt '/pipeline[s3]'" in dockerfile
    with open(os.path.join(root, ".dockerignore")) as f:
        ignored = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    # `COPY .` would otherwise take the virtualenv, the history, the outputs and the test data.
    assert {".git", ".venv", "mmoe_output", "run-spec", "data"} <= ignored


DATAFLOW = "--runner=DataflowRunner --project=my-project --region=us-central1 --temp_location=gs://b/tmp"


def _container_args(path):
    spec, *_ = _docs(path)
    return {label: executor["container"]["args"] for label, executor in spec["deploymentSpec"]["executors"].items()}


def test_compile_carries_the_beam_args_to_every_beam_task_with_the_image_for_its_workers(tmp_path):
    output = str(tmp_path / "beam.yaml")
    result = CliRunner().invoke(cli.main, [
        "compile", "--pipeline-root", "gs://b/root", "--data-root", "gs://b/data", "--serving-model-dir",
        "gs://b/serving", "--image", IMAGE, "--output", output, "--beam-args", DATAFLOW,
        "--beam-args", "--max_num_workers=8"])
    assert result.exit_code == 0, result.output
    assert spec_check.check_package(output) == []
    expected = [*DATAFLOW.split(), "--max_num_workers=8", f"--sdk_container_image={IMAGE}"]
    args = _container_args(output)
    # TFX's compiler gives the pipeline's Beam arguments to every task (step_builder.py); TFX's entrypoint
    # hands them to the executor, and only a BaseBeamExecutor uses them.
    assert sorted(args) == sorted(f"{task}_executor" for task in KFP_TASKS)
    for label in args:
        assert args[label][-len(expected):] == expected, label


def test_a_portable_runner_gets_the_image_as_its_docker_environment_unless_told_otherwise(tmp_path):
    from pipeline.graph import beam_options

    flink = ("--runner=PortableRunner", "--job_endpoint=flink-jobserver:8099")
    assert beam_options.with_worker_image(flink, IMAGE) == (
        *flink, f"--sdk_container_image={IMAGE}", "--environment_type=DOCKER", f"--environment_config={IMAGE}")
    external = (*flink, "--environment_type=EXTERNAL", "--environment_config=localhost:50000")
    assert beam_options.with_worker_image(external, IMAGE) == (*external, f"--sdk_container_image={IMAGE}")
    own = ("--runner=DataflowRunner", "--sdk_container_image=other/image:2")
    assert beam_options.with_worker_image(own, IMAGE) == own
    assert beam_options.with_worker_image(("--direct_num_workers=2",), IMAGE) == ("--direct_num_workers=2",)


def test_compile_refuses_a_beam_arg_that_is_not_an_option():
    result = CliRunner().invoke(cli.main, [
        "compile", "--pipeline-root", "gs://b/root", "--data-root", "gs://b/data", "--serving-model-dir",
        "gs://b/serving", "--image", IMAGE, "--beam-args", "--runner=DataflowRunner us-central1"])
    assert result.exit_code == 2
    assert "--beam-args: received 'us-central1'; Beam options are --name=value" in result.output
