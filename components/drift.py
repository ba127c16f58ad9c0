"""SpanDrift: the statistics of this run's span against the previous span's.

TFX 1.16's ExampleValidator takes no previous statistics, and TFX's way to find them (a
Resolver over earlier StatisticsGen outputs, as ``DistributionValidator`` expects) does not
run on open-source Kubeflow Pipelines (no resolver executors:
``backend/src/v2/compiler/argocompiler/dag.go``). So `SpanDrift` keeps its own history: each
run writes the train split's statistics to ``<history_dir>/span-<N>/FeatureStats.pb`` and
compares with the newest span before N there, with TFDV's own drift check
(``tfdv.validate_statistics(previous_statistics=...)`` and a ``drift_comparator`` with a
``jensen_shannon_divergence`` threshold on every spec column, from the spec:
``drift_threshold`` and each column's ``drift``; ``drift: off`` leaves a column out).

Its output is an ``ExampleAnomalies`` artifact with the drift anomalies only (TFDV's
``SchemaDiff.pb`` of the train split, with ``drift_skew_info``: the divergence and the
threshold per feature). ServingCheck reads it: a drifted feature withholds the blessing, so
the model is trained but not pushed, and ``decision.json`` names the feature, the divergence,
the threshold and both spans.
"""

import dataclasses
import json
import logging
import os
import re
from typing import List, Optional, Tuple

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components.example_gen import spans_of
from components.names import ANOMALIES_FILE, SCHEMA_FILE, STATISTICS_FILE
from components.spec import ColumnKind, DatasetSpec

DRIFT_SPLIT = "train"
# Custom properties of the output (not "span": ExampleAnomalies has a property of that name).
SPAN_PROPERTY = "current_span"
PREVIOUS_SPAN_PROPERTY = "previous_span"  # -1: no earlier span in the history
_HISTORY_ENTRY = re.compile(r"^span-(\d+)$")
DRIFT_TYPES = ("COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "COMPARATOR_L_INFTY_HIGH",
               "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH")


@dataclasses.dataclass(frozen=True)
class Drift:
    """One feature whose distribution moved beyond its threshold since the previous span."""

    feature: str
    divergence: float
    threshold: float
    span: int
    previous_span: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return (f"{self.feature}: Jensen-Shannon divergence {self.divergence:.3f} > {self.threshold:g} "
                f"(span {self.span} against span {self.previous_span})")


def drift_schema(schema: schema_pb2.Schema, spec: DatasetSpec) -> schema_pb2.Schema:
    """`schema` with a Jensen-Shannon divergence drift comparator on every spec column."""
    with_drift = schema_pb2.Schema()
    with_drift.CopyFrom(schema)
    columns = {c.name: c for c in spec.columns if c.kind is not ColumnKind.IGNORE}
    for feature in with_drift.feature:
        threshold = spec.drift_threshold_of(feature.name) if feature.name in columns else None
        if threshold is not None:
            feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
    return with_drift


def history_spans(history_dir: str) -> List[int]:
    if not fileio.isdir(history_dir):
        return []
    found = (_HISTORY_ENTRY.match(e.rstrip("/")) for e in fileio.listdir(history_dir))
    return sorted(int(m.group(1)) for m in found if m)


def _statistics_path(root: str) -> str:
    return os.path.join(root, STATISTICS_FILE)


def read_statistics(path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    with fileio.open(path, "rb") as f:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())


def previous_statistics(history_dir: str, span: int) -> Tuple[int, Optional[statistics_pb2.DatasetFeatureStatisticsList]]:
    """(span, statistics) of the newest span before `span` in the history, or (-1, None)."""
    earlier = [s for s in history_spans(history_dir) if s < span]
    if not earlier:
        return -1, None
    return earlier[-1], read_statistics(_statistics_path(os.path.join(history_dir, f"span-{earlier[-1]}")))


