"""The schema the pipeline validates and transforms with: the curated one, checked against the spec
and adjusted to the spec's missing-value policies.

* Every spec column must be in the schema with a compatible type (numeric: INT or FLOAT;
  categorical: BYTES or INT), or `SchemaMismatch` names the column, the schema file and the
  fix, before any Beam job starts (`check_schema`).
* Spec columns lose their fixed ``shape`` (and get ``value_count`` max 1 instead):
  tf.Transform then reads them as ``VarLenFeature`` and a missing value reaches the
  ``preprocessing_fn`` (which imputes it) instead of crashing the analyzers.
* A column with a declared ``missing`` policy other than ``error`` may be absent or empty
  (``presence.min_fraction`` 0, ``value_count.min`` 0); the others keep the curated presence
  and need one value (``value_count.min`` 1), so ExampleValidator reports their missing
  values (CsvExampleGen writes an empty cell as a feature with no value) and the push gate
  stops.

`SpecSchema` is the pipeline's component for this (it replaces ImportSchemaGen and writes
``schema.pbtxt`` exactly where ImportSchemaGen would). Without a curated schema it takes
SchemaGen's, inferred from the data's statistics, and says so.
"""

import json
import logging
import os
from typing import Dict, List, Mapping, Sequence

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.drift import read_statistics
from components.names import SCHEMA_FILE, STATISTICS_FILE
from components.spec import ColumnKind, DatasetSpec

# Custom property of SpecSchema's Schema (JSON): the columns an inferred schema lets the default policy
# fill (the schema folder itself must hold schema.pbtxt alone: TFX reads "the only file" in it).
FILLED_PROPERTY = "filled_missing"
TRAIN_SPLIT = "train"

_COMPATIBLE = {
    ColumnKind.NUMERIC: (schema_pb2.INT, schema_pb2.FLOAT),
    ColumnKind.CATEGORICAL: (schema_pb2.BYTES, schema_pb2.INT),
    ColumnKind.IGNORE: (schema_pb2.BYTES, schema_pb2.INT, schema_pb2.FLOAT),
}


class SchemaMismatch(ValueError):
    """The spec and the schema disagree on a column."""


def load_schema(path: str) -> schema_pb2.Schema:
    """Reads a text schema, with an error that names the file."""
    if not fileio.exists(path) or fileio.isdir(path):
        raise SchemaMismatch(f"schema file {path!r} does not exist; pass the path of a schema.pbtxt (--schema).")
    try:
        return io_utils.SchemaReader().read(path)
    except Exception as e:  # text_format.ParseError and friends: the message is the verdict
        raise SchemaMismatch(f"schema file {path!r} is not a text-format Schema proto: {e}") from None


def check_schema(schema: schema_pb2.Schema, spec: DatasetSpec, where: str) -> None:
    """Raises `SchemaMismatch` for the first spec column missing from `schema` or of an incompatible type."""
    features: Dict[str, schema_pb2.Feature] = {f.name: f for f in schema.feature}
    for column in spec.columns:
        feature = features.get(column.name)
        if feature is None:
            raise SchemaMismatch(
                f"{where}: spec {spec.name!r} column {column.name!r} is not in the schema (its features are "
                f"{sorted(features)}); add it to the schema, or rename the column in the spec."
            )
        if feature.type not in _COMPATIBLE[column.kind]:
            allowed = " or ".join(schema_pb2.FeatureType.Name(t) for t in _COMPATIBLE[column.kind])
            raise SchemaMismatch(
                f"{where}: column {column.name!r} is {column.kind.value} in spec {spec.name!r} but "
                f"{schema_pb2.FeatureType.Name(feature.type)} in the schema; expected {allowed}. Change the "
                "column's kind in the spec or its type in the schema."
            )


def derive_schema(schema: schema_pb2.Schema, spec: DatasetSpec, relaxed: Sequence[str] = ()) -> schema_pb2.Schema:
    """A copy of `schema` with the spec's columns made variable-length, and absent where the spec
    allows (and for the `relaxed` columns: those `default_fills` fills)."""
    derived = schema_pb2.Schema()
    derived.CopyFrom(schema)
    columns = {c.name: c for c in spec.columns}
    for feature in derived.feature:
        column = columns.get(feature.name)
        if column is None:
            continue
        feature.ClearField("shape")
        # CsvExampleGen writes an empty cell as the feature with no value: without a shape, only
        # value_count tells TFDV that a value must be there.
        feature.value_count.max = 1
        if column.missing.allows_absence or column.name in relaxed:
            feature.presence.min_fraction = 0.0
            feature.presence.min_count = 0
            feature.value_count.min = 0
        else:
            feature.value_count.min = 1
    return derived


