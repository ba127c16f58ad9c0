"""StatisticsGen and Transform of the e2e pipeline run again through Beam's PortableRunner against a job
service started in its own process (``local_job_service_main``: the Runner API and job-service path that
the Flink and Spark job servers take), as ``mmoe-pipeline run --beam-args`` runs them, and compared with
the e2e run's in-process outputs."""

import dataclasses
import glob
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline.graph import beam_options
from pipeline.graph.pipeline import create_pipeline
from pipeline.reporting import report

pytestmark = pytest.mark.e2e

RERUN = ["StatisticsGen", "Transform"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job_service(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("job_service") / "job_service.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                    "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
    yield {"endpoint": f"localhost:{port}", "log": log}
    process.terminate()
    process.wait(timeout=30)


def _records(uri: str, split: str) -> list:
    """Every transformed example of the split as {feature: values}, in a canonical order (floats rounded
    to 4 decimals for the sort only)."""
    files = sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*")))
    assert files, f"no files under {uri}/Split-{split}"
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        rows.append({k: list(getattr(v, v.WhichOneof("kind")).value) for k, v in features.items()})
    return sorted(rows, key=lambda r: repr(sorted((k, [round(x, 4) if isinstance(x, float) else x for x in v])
                                                  for k, v in r.items())))


def _assets(uri: str) -> dict:
    folder = os.path.join(uri, "transform_fn", "assets")
    names = sorted(os.listdir(folder))
    assert names, f"no vocabularies under {folder}"
    return {name: open(os.path.join(folder, name), "rb").read() for name in names}


def _statistics(uri: str, split: str):
    stats = tfdv.load_stats_binary(os.path.join(uri, f"Split-{split}", "FeatureStats.pb")).datasets[0]
    return stats.num_examples, {f.path.step[0]: f for f in stats.features}


@pytest.fixture(scope="module")
def portable(runs, job_service, tmp_path_factory):
    """The e2e pipeline's StatisticsGen and Transform re-run (TFX partial run, the upstream outputs taken
    from the e2e run's ML Metadata, copied) through the job service."""
    config = runs["config"]
    out = tmp_path_factory.mktemp("portable")
    metadata = str(out / "metadata.sqlite")
    shutil.copy(config.metadata_path, metadata)
    args = beam_options.parse_beam_args([f"--runner=PortableRunner --job_endpoint={job_service['endpoint']} "
                                         "--environment_type=LOOPBACK"])
    beam_options.check_local(args)
    rerun = dataclasses.replace(config, pipeline_root=str(out / "pipeline_root"), metadata_path=metadata,
                                enable_cache=False, beam_pipeline_args=args)
    started = time.monotonic()
    with beam_options.local_execution():
        LocalDagRunner().run(create_pipeline(rerun),
                             run_options=tfx_pipeline.RunOptions(from_nodes=RERUN, to_nodes=RERUN))
    store = report.open_store(metadata)
    latest = lambda store_, node, kind: report.latest_output_uri(store_, config.pipeline_name, node, kind)  # noqa: E731
    return {
        "seconds": time.monotonic() - started,
        "in_process": {kind: latest(runs["store"], node, kind) for node, kind in (
            ("StatisticsGen", "ExampleStatistics"), ("Transform", "Examples"), ("Transform", "TransformGraph"))},
        "portable": {kind: latest(store, node, kind) for node, kind in (
            ("StatisticsGen", "ExampleStatistics"), ("Transform", "Examples"), ("Transform", "TransformGraph"))},
        "root": rerun.pipeline_root,
    }


def test_the_job_service_ran_both_components_into_the_new_root(portable, job_service):
    for kind, uri in portable["portable"].items():
        assert uri.startswith(portable["root"]), (kind, uri)
        assert portable["in_process"][kind] != uri
    log = job_service["log"].read_text()
    # One job per Beam pipeline: StatisticsGen's and Transform's, each run to the end.
    assert log.count("Running job 'job-") >= 2, log[-3000:]
    assert log.count("with state DONE.") == log.count("Running job 'job-"), log[-3000:]


@pytest.mark.parametrize("split", ["train", "eval", "test"])
def test_statistics_through_the_job_service_equal_the_in_process_ones(portable, split):
    rows, features = _statistics(portable["in_process"]["ExampleStatistics"], split)
    rows_portable, features_portable = _statistics(portable["portable"]["ExampleStatistics"], split)
    assert rows_portable == rows > 0
    assert sorted(features_portable) == sorted(features)
    for name, feature in features.items():
        assert features_portable[name] == feature, name


def test_transform_through_the_job_service_writes_the_same_examples_and_vocabularies(portable):
    assert _assets(portable["portable"]["TransformGraph"]) == _assets(portable["in_process"]["TransformGraph"])
    for split in ("train", "eval"):  # Transform transforms these two (pipeline.py's splits_config)
        expected = _records(portable["in_process"]["Examples"], split)
        got = _records(portable["portable"]["Examples"], split)
        assert len(got) == len(expected) > 0, split
        for row, want in zip(got, expected):
            assert sorted(row) == sorted(want)
            for name, values in want.items():
                if values and isinstance(values[0], float):  # z-scores: the mean and variance summed in another order
                    assert row[name] == pytest.approx(values, rel=1e-5, abs=1e-6), (split, name)
                else:
                    assert row[name] == values, (split, name)
