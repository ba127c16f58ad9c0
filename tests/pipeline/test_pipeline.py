import json

import pytest

import schemas
from components.preprocessing import SPEC_KEY
from components.spec import DatasetSpec
from pipeline import kubeflow_v2_runner as kfp_runner
from pipeline.config import PipelineConfig, ResourceRequest
from components.preprocessing import PREPROCESSING_FN
from pipeline.pipeline import BASELINE_RESOLVER, create_pipeline
from trainer.run import RUN_FN
from trainer.config import TrainerConfig

COMPONENT_IDS = [
    "CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
    "Transform", "Trainer", "LatestBlessedModelResolver", "Evaluator", "ServingCheck", "Pusher",
]


def _config(census_spec, **overrides):
    return PipelineConfig(
        pipeline_name="test-pipeline", pipeline_root="/tmp/root", data_root="/tmp/data",
        schema_path=schemas.path("census", "schema.pbtxt"), spec=census_spec,
        serving_model_dir="/tmp/serving", trainer=TrainerConfig(variant="omoe"), **overrides,
    )


def test_pipeline_has_the_chain_in_order(census_spec):
    pipeline = create_pipeline(_config(census_spec))
    assert sorted(c.id for c in pipeline.components) == sorted(COMPONENT_IDS)
    by_id = {c.id: c for c in pipeline.components}
    upstream = {c.id: sorted(u.id for u in c.upstream_nodes) for c in pipeline.components}
    assert upstream == {
        "CsvExampleGen": [],
        "ImportSchemaGen": [],
        "StatisticsGen": ["CsvExampleGen"],
        "ExampleValidator": ["ImportSchemaGen", "StatisticsGen"],
        "Transform": ["CsvExampleGen", "ImportSchemaGen"],
        "Trainer": ["ImportSchemaGen", "Transform"],
        "LatestBlessedModelResolver": [],
        "Evaluator": ["CsvExampleGen", "LatestBlessedModelResolver", "Trainer"],
        "ServingCheck": ["CsvExampleGen", "Trainer"],
        "Pusher": ["Evaluator", "ServingCheck", "Trainer"],
    }
    trainer = by_id["Trainer"]
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert DatasetSpec.from_dict(custom[SPEC_KEY]) == census_spec
    assert custom["trainer"]["variant"] == "omoe"
    assert trainer.exec_properties["run_fn"] == RUN_FN == "trainer.run.run_fn"
    assert by_id["Transform"].exec_properties["preprocessing_fn"] == PREPROCESSING_FN
    assert PREPROCESSING_FN == "components.preprocessing.preprocessing_fn"
    assert json.loads(by_id["Evaluator"].exec_properties["example_splits"]) == ["test"]


def test_config_errors_name_the_field(census_spec):
    with pytest.raises(ValueError, match=r"PipelineConfig.train_steps: received 0, expected a positive integer"):
        _config(census_spec, train_steps=0)
    with pytest.raises(ValueError, match=r"accelerator_type='NVIDIA_TESLA_T4' with accelerator_count=0"):
        ResourceRequest(accelerator_type="NVIDIA_TESLA_T4")


def test_kubeflow_compile_requests_a_gpu_for_the_trainer(census_spec, tmp_path):
    config = kfp_runner.kubeflow_config(
        "gs://bucket/root", "gs://bucket/data", census_spec, kfp_runner.image_schema_path("census", "schema.pbtxt"),
        "gs://bucket/serving",
    )
    path = kfp_runner.compile_pipeline(config, "registry.example/mmoe:1.0", str(tmp_path / "pipeline.json"))
    with open(path) as f:
        compiled = json.load(f)
    spec = compiled.get("pipelineSpec", compiled)
    tasks = spec["root"]["dag"]["tasks"]
    # KFP v2 compiles the Resolver into two resolver tasks.
    assert sorted(t for t in tasks if not t.startswith(BASELINE_RESOLVER)) == sorted(
        c for c in COMPONENT_IDS if c != BASELINE_RESOLVER
    )
    assert sorted(t for t in tasks if t.startswith(BASELINE_RESOLVER)) == [
        f"{BASELINE_RESOLVER}-model-blessing-resolver", f"{BASELINE_RESOLVER}-model-resolver"
    ]
    executors = spec["deploymentSpec"]["executors"]
    trainer = next(e["container"] for name, e in executors.items() if name.startswith("Trainer"))
    assert trainer["image"] == "registry.example/mmoe:1.0"
    assert trainer["resources"]["accelerator"] == {"type": "NVIDIA_TESLA_T4", "count": "1"}
    others = [e["container"] for name, e in executors.items() if not name.startswith("Trainer") and "container" in e]
    assert others and all("accelerator" not in c.get("resources", {}) for c in others)
    text = json.dumps(compiled)
    assert "trainer.run.run_fn" in text and "/pipeline/schemas/census/schema.pbtxt" in text
    assert "gs://bucket/root" in text
    assert ".whl" not in text  # no module_file wheel uploaded at compile time


class FakeKfpClient:
    def __init__(self):
        self.calls = []

    def create_experiment(self, name):
        self.calls.append(("create_experiment", name))
        return type("Experiment", (), {"experiment_id": "exp-1"})()

    def create_recurring_run(self, **kwargs):
        self.calls.append(("create_recurring_run", kwargs))
        return "run"


def test_schedule_creates_a_recurring_run():
    client = FakeKfpClient()
    kfp_runner.schedule(client, "p.json", "0 30 2 * * *", "mmoe", "nightly")
    (_, experiment), (_, run) = client.calls
    assert experiment == "mmoe"
    assert run["experiment_id"] == "exp-1" and run["cron_expression"] == "0 30 2 * * *"
    assert run["pipeline_package_path"] == "p.json" and run["job_name"] == "nightly"


def test_schedule_rejects_a_five_field_cron():
    with pytest.raises(ValueError, match=r"cron: received '0 3 \* \* \*' \(5 fields\).*6 fields"):
        kfp_runner.schedule(FakeKfpClient(), "p.json", "0 3 * * *", "mmoe", "nightly")
