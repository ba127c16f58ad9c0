import dataclasses
import json
import subprocess
import sys

import pytest
from tfx import v1 as tfx

import schemas
from components.names import PREPROCESSING_FN, RUN_FN, SPEC_KEY
from components.spec import DatasetSpec
from pipeline.graph.config import PipelineConfig, ResourceRequest
from pipeline.graph.pipeline import create_pipeline
from trainer.config import TrainerConfig

COMPONENT_IDS = [
    "CsvExampleGen", "StatisticsGen", "SpecSchema", "ExampleValidator", "SpanDrift",
    "Transform", "Trainer", "ServingBaseline", "Evaluator", "ServingCheck", "Pusher",
]


def _config(census_spec, **overrides):
    overrides.setdefault("schema_path", schemas.path("census", "schema.pbtxt"))
    return PipelineConfig(
        pipeline_name="test-pipeline", pipeline_root="/tmp/root", data_root="/tmp/data", spec=census_spec,
        serving_model_dir="/tmp/serving", trainer=TrainerConfig(variant="omoe"), **overrides,
    )


def test_pipeline_has_the_chain_in_order(census_spec):
    pipeline = create_pipeline(_config(census_spec))
    assert sorted(c.id for c in pipeline.components) == sorted(COMPONENT_IDS)
    by_id = {c.id: c for c in pipeline.components}
    upstream = {c.id: sorted(u.id for u in c.upstream_nodes) for c in pipeline.components}
    assert upstream == {
        "CsvExampleGen": [],
        "SpecSchema": [],
        "StatisticsGen": ["CsvExampleGen"],
        "ExampleValidator": ["SpecSchema", "StatisticsGen"],
        "SpanDrift": ["CsvExampleGen", "SpecSchema", "StatisticsGen"],
        "Transform": ["CsvExampleGen", "SpecSchema"],
        "Trainer": ["SpecSchema", "Transform"],
        "ServingBaseline": [],
        "Evaluator": ["CsvExampleGen", "ServingBaseline", "Trainer"],
        "ServingCheck": ["CsvExampleGen", "ExampleValidator", "SpanDrift", "Trainer"],
        "Pusher": ["Evaluator", "ServingCheck", "Trainer"],
    }
    trainer = by_id["Trainer"]
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert DatasetSpec.from_dict(custom[SPEC_KEY]) == census_spec
    assert custom["trainer"]["variant"] == "omoe"
    assert trainer.exec_properties["run_fn"] == RUN_FN  # resolved to the function in a test below
    assert by_id["Transform"].exec_properties["preprocessing_fn"] == PREPROCESSING_FN
    assert json.loads(by_id["Evaluator"].exec_properties["example_splits"]) == ["test"]


def test_spans_split_warm_start_and_inferred_schema_change_the_graph(census_spec):
    from google.protobuf import json_format
    from tfx.proto import example_gen_pb2

    from components import example_gen

    raw = census_spec.to_dict()
    raw["split"] = {"ratios": {"train": 8, "eval": 1, "test": 1}, "key": "age"}
    spec = DatasetSpec.from_dict(raw)
    pipeline = create_pipeline(_config(spec, schema_path=None, span_folder="span-{SPAN}", num_spans=3,
                                       warm_start=True))
    by_id = {c.id: c for c in pipeline.components}
    upstream = {c.id: sorted(u.id for u in c.upstream_nodes) for c in pipeline.components}
    assert upstream["SchemaGen"] == ["StatisticsGen"] and upstream["SpecSchema"] == ["SchemaGen", "StatisticsGen"]
    assert upstream["Trainer"] == ["ServingBaseline", "SpecSchema", "Transform"]
    gen = by_id["CsvExampleGen"].exec_properties
    inputs = json_format.Parse(gen["input_config"], example_gen_pb2.Input())
    assert [(s.name, s.pattern) for s in inputs.splits] == [("data", "span-{SPAN}/*")]
    outputs = json_format.Parse(gen["output_config"], example_gen_pb2.Output())
    assert [(s.name, s.hash_buckets) for s in outputs.split_config.splits] == [("train", 8), ("eval", 1), ("test", 1)]
    assert outputs.split_config.partition_feature_name == "age"
    read_spec, folder, spans = example_gen.read_custom_config(
        {"custom_config": gen["custom_config"]})
    assert (read_spec, folder, spans) == (spec, "span-{SPAN}", 3)
    with pytest.raises(ValueError, match=r"num_spans: 2 spans asked for, but the data has no span folders"):
        _config(census_spec, num_spans=2)
    with pytest.raises(ValueError, match=r"span_folder: received 'spans/\{SPAN\}'; expected one folder name"):
        _config(census_spec, span_folder="spans/{SPAN}")


