"""Object-store URIs (``s3://``, ``gs://``) for TensorFlow, TFX ``fileio`` and Beam.

TensorFlow 2.16 knows ``gs://`` and local paths only; ``s3://`` comes from the
``tensorflow-io`` package (the project's ``s3`` extra), which registers its
filesystem when imported. `enable` imports it when a URI needs it, so that TFX's
``fileio`` (every artifact, data and serving URI in this project), Keras
SavedModel save/load and checkpoints work on ``s3://``. Beam (tf.Transform,
TFDV, TFMA) reads ``s3://`` through ``apache-beam[aws]`` (boto3), from the same
environment.

Configuration is the standard environment, read by the libraries themselves:

* ``S3_ENDPOINT``: the store's endpoint *with* its scheme, e.g.
  ``http://minio-service.kubeflow:9000`` (tensorflow-io's S3 filesystem; it
  reads neither ``AWS_ENDPOINT_URL`` nor ``S3_USE_HTTPS``);
* ``AWS_ENDPOINT_URL``: the same endpoint for boto3 (Beam); `enable` sets it
  from ``S3_ENDPOINT`` when it is not set;
* ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_REGION``).

``minio://`` (Kubeflow's default pipeline root) is a scheme of the Kubeflow
launcher only: no TensorFlow filesystem implements it; use
``s3://BUCKET/...`` with ``S3_ENDPOINT`` pointing at MinIO.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import sys
from typing import Iterable, List, Optional

S3_SCHEME = "s3://"
GCS_SCHEME = "gs://"
REMOTE_SCHEMES = (S3_SCHEME, GCS_SCHEME)
UNSUPPORTED_SCHEMES = ("minio://",)
ENDPOINT_ENV = "S3_ENDPOINT"  # tensorflow-io's S3 filesystem
BOTO_ENDPOINT_ENV = "AWS_ENDPOINT_URL"  # boto3, hence Beam's S3 filesystem
S3_EXTRA_HINT = "pip install 'mmoe-pipeline[s3]' (tensorflow-io and apache-beam[aws], pinned in constraints.txt)"

_enabled = False


class ObjectStoreError(ValueError):
    """A URI that no installed filesystem can open, with what to do about it."""


def is_remote(uri: str) -> bool:
    return str(uri).startswith(REMOTE_SCHEMES)


def check_uri(uri: str, what: str) -> None:
    """Refuses a URI scheme that TensorFlow cannot open (``minio://``), naming `what` it is and the fix."""
    for scheme in UNSUPPORTED_SCHEMES:
        if str(uri).startswith(scheme):
            raise ObjectStoreError(
                f"{what}: received {uri!r}; no TensorFlow filesystem implements {scheme} (it is a scheme of "
                f"the Kubeflow launcher only). Use s3://{uri[len(scheme):]} with {ENDPOINT_ENV} set to the "
                "store's endpoint (for Kubeflow's MinIO: http://minio-service.kubeflow:9000), or gs://."
            )


def enable(uris: Iterable[Optional[str]] = (), environ=os.environ) -> bool:
    """Registers the ``s3://`` filesystem if any of `uris` (or the environment, ``S3_ENDPOINT``)
    needs it; True if it is registered. Raises `ObjectStoreError` naming the extra to install
    when an ``s3://`` URI is given and tensorflow-io is missing."""
    global _enabled
    uris = [u for u in uris if u]
    for uri in uris:
        check_uri(uri, "URI")
    wanted = any(str(u).startswith(S3_SCHEME) for u in uris) or bool(environ.get(ENDPOINT_ENV))
    if _enabled or not wanted:
        return _enabled
    try:
        import tensorflow_io  # noqa: F401  (registers s3:// with tf.io.gfile, hence TFX fileio)
    except ImportError:
        if any(str(u).startswith(S3_SCHEME) for u in uris):
            raise ObjectStoreError(
                f"{', '.join(u for u in uris if u.startswith(S3_SCHEME))}: s3:// needs the s3 extra: "
                f"{S3_EXTRA_HINT}."
            ) from None
        logging.warning("%s is set but tensorflow-io is not installed: s3:// URIs will not open (%s).",
                        ENDPOINT_ENV, S3_EXTRA_HINT)
        return False
    if environ.get(ENDPOINT_ENV) and not environ.get(BOTO_ENDPOINT_ENV):
        environ[BOTO_ENDPOINT_ENV] = environ[ENDPOINT_ENV]  # the same store for Beam's boto3
    _enabled = True
    logging.info("s3:// enabled (tensorflow-io; endpoint %s).", environ.get(ENDPOINT_ENV) or "AWS default")
    return True


def list_dir(uri: str) -> List[str]:
    """The entry names in folder `uri` (no trailing slash), [] if there is none: an object store has
    no empty folders (TFX fileio raises NotFoundError for a prefix without objects, even after
    `fileio.makedirs`)."""
    from tfx.dsl.io import fileio, filesystem

    try:
        return [name.rstrip("/") for name in fileio.listdir(uri)]
    except filesystem.NotFoundError:
        return []


def s3_enabled() -> bool:
    """Whether `enable` registered s3:// in this process."""
    return _enabled


def exit_now(status: int) -> None:
    """Ends the process with `status` once s3:// was used.

    tensorflow-io 0.37's S3 filesystem aborts the interpreter's shutdown ("pure virtual method
    called", exit 134; tensorflow/io#2039, fixed upstream, not released): a process that used it
    flushes its output and leaves with `os._exit`, so that a successful run exits 0.
    """
    if not _enabled:
        sys.exit(status)
    logging.shutdown()
    for stream in {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}:  # replaced ones too (pytest, click)
        if stream is not None:
            stream.flush()
    os._exit(status)  # noqa: SLF001 (see the docstring)


READ_CHUNK = 1 << 20  # bytes per read of a remote file


class _RemoteRaw(io.RawIOBase):
    """A file TFX's fileio opened, read in chunks as a raw stream (for io's buffered and gzip
    readers); `consumed` counts the bytes read from it so far."""

    def __init__(self, handle):
        super().__init__()
        self._handle, self.consumed = handle, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._handle.read(len(buffer))
        buffer[:len(data)] = data
        self.consumed += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


def open_text(path: str):
    """A text reader of `path` (UTF-8, newlines kept for the csv module), gunzipped when it ends in .gz
    (as Beam picks a file's compression from its name); a local path or any URL TFX's fileio reads,
    streamed `READ_CHUNK` bytes at a time."""
    if "://" in path:
        from tfx.dsl.io import fileio

        raw = io.BufferedReader(_RemoteRaw(fileio.open(path, "rb")), READ_CHUNK)
        stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
    else:
        stream = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(stream, encoding="utf-8", newline="")
