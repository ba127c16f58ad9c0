"""The census MMoE trained by the Trainer's executor (`python -m tfx.scripts.run_executor`, the command
every TFJob or Vertex AI replica runs) on the e2e run's Transform output: one replica, Mirrored over
2 logical CPU devices, and 2 worker processes with TF_CONFIG on 127.0.0.1 (MultiWorkerMirrored)."""

import glob
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from components.names import EXAMPLES_INPUT, SERVING_SIGNATURE
from components.serving_check import raw_examples
from pipeline.local import local_workers
from pipeline.reporting import report
from trainer.config import TrainerConfig
from trainer.run import WORKER_TEMP_PREFIX

pytestmark = pytest.mark.e2e

STEPS, PER_REPLICA_BATCH = 200, 32
LOSS_TOLERANCE, AUC_TOLERANCE = 0.01, 0.01  # float differences of summing in another order
PROGRESS = re.compile(r"epoch 1 step (\d+)/(\d+) loss=([0-9.]+)")


def _final_step_and_loss(log):
    done, total, loss = PROGRESS.findall(log)[-1]
    return int(done), int(total), float(loss)


def _test_aucs(model_dir, runs, spec):
    """AUC per task of the exported model's serving_default on the raw test split."""
    examples_uri = report.latest_output_uri(runs["store"], runs["config"].pipeline_name, "CsvExampleGen", "Examples")
    files = sorted(glob.glob(os.path.join(examples_uri, "Split-test", "*")))
    labelled = [tf.train.Example.FromString(r.numpy())
                for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    serving = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]
    outputs = serving(**{EXAMPLES_INPUT: tf.constant(raw_examples(examples_uri, "test", spec, len(labelled)))})
    aucs = {}
    for task in spec.tasks:
        values = [e.features.feature[task.label_column].bytes_list.value[0].decode().strip() for e in labelled]
        labels = np.array([v in task.positive_values for v in values], dtype="float32")
        metric = tf.keras.metrics.AUC(num_thresholds=1000)
        metric.update_state(labels, np.asarray(outputs[task.output_name]).reshape(-1))
        aucs[task.name] = float(metric.result())
    return aucs


@pytest.fixture(scope="module")
def trained(runs, spec, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("distributed"))
    small = dict(num_experts=4, expert_units=8, seed=7)
    configs = {
        "default": TrainerConfig(batch_size=2 * PER_REPLICA_BATCH, **small),
        "mirrored": TrainerConfig(batch_size=PER_REPLICA_BATCH, distribution="mirrored",
                                  devices=["/cpu:0", "/cpu:1"], **small),
        "multi": TrainerConfig(batch_size=PER_REPLICA_BATCH, distribution="multi_worker", **small),
    }
    args = {name: local_workers.trainer_args(runs["store"], runs["config"].pipeline_name, spec, config,
                                             os.path.join(out, name), STEPS, 2)
            for name, config in configs.items()}
    results = {
        "default": local_workers.wait([local_workers.start(args["default"], os.path.join(out, "default.log"))]),
        "mirrored": local_workers.wait([local_workers.start(args["mirrored"], os.path.join(out, "mirrored.log"),
                                                            logical_cpus=2)]),
        "multi": local_workers.wait(local_workers.start_workers(args["multi"], 2, out)),
    }
    return {name: {"logs": logs, "dir": os.path.join(out, name),
                   "serving": os.path.join(out, name, "model", "Format-Serving")} for name, logs in results.items()}


def test_mirrored_on_two_devices_matches_one_device_at_the_same_global_batch(trained, runs, spec):
    default, mirrored = trained["default"], trained["mirrored"]
    assert "2 replica(s) in sync" in mirrored["logs"][0] and "1 replica(s) in sync" in default["logs"][0]
    assert f"of {2 * PER_REPLICA_BATCH} examples ({PER_REPLICA_BATCH} per replica x 2 replicas)" in mirrored["logs"][0]
    step_d, _, loss_d = _final_step_and_loss(default["logs"][0])
    step_m, _, loss_m = _final_step_and_loss(mirrored["logs"][0])
    assert step_d == step_m == STEPS
    assert abs(loss_d - loss_m) < LOSS_TOLERANCE, (loss_d, loss_m)
    auc_d, auc_m = _test_aucs(default["serving"], runs, spec), _test_aucs(mirrored["serving"], runs, spec)
    for task in auc_d:
        assert abs(auc_d[task] - auc_m[task]) < AUC_TOLERANCE, (task, auc_d, auc_m)


def test_two_workers_train_the_same_steps_and_the_chief_alone_exports(trained, runs, spec):
    multi = trained["multi"]
    chief, worker = multi["logs"]
    assert "as worker 0 of 2 workers" in chief and "as worker 1 of 2 workers" in worker
    assert _final_step_and_loss(chief)[:2] == _final_step_and_loss(worker)[:2] == (STEPS, STEPS)
    assert "removed its temporary export" in worker and "Exported the model" in chief
    # The same global batch as one replica: the same steps, and the logged loss is the true mean.
    assert abs(_final_step_and_loss(chief)[2] - _final_step_and_loss(trained["default"]["logs"][0])[2]) \
        < LOSS_TOLERANCE
    saved = glob.glob(os.path.join(multi["dir"], "**", "saved_model.pb"), recursive=True)
    assert saved == [os.path.join(multi["serving"], "saved_model.pb")]
    assert glob.glob(os.path.join(multi["dir"], "**", WORKER_TEMP_PREFIX + "*"), recursive=True) == []
    aucs = _test_aucs(multi["serving"], runs, spec)
    assert sorted(aucs) == sorted(t.name for t in spec.tasks)
    assert all(auc > 0.6 for auc in aucs.values()), aucs


def test_the_replicas_benchmark_reads_each_set_ups_steady_rate(trained):
    """bench/replicas.py's measure on these three set-ups (tiny: 200 steps): the chief's steady rate,
    the median of its progress reports after the first."""
    from tests.conftest import load_bench

    bench = load_bench("replicas")
    rates = {name: bench.steady_rate(result["logs"][0]) for name, result in trained.items()}
    assert set(rates) == {"default", "mirrored", "multi"} and all(rate > 0 for rate in rates.values())
    with pytest.raises(ValueError, match="fewer than 2 progress reports"):
        bench.steady_rate(trained["default"]["logs"][0].split("step 40/")[0])