def test_the_trainer_takes_tuned_or_imported_hyperparameters(census_spec, tmp_path):
    from pipeline.graph.config import TuningConfig
    from pipeline.kubeflow import kubeflow_v2_runner as kfp_runner
    from pipeline.kubeflow import spec_check

    tuned = create_pipeline(_config(census_spec, tuning=TuningConfig(budget_s=60, max_trials=3)))
    upstream = {c.id: sorted(u.id for u in c.upstream_nodes) for c in tuned.components}
    assert upstream["Tuner"] == ["SpecSchema", "Transform"]
    assert upstream["Trainer"] == ["SpecSchema", "Transform", "Tuner"]
    tuner = {c.id: c for c in tuned.components}["Tuner"]
    assert json.loads(tuner.exec_properties["custom_config"])["tuning"] == {"budget_s": 60, "max_trials": 3}
    reused = create_pipeline(_config(census_spec, hyperparameters_uri="gs://b/best"))
    upstream = {c.id: sorted(u.id for u in c.upstream_nodes) for c in reused.components}
    assert upstream["Trainer"] == ["HyperparametersImporter", "SpecSchema", "Transform"]
    # The Importer is allowed on open-source KFP (no condition on it): scheduled runs reuse, not re-tune.
    config = kfp_runner.kubeflow_config("gs://b/r", "gs://b/d", census_spec, "/s.pbtxt", "gs://b/s",
                                        hyperparameters_uri="gs://b/best")
    package = kfp_runner.compile_pipeline(config, "img", str(tmp_path / "p.yaml"))
    assert spec_check.check_package(package) == []
    with pytest.raises(ValueError, match=r"tuning and hyperparameters_uri both set"):
        _config(census_spec, tuning=TuningConfig(), hyperparameters_uri="x")


def test_config_errors_name_the_field(census_spec):
    with pytest.raises(ValueError, match=r"PipelineConfig.train_steps: received 0, expected a positive integer"):
        _config(census_spec, train_steps=0)
    with pytest.raises(ValueError, match=r"accelerator_type='NVIDIA_TESLA_T4' with accelerator_count=0"):
        ResourceRequest(accelerator_type="NVIDIA_TESLA_T4")


def test_import_paths_in_names_resolve_to_the_functions():
    from tfx.utils import import_utils

    from components import preprocessing
    from trainer import run

    assert import_utils.import_func_from_module(*PREPROCESSING_FN.rsplit(".", 1)) is preprocessing.preprocessing_fn
    assert import_utils.import_func_from_module(*RUN_FN.rsplit(".", 1)) is run.run_fn


def test_compiling_the_pipeline_does_not_import_the_model_code(tmp_path):
    code = (
        "import sys, schemas\n"
        "from components.spec import load_spec\n"
        "from pipeline.kubeflow import kubeflow_v2_runner as k\n"
        "spec = load_spec(schemas.path('census', 'group1.yaml'))\n"
        "config = k.kubeflow_config('gs://b/r', 'gs://b/d', spec, '/s.pbtxt', 'gs://b/s')\n"
        f"k.compile_pipeline(config, 'img', {str(tmp_path / 'p.yaml')!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('trainer.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # Only the Trainer's config dataclass; the model, layers, run_fn and signatures stay unloaded.
    assert out.strip().splitlines()[-1] == "['trainer.config']"


def test_the_baseline_is_the_served_model_keyed_by_its_version(census_spec, tmp_path):
    serving = tmp_path / "serving"
    config = dataclasses.replace(_config(census_spec, baseline_cache_key=True), serving_model_dir=str(serving))
    by_id = {c.id: c for c in create_pipeline(config).components}
    assert sorted(u.id for u in by_id["Evaluator"].upstream_nodes) == ["CsvExampleGen", "ServingBaseline", "Trainer"]
    from components import baseline

    # Its executor passed as the component's own spec (TFX's Evaluator takes no custom_executor_spec).
    assert by_id["Evaluator"].executor_spec.executor_class is baseline.Executor
    assert isinstance(by_id["Evaluator"], tfx.components.Evaluator)
    assert by_id["ServingBaseline"].exec_properties == {"serving_model_dir": str(serving), "served_version": "none"}
    for version in ("1700000000", "1800000000", "notaversion"):
        (serving / version).mkdir(parents=True)
        (serving / version / "saved_model.pb").write_bytes(b"")
    by_id = {c.id: c for c in create_pipeline(config).components}
    assert by_id["ServingBaseline"].exec_properties["served_version"] == str(serving / "1800000000")
    # Compiled for a cluster, the task is never cached instead: no version is baked in.
    unkeyed = {c.id: c for c in create_pipeline(_config(census_spec)).components}
    assert unkeyed["ServingBaseline"].exec_properties["served_version"] == ""
