"""ServingCheck: a small stand-in for InfraValidator that needs no Docker.

It loads the candidate SavedModel, sends a handful of raw tf.Examples from the
eval split (labels removed, as serving traffic has none) through
``serving_default``, and blesses the model only when every task returns a
finite value (a probability in [0, 1] for binary tasks) for every example. The
Pusher takes its ``InfraBlessing`` next to the Evaluator's blessing.
"""


import dataclasses
import glob
import json
import logging
import os
from typing import List, Sequence

import numpy as np
import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.spec import DatasetSpec, TaskType
from components.names import EXAMPLES_INPUT, SERVING_SIGNATURE

BLESSED_PROPERTY = "blessed"  # what the Pusher reads on an InfraBlessing
RESULT_FILE = "serving_check.json"


@dataclasses.dataclass(frozen=True)
class ServingCheckResult:
    """Whether the model served every example, and per task what went wrong."""

    num_examples: int
    failures: dict  # task -> reason

    @property
    def ok(self) -> bool:
        return self.num_examples > 0 and not self.failures

    def to_dict(self) -> dict:
        return {"ok": self.ok, "num_examples": self.num_examples, "failures": self.failures}


def raw_examples(examples_uri: str, split: str, spec: DatasetSpec, limit: int) -> List[bytes]:
    """Up to `limit` serialized tf.Examples of `split`, with the label columns removed."""
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no files for split {split!r} under {examples_uri}; is the split name right?")
    serialized = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit):
        example = tf.train.Example.FromString(record.numpy())
        for column in spec.label_columns:
            if column in example.features.feature:
                del example.features.feature[column]
        serialized.append(example.SerializeToString())
    return serialized


def check_serving(model_dir: str, serialized: Sequence[bytes], spec: DatasetSpec) -> ServingCheckResult:
    """Sends `serialized` through the model's serving_default and judges each task's outputs."""
    failures = {}
    try:
        signature = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]
        outputs = signature(**{EXAMPLES_INPUT: tf.constant(list(serialized))})
    except Exception as e:  # any failure to load or serve is the verdict, not a crash
        return ServingCheckResult(len(serialized), {t.name: f"serving failed: {type(e).__name__}: {e}" for t in spec.tasks})
    for task in spec.tasks:
        if task.output_name not in outputs:
            failures[task.name] = f"no output {task.output_name!r} (outputs: {sorted(outputs)})"
            continue
        values = np.asarray(outputs[task.output_name]).reshape(len(serialized), -1)
        bad = ~np.isfinite(values).all(axis=1)
        if task.type is TaskType.BINARY:
            bad |= ((values < 0) | (values > 1)).any(axis=1)
        if bad.any():
            what = "a probability in [0, 1]" if task.type is TaskType.BINARY else "a finite value"
            failures[task.name] = (
                f"{int(bad.sum())} of {len(serialized)} examples did not get {what} "
                f"(first bad value: {values[bad][0].tolist()})"
            )
    return ServingCheckResult(len(serialized), failures)


@component
def ServingCheck(  # noqa: N802 (TFX component names are classes)
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    spec_json: Parameter[str],
    split: Parameter[str] = "eval",
    num_examples: Parameter[int] = 16,
) -> None:
    """Blesses `model` when serving_default answers every task for raw `examples`."""
    spec = DatasetSpec.from_dict(json.loads(spec_json), where="ServingCheck spec_json")
    serialized = raw_examples(examples.uri, split, spec, num_examples)
    result = check_serving(path_utils.serving_model_path(model.uri), serialized, spec)
    blessing.set_int_custom_property(BLESSED_PROPERTY, int(result.ok))
    os.makedirs(blessing.uri, exist_ok=True)
    with open(os.path.join(blessing.uri, RESULT_FILE), "w") as f:
        json.dump(result.to_dict(), f, indent=2, sort_keys=True)
    if result.ok:
        logging.info("ServingCheck: %d raw examples served for every task.", result.num_examples)
    else:
        logging.warning("ServingCheck: model NOT blessed: %s", result.failures)

