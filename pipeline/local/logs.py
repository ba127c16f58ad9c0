"""Where a local run's log records go: held in memory until the run knows its log file, then the file
``OUTPUT/logs/run-<time>.log``; and the release of what Beam still holds once a command is done."""

from __future__ import annotations

import gc
import logging
import logging.handlers
import os
import sys
import time

LOG_DIR = "logs"


def hold_records() -> None:
    """Every log record (and ``warnings.warn``) waits in memory until `log_to_file` names the file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    root.addHandler(logging.handlers.MemoryHandler(capacity=1 << 20, flushLevel=logging.CRITICAL + 1))
    logging.captureWarnings(True)


def log_to_file(output_dir: str) -> str:
    """Sends every log record (absl, Beam, TensorFlow's Python side) to OUTPUT/logs/run-<time>.log too,
    the records `hold_records` kept first."""
    directory = os.path.join(output_dir, LOG_DIR)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, time.strftime("run-%Y%m%d-%H%M%S.log"))
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for early in [h for h in root.handlers if isinstance(h, logging.handlers.MemoryHandler)]:
        early.setTarget(handler)
        early.flush()
        root.removeHandler(early)
    root.addHandler(handler)
    return path


class _Released:
    """What Beam's process-wide cache keeps alive instead of the last model the Evaluator loaded."""


RELEASE_TAG = "mmoe-pipeline-released"


def release_loaded_models() -> None:
    """Frees the SavedModels the Evaluator loaded into Beam's process-wide cache (``shared.Shared``)
    while TensorFlow is still whole: freed during interpreter shutdown instead, each of their
    functions' ``__del__`` prints "Exception ignored ... TypeError" on stderr.

    The cache holds one strong reference, to the object acquired last; acquiring a small one of our own
    (Beam's public ``Shared.acquire``) lets the model go."""
    if "apache_beam.utils.shared" in sys.modules:
        from apache_beam.utils import shared

        shared.Shared().acquire(_Released, tag=RELEASE_TAG)
    gc.collect()