def relaxed_columns(spec: DatasetSpec) -> List[str]:
    return [c.name for c in spec.columns if c.missing.allows_absence]


def missing_fractions(statistics_uri: str, split: str = TRAIN_SPLIT) -> Dict[str, float]:
    """Per feature, the fraction of `split`'s examples without a value (absent, or an empty cell:
    CsvExampleGen writes the feature with no value), from a StatisticsGen artifact."""
    path = os.path.join(statistics_uri, f"Split-{split}", STATISTICS_FILE)
    (dataset,) = read_statistics(path).datasets
    fractions = {}
    for feature in dataset.features:
        stats = feature.num_stats if feature.HasField("num_stats") else feature.string_stats
        common = stats.common_stats
        count = dataset.num_examples
        if count:
            # Single-valued columns: each example holds 0 or 1 value.
            fractions[feature.path.step[0]] = 1.0 - min(common.tot_num_values, count) / count
    return fractions


def default_fills(spec: DatasetSpec, fractions: Mapping[str, float]) -> List[dict]:
    """The columns with missing values that the spec says nothing about (no `missing:` line), label
    columns aside: with an inferred schema they get the default policy instead of an anomaly.
    For each: the fraction missing, what fills it, and the spec line that makes it explicit."""
    labels = set(spec.label_columns)
    filled = []
    for column in spec.columns:
        fraction = fractions.get(column.name, 0.0)
        if column.name in labels or column.missing.declared or column.kind is ColumnKind.IGNORE or fraction <= 0:
            continue
        numeric = column.kind is ColumnKind.NUMERIC
        filled.append({
            "column": column.name, "fraction_missing": round(fraction, 6),
            "filled_with": "the train split's mean" if numeric else "'' (the out-of-vocabulary bucket)",
            "spec_line": "missing: mean" if numeric else "missing: {constant: ''}",
        })
    return filled


@component
def SpecSchema(  # noqa: N802 (TFX component names are classes)
    schema: OutputArtifact[standard_artifacts.Schema],
    schema_file: Parameter[str],
    spec_json: Parameter[str],
    inferred: InputArtifact[standard_artifacts.Schema] = None,
    statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
) -> None:
    """The curated schema at `schema_file` (or, when it is empty, SchemaGen's `inferred` one),
    checked against the spec and adjusted to it.

    With an inferred schema, the missing values the data already holds are no anomaly: each such
    column the spec says nothing about gets the default policy (numeric: the train mean;
    categorical: the out-of-vocabulary bucket), is logged, and is listed in the schema artifact's
    `FILLED_PROPERTY` with its fraction and the spec line that makes the choice explicit. A
    curated schema keeps them anomalies unless the spec declares a policy."""
    spec = DatasetSpec.from_dict(json.loads(spec_json), where="SpecSchema spec_json")
    if schema_file:
        source = f"schema file {schema_file!r}"
        base = load_schema(schema_file)
    elif inferred is not None:
        source = f"the schema SchemaGen inferred from the data ({inferred.uri})"
        base = load_schema(os.path.join(inferred.uri, SCHEMA_FILE))
        logging.warning("SpecSchema: no curated schema: using %s. Review it, curate it and pass it next time "
                        "(`mmoe-pipeline schema` writes it).", source)
    else:
        raise SchemaMismatch("SpecSchema: neither a schema file nor an inferred schema; pass --schema or let the "
                             "pipeline infer one (PipelineConfig.schema_path=None).")
    check_schema(base, spec, source)
    filled = default_fills(spec, missing_fractions(statistics.uri)) if not schema_file and statistics else []
    for fill in filled:
        logging.warning("SpecSchema: %s is empty in %.1f%% of the train rows; filled with %s (the spec's default; "
                        "write `%s` for column %s to make it explicit).", fill["column"],
                        100 * fill["fraction_missing"], fill["filled_with"], fill["spec_line"], fill["column"])
    derived = derive_schema(base, spec, [f["column"] for f in filled])
    io_utils.write_pbtxt_file(os.path.join(schema.uri, SCHEMA_FILE), derived)
    schema.set_string_custom_property(FILLED_PROPERTY, json.dumps(filled, sort_keys=True))
    logging.info("SpecSchema: %s checked against spec %r; may be absent: %s.", source, spec.name,
                 relaxed_columns(spec) or "no column")
