"""ServingCheck: the push gate beside the Evaluator (a small InfraValidator that needs no Docker).

It blesses the model only when both hold:

* the model serves: a handful of raw tf.Examples from the eval split (labels
  removed, as serving traffic has none) go through ``serving_default`` and every
  task returns a finite value (a probability in [0, 1] for binary tasks) for
  every example;
* the data is clean: ExampleValidator found no anomaly on any split (train, eval,
  test) against the schema, except the types the spec lists in
  ``allowed_anomalies``, and no column drifted beyond its threshold since the
  previous span (`components.drift.SpanDrift`). Training still runs on such data,
  so the user can look at the model; it is just never pushed.

It records the spans the data came from on its blessing (``spans``), where the
Pusher finds them.

The Pusher takes its ``InfraBlessing`` next to the Evaluator's blessing, so this
gate holds on every orchestrator, Kubeflow included.
"""


import dataclasses
import json
import logging
import os
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components.drift import Drift, drift_of
from components.example_gen import spans_of
from components.names import ANOMALIES_FILE, EXAMPLES_INPUT, SERVING_SIGNATURE, SPANS_PROPERTY, encode_spans
from components.spec import DatasetSpec
from heads import head_for

BLESSED_PROPERTY = "blessed"  # what the Pusher reads on an InfraBlessing
RESULT_FILE = "serving_check.json"


@dataclasses.dataclass(frozen=True)
class DataAnomaly:
    """One anomaly ExampleValidator found: which feature, in which split, of what type, and why."""

    feature: str
    split: str
    types: Tuple[str, ...]
    short_description: str
    description: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.feature} in {self.split}: {self.short_description} ({self.description})"


def read_anomalies(anomalies_uri: str, split_names: Sequence[str]) -> List[DataAnomaly]:
    """Every anomaly of every split of an ExampleAnomalies artifact (empty if the data is clean)."""
    found = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        if not fileio.exists(path):
            raise FileNotFoundError(
                f"ExampleValidator wrote no {ANOMALIES_FILE} for split {split!r} under {anomalies_uri}; "
                "was the artifact produced by TFX's ExampleValidator?"
            )
        with fileio.open(path, "rb") as f:
            anomalies = anomalies_pb2.Anomalies.FromString(f.read())
        infos = sorted(anomalies.anomaly_info.items())
        if anomalies.HasField("dataset_anomaly_info"):
            infos.append(("(dataset)", anomalies.dataset_anomaly_info))
        found.extend(DataAnomaly(
            feature=feature, split=split,
            types=tuple(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason),
            short_description=info.short_description, description=info.description,
        ) for feature, info in infos)
    return found


def blocking_anomalies(found: Sequence[DataAnomaly], allowed_types: Sequence[str]) -> List[DataAnomaly]:
    """The anomalies that stop the push: those with a reason whose type the spec does not allow."""
    allowed = set(allowed_types)
    return [a for a in found if not a.types or any(t not in allowed for t in a.types)]


@dataclasses.dataclass(frozen=True)
class ServingCheckResult:
    """Whether the model served every example, and per task what went wrong."""

    num_examples: int
    failures: dict  # task -> reason
    anomalies: Tuple[DataAnomaly, ...] = ()  # the data anomalies that stop the push
    drift: Tuple[Drift, ...] = ()  # the columns that drifted since the previous span
    spans: Tuple[int, ...] = ()  # the spans the data came from, newest first

    @property
    def ok(self) -> bool:
        return self.num_examples > 0 and not self.failures and not self.anomalies and not self.drift

    def to_dict(self) -> dict:
        return {"ok": self.ok, "num_examples": self.num_examples, "failures": self.failures,
                "anomalies": [a.to_dict() for a in self.anomalies], "drift": [d.to_dict() for d in self.drift],
                "spans": list(self.spans)}


def raw_examples(examples_uri: str, split: str, spec: DatasetSpec, limit: int) -> List[bytes]:
    """Up to `limit` serialized tf.Examples of `split`, with the label columns removed."""
    files = sorted(fileio.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
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
        # The traceback goes to the log; the decision keeps the message.
        logging.exception("ServingCheck: the model at %s failed to load or serve %d raw examples.", model_dir,
                          len(serialized))
        return ServingCheckResult(len(serialized), {t.name: f"serving failed: {type(e).__name__}: {e}" for t in spec.tasks})
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    for task in spec.tasks:
        problem = head_for(task).serving_problem(arrays, len(serialized))
        if problem:
            failures[task.name] = problem
    return ServingCheckResult(len(serialized), failures)


@component
def ServingCheck(  # noqa: N802 (TFX component names are classes)
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    drift: InputArtifact[standard_artifacts.ExampleAnomalies],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    spec_json: Parameter[str],
    split: Parameter[str] = "eval",
    num_examples: Parameter[int] = 16,
) -> None:
    """Blesses `model` when serving_default answers every task for raw `examples`, the data
    has no anomaly the spec does not allow and no column drifted since the previous span."""
    spec = DatasetSpec.from_dict(json.loads(spec_json), where="ServingCheck spec_json")
    serialized = raw_examples(examples.uri, split, spec, num_examples)
    result = check_serving(path_utils.serving_model_path(model.uri), serialized, spec)
    found = read_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    result = dataclasses.replace(result, anomalies=tuple(blocking_anomalies(found, spec.allowed_anomalies)),
                                 drift=tuple(drift_of(drift)), spans=tuple(spans_of(examples)))
    for anomaly in result.anomalies:
        logging.warning("ServingCheck: data anomaly, the model will not be pushed: %s", anomaly)
    for moved in result.drift:
        logging.warning("ServingCheck: data drift, the model will not be pushed: %s", moved)
    blessing.set_int_custom_property(BLESSED_PROPERTY, int(result.ok))
    blessing.set_string_custom_property(SPANS_PROPERTY, encode_spans(result.spans))
    fileio.makedirs(blessing.uri)
    with fileio.open(os.path.join(blessing.uri, RESULT_FILE), "w") as f:
        json.dump(result.to_dict(), f, indent=2, sort_keys=True)
    if result.ok:
        logging.info("ServingCheck: %d raw examples served for every task; no data anomaly.", result.num_examples)
    else:
        logging.warning("ServingCheck: model NOT blessed: serving failures %s, %d data anomalies, %d drifted "
                        "columns.", result.failures, len(result.anomalies), len(result.drift))