def compare(current: statistics_pb2.DatasetFeatureStatisticsList,
            previous: statistics_pb2.DatasetFeatureStatisticsList,
            schema: schema_pb2.Schema, spec: DatasetSpec) -> anomalies_pb2.Anomalies:
    """TFDV's drift anomalies of `current` against `previous` (other anomaly types removed: those
    are ExampleValidator's)."""
    import tensorflow_data_validation as tfdv

    found = tfdv.validate_statistics(current, drift_schema(schema, spec), previous_statistics=previous)
    drift = anomalies_pb2.Anomalies()
    drift.CopyFrom(found)
    drift.ClearField("anomaly_info")
    drift.ClearField("dataset_anomaly_info")
    for feature, info in found.anomaly_info.items():
        reasons = [r for r in info.reason if anomalies_pb2.AnomalyInfo.Type.Name(r.type) in DRIFT_TYPES]
        if reasons:
            kept = drift.anomaly_info[feature]
            kept.CopyFrom(info)
            del kept.reason[:]
            kept.reason.extend(reasons)
    return drift


def drifts(anomalies: anomalies_pb2.Anomalies, span: int, previous_span: int) -> List[Drift]:
    """The features over their threshold, with the divergence TFDV measured."""
    over = set(anomalies.anomaly_info)
    found = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for m in info.drift_measurements:
            if feature in over and m.value > m.threshold:
                found.append(Drift(feature, float(m.value), float(m.threshold), span, previous_span))
    return sorted(found, key=lambda d: d.feature)


def read_drift(drift_uri: str, span: int, previous_span: int) -> List[Drift]:
    path = os.path.join(drift_uri, f"Split-{DRIFT_SPLIT}", ANOMALIES_FILE)
    if not fileio.exists(path):
        raise FileNotFoundError(f"SpanDrift wrote no {ANOMALIES_FILE} under {drift_uri}; was it made by SpanDrift?")
    with fileio.open(path, "rb") as f:
        return drifts(anomalies_pb2.Anomalies.FromString(f.read()), span, previous_span)


def drift_of(drift_artifact) -> List[Drift]:
    """The drifted features recorded in a SpanDrift output."""
    previous = drift_artifact.get_int_custom_property(PREVIOUS_SPAN_PROPERTY)
    if previous < 0:
        return []
    return read_drift(drift_artifact.uri, drift_artifact.get_int_custom_property(SPAN_PROPERTY), previous)


@component
def SpanDrift(  # noqa: N802 (TFX component names are classes)
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    drift: OutputArtifact[standard_artifacts.ExampleAnomalies],
    history_dir: Parameter[str],
    spec_json: Parameter[str],
) -> None:
    """Compares the train statistics with the previous span's in `history_dir`, then records them there."""
    spec = DatasetSpec.from_dict(json.loads(spec_json), where="SpanDrift spec_json")
    span = spans_of(examples)[0]
    current_path = _statistics_path(os.path.join(statistics.uri, f"Split-{DRIFT_SPLIT}"))
    current = read_statistics(current_path)
    previous_span, previous = previous_statistics(history_dir, span)
    if previous is None:
        result = anomalies_pb2.Anomalies()
        logging.info("SpanDrift: span %d is the first in %s; nothing to compare with.", span, history_dir)
    else:
        loaded = io_utils.SchemaReader().read(os.path.join(schema.uri, SCHEMA_FILE))
        result = compare(current, previous, loaded, spec)
        found = drifts(result, span, previous_span)
        for d in found:
            logging.warning("SpanDrift: %s; the model will not be pushed.", d)
        if not found:
            logging.info("SpanDrift: span %d against span %d: no column beyond its threshold.", span, previous_span)
    out = os.path.join(drift.uri, f"Split-{DRIFT_SPLIT}")
    fileio.makedirs(out)
    with fileio.open(os.path.join(out, ANOMALIES_FILE), "wb") as f:
        f.write(result.SerializeToString())
    drift.split_names = artifact_utils.encode_split_names([DRIFT_SPLIT])
    drift.set_int_custom_property(SPAN_PROPERTY, span)
    drift.set_int_custom_property(PREVIOUS_SPAN_PROPERTY, previous_span)
    # Record this span's statistics for the next span (a re-run of the same span overwrites them).
    target = os.path.join(history_dir, f"span-{span}")
    fileio.makedirs(target)
    io_utils.copy_file(current_path, _statistics_path(target), overwrite=True)
