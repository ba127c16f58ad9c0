"""A run killed during the Trainer (SIGTERM, then SIGKILL) and started again completes from the cache,
with exactly one new serving version; a second run on the same output directory meanwhile is refused.

`make test-slow` (about 4 minutes): the CLI as a user runs it, in its own process group.
"""

import dataclasses
import os
import signal
import subprocess
import time

import pytest

import schemas
from pipeline.local import local_runner
from pipeline.reporting import report
from sources import census
from tests.pipeline.conftest import NODES, ROWS, _read, cli_command

pytestmark = pytest.mark.slow

# The Trainer's ancestors: done before it started, so served from the cache on the resumed run. (StatisticsGen
# and ExampleValidator do not feed the Trainer; the runner may order them after it, so they may not have run yet.)
UPSTREAM = ["CsvExampleGen", "SpecSchema", "Transform"]


def _cli(config, steps, files):
    return cli_command(dataclasses.replace(config, train_steps=steps), str(files))


def _states(config):
    if not os.path.exists(config.metadata_path):
        return {}
    return report.node_states(report.open_store(config.metadata_path), config.pipeline_name, NODES)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_a_killed_run_resumes_from_the_cache_and_pushes_exactly_once(tmp_path, spec):
    splits = census.prepare(spec, str(tmp_path / "data"), test_path=census.SAMPLE_PATH, max_rows=ROWS).root
    out = str(tmp_path / "out")
    config = local_runner.local_config(out, splits, spec, schemas.path("census", "schema.pbtxt"), eval_steps=2)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    first = subprocess.Popen(_cli(config, 100000, tmp_path), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: _states(config).get("Trainer") == "RUNNING", 600, "the Trainer to start")
        # Meanwhile a second run on the same output directory is refused, naming the holder.
        second = subprocess.run(_cli(config, 10, tmp_path), env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1
        assert f"Error: {out} is in use by another run (pid {first.pid}, started " in second.stderr
        time.sleep(5)  # a few training steps
        os.killpg(first.pid, signal.SIGTERM)
        try:
            first.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not os.path.isdir(config.serving_model_dir) or os.listdir(config.serving_model_dir) == []

    resumed = subprocess.run(_cli(config, 300, tmp_path), env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    states = _states(config)
    assert {node: states[node] for node in UPSTREAM} == {node: "CACHED" for node in UPSTREAM}
    assert states["Trainer"] == "COMPLETE" and states["Pusher"] == "COMPLETE"
    versions = os.listdir(config.serving_model_dir)
    assert len(versions) == 1 and versions[0].isdigit()
    assert os.path.exists(os.path.join(config.serving_model_dir, versions[0], "saved_model.pb"))
    decision = _read(os.path.join(out, "decision.json"))
    assert decision["pushed_destination"] == os.path.join(config.serving_model_dir, versions[0])
