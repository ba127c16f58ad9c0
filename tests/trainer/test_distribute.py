import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from trainer.config import Distribution, TrainerConfig
from trainer.distribute import auto_shard_policy, make_strategy, worker_role

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("loss_weighting", ["fixed", "uncertainty"])
def test_sgd_step_under_mirrored_is_lr_times_the_global_gradient_per_group(loss_weighting):
    out = subprocess.run([sys.executable, "-m", "tests.trainer.mirrored_check", loss_weighting], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert set(result["groups"]) == {"shared", "task_a", "task_b"}
    for group, r in result["groups"].items():
        assert r["max_step"] > 1e-4, group  # the step is there to check
        # Without the 1/replicas scaling the uncertainty-weighted update would be twice the step.
        assert r["max_error"] < 1e-3 * r["max_step"] + 1e-6, (group, r)


@pytest.mark.parametrize("raw, expected", [
    ("", (None, 0, 1, True)),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}', ("worker", 0, 2, True)),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}', ("worker", 1, 2, False)),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}',
     ("worker", 0, 2, False)),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     ("chief", 0, 2, True)),
])
def test_worker_role_follows_tensorflow_chief_rule(raw, expected):
    role = worker_role(raw)
    assert (role.task_type, role.task_id, role.num_workers, role.is_chief) == expected


def test_worker_role_names_a_bad_tf_config():
    with pytest.raises(ValueError, match=r"TF_CONFIG: received '\{\"task\": 1\}', expected JSON with 'cluster'"):
        worker_role('{"task": 1}')


def test_shard_policy_is_data_when_files_are_fewer_than_workers():
    policy = tf.data.experimental.AutoShardPolicy
    assert [auto_shard_policy(f, w) for f, w in ((1, 1), (1, 2), (4, 2), (2, 2))] == [
        policy.OFF, policy.DATA, policy.FILE, policy.FILE]


def test_strategies_from_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy(TrainerConfig()).num_replicas_in_sync == 1  # auto, no GPU
    one = make_strategy(TrainerConfig(distribution="one_device", devices=["/cpu:0"]))
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    with pytest.raises(ValueError, match=r"distribution='multi_worker' needs the TF_CONFIG environment variable"):
        make_strategy(TrainerConfig(distribution=Distribution.MULTI_WORKER))
    with pytest.raises(ValueError, match=r"TrainerConfig.distribution: received 'ps', expected one of"):
        TrainerConfig(distribution="ps")
    with pytest.raises(ValueError, match=r"devices apply to 'mirrored' and 'one_device' only"):
        TrainerConfig(devices=["/gpu:0"])
