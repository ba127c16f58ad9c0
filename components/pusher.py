"""A Pusher executor that does not push the same model twice.

With a baseline resolver, re-running an unchanged pipeline (same data, so the
Trainer is served from the cache) re-evaluates the same model against itself,
blesses it again, and TFX's filesystem Pusher would copy it to a new version
directory. This executor first compares the model with the versions already
in the serving directory (a digest of every file of the SavedModel) and, when
it is already there, records that version as the push instead of copying.
"""

import hashlib
import logging
import os
from typing import Optional

from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils


def saved_model_digest(model_dir: str) -> str:
    """SHA-256 over the relative paths and contents of every file under `model_dir`."""
    digest = hashlib.sha256()
    files = []
    for root, _, names in fileio.walk(model_dir):
        files.extend(os.path.join(root, n) for n in names)
    for path in sorted(files):
        digest.update(os.path.relpath(path, model_dir).encode())
        with fileio.open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def find_pushed_version(model_dir: str, base_directory: str) -> Optional[str]:
    """The newest version folder of `base_directory` that holds the same model, or None."""
    if not fileio.isdir(base_directory):
        return None
    target = saved_model_digest(model_dir)
    for version in sorted(fileio.listdir(base_directory), reverse=True):
        candidate = os.path.join(base_directory, version.rstrip("/"))
        if fileio.exists(os.path.join(candidate, "saved_model.pb")) and saved_model_digest(candidate) == target:
            return candidate
    return None


class Executor(pusher_executor.Executor):
    """TFX's Pusher, made idempotent for filesystem destinations."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") == "filesystem" and self.CheckBlessing(input_dict):
            existing = find_pushed_version(self.GetModelPath(input_dict), destination.filesystem.base_directory)
            if existing:
                model_push = artifact_utils.get_single_instance(
                    output_dict[standard_component_specs.PUSHED_MODEL_KEY]
                )
                logging.info("This model is already served from %s; not pushing a copy.", existing)
                self._MarkPushed(model_push, pushed_destination=existing, pushed_version=os.path.basename(existing))
                return
        super().Do(input_dict, output_dict, exec_properties)
