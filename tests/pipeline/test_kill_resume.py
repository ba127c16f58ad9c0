"""A run killed during the Trainer (SIGTERM, then SIGKILL) and started again completes from the cache,
its Trainer from the backup the killed one left (not from step 0), with exactly one new serving version;
a second run on the same output directory meanwhile is refused.

`make test-slow` (about 6 minutes): the CLI as a user runs it, in its own process group.
"""

import dataclasses
import glob
import os
import re
import signal
import subprocess
import time

import pytest

import schemas
from pipeline.local import local_runner
from pipeline.reporting import report
from sources import census
from tests.pipeline.conftest import NODES, ROWS, _read, cli_command
from trainer.checkpoints import BACKUP_FOLDER, backup_steps

pytestmark = pytest.mark.slow

# The Trainer's ancestors: done before it started, so served from the cache on the resumed run. (StatisticsGen
# and ExampleValidator do not feed the Trainer; the runner may order them after it, so they may not have run yet.)
UPSTREAM = ["CsvExampleGen", "SpecSchema", "Transform"]
# Long enough that the Trainer is still training when the first backup is there and the run is killed
# (on a fast machine about 600 steps/s); the resumed run trains what is left.
STEPS = 20000
PROGRESS_STEP = re.compile(r"epoch 1 step (\d+)/%d " % STEPS)


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
    backups = os.path.join(config.pipeline_root, "Trainer", BACKUP_FOLDER, "*", "chief", "checkpoint")
    first = subprocess.Popen(_cli(config, STEPS, tmp_path), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: _states(config).get("Trainer") == "RUNNING", 600, "the Trainer to start")
        # Meanwhile a second run on the same output directory is refused, naming the holder.
        second = subprocess.run(_cli(config, 10, tmp_path), env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1
        assert f"Error: {out} is in use by another run (pid {first.pid}, started " in second.stderr
        _wait_for(lambda: glob.glob(backups), 300, "the Trainer's first backup")
        assert first.poll() is None, "the Trainer ended before it could be killed: raise STEPS"
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

    resumed = subprocess.run(_cli(config, STEPS, tmp_path), env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The resumed Trainer started from the backup: its first progress report is past the first backup's step
    # (a Trainer from step 0 reports every STEPS / 10 steps, the first at STEPS / 10 = the backup interval).
    with open(sorted(glob.glob(os.path.join(out, "logs", "run-*.log")))[-1]) as f:
        log = f.read()
    assert "Resuming from the backup" in log
    reported = [int(step) for step in PROGRESS_STEP.findall(log)]
    assert reported and reported[0] > backup_steps(STEPS), reported
    assert glob.glob(os.path.join(config.pipeline_root, "Trainer", BACKUP_FOLDER, "*")) == []  # removed at the end
    states = _states(config)
    assert {node: states[node] for node in UPSTREAM} == {node: "CACHED" for node in UPSTREAM}
    assert states["Trainer"] == "COMPLETE" and states["Pusher"] == "COMPLETE"
    versions = os.listdir(config.serving_model_dir)
    assert len(versions) == 1 and versions[0].isdigit()
    assert os.path.exists(os.path.join(config.serving_model_dir, versions[0], "saved_model.pb"))
    decision = _read(os.path.join(out, "decision.json"))
    assert decision["pushed_destination"] == os.path.join(config.serving_model_dir, versions[0])
