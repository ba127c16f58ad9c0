"""A Pusher executor that does not push the same model twice, and never shows a partial one.

With a baseline resolver, re-running an unchanged pipeline (same data, so the
Trainer is served from the cache) re-evaluates the same model against itself,
blesses it again, and TFX's filesystem Pusher would copy it to a new version
directory. This executor first compares the model with the versions already
in the serving directory (a digest of every file of the SavedModel) and, when
it is already there, records that version as the push instead of copying.

A new version is copied into a hidden temporary folder of the serving directory
(``.tmp-<version>-<pid>``, which TF Serving and `ServingBaseline` ignore: not an
integer) and renamed to its version number only once complete, so a reader
polling the directory never sees a version without ``saved_model.pb`` and its
variables (rename is atomic on local and POSIX file systems; on object stores
it is a copy, and the version is still written last). A push killed half-way
leaves only a temporary folder, which the next push removes.

Each pushed version records the data spans it was trained on (ServingCheck's
``spans`` property of the InfraBlessing) in ``assets.extra/data_spans.json``
(TensorFlow Serving ignores ``assets.extra``; the digest above skips that file)
and on the PushedModel artifact.
"""

import hashlib
import json
import logging
import os
import time
from typing import List, Optional, Sequence

from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components import object_store
from components.names import SPANS_PROPERTY, decode_spans, encode_spans

TEMPORARY_PREFIX = ".tmp-"
SPANS_RECORD = os.path.join("assets.extra", "data_spans.json")  # in each pushed version

def saved_model_digest(model_dir: str) -> str:
    """SHA-256 over the relative paths and contents of every file under `model_dir`."""
    digest = hashlib.sha256()
    files = []
    for root, _, names in fileio.walk(model_dir):
        files.extend(os.path.join(root, n) for n in names)
    for path in sorted(files):
        if os.path.relpath(path, model_dir) == SPANS_RECORD:
            continue
        digest.update(os.path.relpath(path, model_dir).encode())
        with fileio.open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def find_pushed_version(model_dir: str, base_directory: str) -> Optional[str]:
    """The newest version folder of `base_directory` that holds the same model, or None."""
    if not fileio.isdir(base_directory):
        return None
    target = saved_model_digest(model_dir)
    for version in sorted(_versions(base_directory), reverse=True):
        candidate = os.path.join(base_directory, str(version))
        if fileio.exists(os.path.join(candidate, "saved_model.pb")) and saved_model_digest(candidate) == target:
            return candidate
    return None


def _versions(base_directory: str):
    return [int(v) for v in object_store.list_dir(base_directory) if v.isdigit()]


def push_atomically(model_dir: str, base_directory: str, version: Optional[int] = None,
                    spans: Sequence[int] = ()) -> str:
    """Copies `model_dir` to `base_directory/<version>` through a temporary folder; returns the version path.

    The version is `version` (default: the current Unix time, as TFX's Pusher), or one more than
    the newest version already there if that is not smaller. Leftover temporary folders of killed pushes are removed.
    """
    fileio.makedirs(base_directory)
    for name in object_store.list_dir(base_directory):
        if name.startswith(TEMPORARY_PREFIX):
            logging.warning("Removing %s, left by a push that did not finish.", os.path.join(base_directory, name))
            fileio.rmtree(os.path.join(base_directory, name))
    existing = _versions(base_directory)
    version = max([int(time.time()) if version is None else version, *(v + 1 for v in existing)])
    final = os.path.join(base_directory, str(version))
    temporary = os.path.join(base_directory, f"{TEMPORARY_PREFIX}{version}-{os.getpid()}")
    io_utils.copy_dir(model_dir, temporary)
    if spans:
        record = os.path.join(temporary, SPANS_RECORD)
        fileio.makedirs(os.path.dirname(record))
        with fileio.open(record, "w") as f:
            f.write(json.dumps({"spans": list(spans)}))
    fileio.rename(temporary, final)
    logging.info("Model written to serving path %s.", final)
    return final


def blessed_spans(input_dict) -> List[int]:
    """The data spans ServingCheck recorded on the InfraBlessing (empty without one)."""
    blessings = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY) or []
    if not blessings or not blessings[0].has_custom_property(SPANS_PROPERTY):
        return []
    return decode_spans(blessings[0].get_string_custom_property(SPANS_PROPERTY))


def pushed_spans(version_dir: str) -> List[int]:
    """The data spans a pushed version was trained on (empty when it does not say)."""
    record = os.path.join(version_dir, SPANS_RECORD)
    if not fileio.exists(record):
        return []
    with fileio.open(record) as f:
        return list(json.loads(f.read())["spans"])


class Executor(pusher_executor.Executor):
    """TFX's Pusher for filesystem destinations: idempotent, and atomic per version."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            super().Do(input_dict, output_dict, exec_properties)
            return
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_dir = self.GetModelPath(input_dict)
        base_directory = destination.filesystem.base_directory
        existing = find_pushed_version(model_dir, base_directory)
        if existing:
            logging.info("This model is already served from %s; not pushing a copy.", existing)
            self._MarkPushed(model_push, pushed_destination=existing, pushed_version=os.path.basename(existing))
            return
        spans = blessed_spans(input_dict)
        pushed = push_atomically(model_dir, base_directory, spans=spans)
        io_utils.copy_dir(model_dir, model_push.uri)
        model_push.set_string_custom_property(SPANS_PROPERTY, encode_spans(spans))
        self._MarkPushed(model_push, pushed_destination=pushed, pushed_version=os.path.basename(pushed))
