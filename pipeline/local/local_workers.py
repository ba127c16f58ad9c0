"""The Trainer's executor run on this machine as each TFJob or Vertex AI replica runs it.

Every replica of a multi-worker Trainer runs ``python -m tfx.scripts.run_executor``
with TFX's GenericExecutor and the Trainer's inputs, outputs and exec
properties (`components.tfjob_trainer.run_executor_args`). This module starts
that same command in local processes: one process, one process whose CPU is split
into logical devices (``MirroredStrategy`` without GPUs), or N worker processes
with ``TF_CONFIG`` on 127.0.0.1 free ports (``MultiWorkerMirroredStrategy``). The
tests and ``bench/replicas.py`` use it on the artifacts of a local pipeline run.

    python -m pipeline.local.local_workers --logical-cpus 2 -- --executor_class_path ... (run_executor's flags)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import IO, List, Optional, Sequence, Tuple

from google.protobuf import json_format
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.names import RUN_FN, SCHEMA_COMPONENT, SPEC_KEY, TRAINER_CONFIG_KEY, TRANSFORM_COMPONENT
from components.tfjob_trainer import REPLICA_EXECUTOR, run_executor_args
from pipeline.reporting import report

RUN_EXECUTOR_MODULE = "tfx.scripts.run_executor"
# On few cores, collectives of several local workers can starve without enough inter-op threads.
INTEROP_THREADS = "8"


def _artifact(cls, uri: str, splits: Sequence[str] = ()):
    if not uri:
        raise ValueError(f"no {cls.TYPE_NAME} artifact found; run the pipeline first (mmoe-pipeline run).")
    artifact = cls()
    artifact.uri = uri
    if splits:
        artifact.split_names = artifact_utils.encode_split_names(list(splits))
    return artifact


def trainer_args(store, pipeline_name: str, spec, trainer_config, out_dir: str, train_steps: int,
                 eval_steps: int) -> List[str]:
    """run_executor's arguments for the Trainer on the latest Transform output of a local run,
    writing the model and model-run artifacts under `out_dir`."""
    latest = lambda node, kind: report.latest_output_uri(store, pipeline_name, node, kind)  # noqa: E731
    inputs = {
        "examples": [_artifact(standard_artifacts.Examples, latest(TRANSFORM_COMPONENT, "Examples"), ["train", "eval"])],
        "transform_graph": [_artifact(standard_artifacts.TransformGraph, latest(TRANSFORM_COMPONENT, "TransformGraph"))],
        "schema": [_artifact(standard_artifacts.Schema, latest(SCHEMA_COMPONENT, "Schema"))],
    }
    outputs = {"model": [_artifact(standard_artifacts.Model, os.path.join(out_dir, "model"))],
               "model_run": [_artifact(standard_artifacts.ModelRun, os.path.join(out_dir, "model_run"))]}
    exec_properties = {
        "run_fn": RUN_FN,
        "train_args": json_format.MessageToJson(trainer_pb2.TrainArgs(splits=["train"], num_steps=train_steps)),
        "eval_args": json_format.MessageToJson(trainer_pb2.EvalArgs(splits=["eval"], num_steps=eval_steps)),
        "custom_config": json.dumps({SPEC_KEY: spec.to_dict(), TRAINER_CONFIG_KEY: trainer_config.to_dict()}),
    }
    return run_executor_args(inputs, outputs, exec_properties, REPLICA_EXECUTOR)


def free_ports(n: int) -> List[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


Replica = Tuple[subprocess.Popen, str, IO]


def start(args: Sequence[str], log_path: str, tf_config: Optional[dict] = None, logical_cpus: int = 0) -> Replica:
    """Starts one replica (its output to `log_path`)."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_NUM_INTEROP_THREADS": INTEROP_THREADS}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    module = [__name__, "--logical-cpus", str(logical_cpus), "--"] if logical_cpus else [RUN_EXECUTOR_MODULE]
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", *module, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, log_path, log


def start_workers(args: Sequence[str], n: int, log_dir: str) -> List[Replica]:
    """N worker processes with TF_CONFIG on 127.0.0.1 (worker 0 is the chief), the same command in each."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(n)]}
    return [start(args, os.path.join(log_dir, f"worker{i}.log"), {"cluster": cluster, "task": {"type": "worker",
                                                                                              "index": i}})
            for i in range(n)]


def wait(replicas: List[Replica], timeout_s: float = 1800) -> List[str]:
    """Waits for every replica; returns their logs; raises naming the first that failed."""
    logs = []
    for process, log_path, log in replicas:
        try:
            code = process.wait(timeout=timeout_s)
        finally:
            log.close()
        with open(log_path) as f:
            text = f.read()
        if code != 0:
            for other, _, _ in replicas:
                other.kill()
            raise RuntimeError(f"replica {log_path} exited with {code}; last lines:\n{text[-3000:]}")
        logs.append(text)
    return logs


def _main(argv: List[str]) -> None:
    count = int(argv[argv.index("--logical-cpus") + 1])
    run_args = argv[argv.index("--") + 1:]
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * count)
    from absl import app
    from tfx.scripts import run_executor

    sys.argv = [RUN_EXECUTOR_MODULE, *run_args]
    app.run(run_executor.main, flags_parser=run_executor.parse_flags)


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    _main(sys.argv[1:])
