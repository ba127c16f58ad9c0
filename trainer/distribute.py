"""The Trainer's tf.distribute strategy, from `TrainerConfig.distribution`.

* ``auto``: `MirroredStrategy` over every local GPU when there are 2 or more,
  else the default strategy (one device);
* ``mirrored``: `MirroredStrategy` over ``devices`` (default: every local GPU,
  or the CPU when there is none);
* ``multi_worker``: `MultiWorkerMirroredStrategy` from ``TF_CONFIG`` (set by the
  Kubeflow training operator in each TFJob replica, by Vertex AI in each
  worker-pool replica, or by hand on one machine);
* ``one_device``: `OneDeviceStrategy` on ``devices[0]`` (default: the first GPU,
  else the CPU).

`TrainerConfig.batch_size` is per replica: the global batch fed to ``fit`` is
``batch_size * num_replicas_in_sync``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Optional

import tensorflow as tf

from trainer.config import Distribution, TrainerConfig

TF_CONFIG = "TF_CONFIG"


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """Where this process sits in a (multi-worker) cluster; the chief exports the model."""

    task_type: Optional[str]
    task_id: int
    num_workers: int
    is_chief: bool


def worker_role(tf_config: Optional[str] = None) -> WorkerRole:
    """This process's role from ``TF_CONFIG`` (a single worker when it is unset). The chief is the
    'chief' task, or worker 0 when the cluster has no 'chief' (TensorFlow's rule)."""
    raw = os.environ.get(TF_CONFIG, "") if tf_config is None else tf_config
    if not raw:
        return WorkerRole(None, 0, 1, True)
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, task_id = task["type"], int(task.get("index", 0))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{TF_CONFIG}: received {raw!r}, expected JSON with 'cluster' and 'task' "
                         "({'type': ..., 'index': ...}).") from None
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not cluster.get("chief"))
    return WorkerRole(task_type, task_id, max(workers, 1), is_chief)


def make_strategy(config: TrainerConfig) -> tf.distribute.Strategy:
    """The strategy `config.distribution` asks for (see the module docstring)."""
    distribution = config.distribution
    if distribution is Distribution.MULTI_WORKER:
        # Collective ops must be configured before TensorFlow's context starts: nothing here
        # (not even listing devices) may run before this, and run_fn calls it first.
        if not os.environ.get(TF_CONFIG):
            raise ValueError(
                f"TrainerConfig.distribution='multi_worker' needs the {TF_CONFIG} environment variable "
                "(set by the training operator or Vertex AI in each replica); it is not set. Use 'auto' "
                "for one worker."
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = _local_strategy(distribution, list(config.devices))
    logging.info("Distribution %s: %s with %d replica(s) in sync.", distribution.value,
                 type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def _local_strategy(distribution: Distribution, devices) -> tf.distribute.Strategy:
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if distribution is Distribution.AUTO:
        strategy = tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else tf.distribute.get_strategy()
    elif distribution is Distribution.MIRRORED:
        strategy = tf.distribute.MirroredStrategy(devices or gpus or None)
    elif distribution is Distribution.ONE_DEVICE:
        device = devices[0] if devices else (gpus[0] if gpus else "/cpu:0")
        strategy = tf.distribute.OneDeviceStrategy(device)
    else:  # pragma: no cover - the enum is closed
        raise ValueError(f"unsupported distribution {distribution!r}")
    return strategy


def auto_shard_policy(num_files: int, num_workers: int) -> tf.data.experimental.AutoShardPolicy:
    """FILE sharding when every worker gets at least one file, else DATA (each worker reads all
    files and keeps its share of the examples)."""
    if num_workers <= 1:
        return tf.data.experimental.AutoShardPolicy.OFF
    if num_files >= num_workers:
        return tf.data.experimental.AutoShardPolicy.FILE
    return tf.data.experimental.AutoShardPolicy.DATA
