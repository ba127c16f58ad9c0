"""A regression pipeline: the paper's synthetic data, PLE, written and run with no code change."""

import os

import pytest

from components import synthetic
from components.spec import load_spec
from pipeline import local_runner, report
from trainer.config import TrainerConfig

pytestmark = pytest.mark.e2e


def test_synthetic_regression_tasks_run_through_the_whole_pipeline(tmp_path):
    splits, spec_path, schema_path = synthetic.write_dataset(str(tmp_path / "syn"), n=1500, dim=8, correlation=0.7)
    spec = load_spec(spec_path)
    config = local_runner.local_config(
        str(tmp_path / "out"), splits, spec, schema_path, pipeline_name="synthetic",
        trainer=TrainerConfig(variant="ple", num_experts=2, task_experts=2, expert_units=8,
                              shared_learning_rate=0.01, batch_size=64),
        train_steps=200, eval_steps=2,
    )
    decision = local_runner.run(config)
    assert decision["pushed"], decision["reasons"]
    assert decision["serving_check"]["ok"]
    for task in ("task_y1", "task_y2"):
        d = decision["tasks"][task]
        assert d["type"] == "regression" and d["auc"] is None
        assert 0 < d["mse"] <= d["max_mse"] == spec.task(task).max_mse
    uri = report.latest_output_uri(report.open_store(config.metadata_path), "synthetic", "Evaluator",
                                   "ModelEvaluation")
    import tensorflow_model_analysis as tfma

    metrics = dict(tfma.load_eval_result(uri).slicing_metrics)[()]
    for task in ("task_y1", "task_y2"):
        mse = metrics[task][""]["mean_squared_error"]["doubleValue"]
        # The targets have variance about 3.5 (the sum of ten sines); a constant scores that.
        assert mse < 1.5, (task, mse)
        assert metrics[task][""]["example_count"]["doubleValue"] == 150
    assert len(os.listdir(config.serving_model_dir)) == 1
