"""Checks that run before the first component starts: each bad input ends in one message.

Beam, tf.Transform and the Trainer report bad data as long tracebacks from deep inside
(``KeyError: "workclass [while running 'Run[Transform]']"``, ``Unable to convert a
LargeListArray to a tensor``). What can be checked cheaply is checked here first, on the
files ExampleGen will read (the newest span or spans, resolved as ExampleGen resolves them),
and named: the spec against the schema, each split's files (present, non-empty, gzip when
named .gz, readable as UTF-8), the header against the spec's columns (or, without a header,
the field count), the separator, every row's field count, numbers in numeric columns (finite,
integers where the schema says INT) and missing values where a column's policy is
``error``. Rows are read by ``components.example_gen.read_rows``, exactly as ExampleGen reads
them (the spec's format: separator, stripped characters, missing-value markers). Each error
names the file, the row (1-based) and the column.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.io import fileio

from components import example_gen
from components.schema import check_schema, load_schema
from components.spec import ColumnKind, DatasetSpec, MissingPolicy

_SEPARATORS = (",", ";", "\t", "|")


class PreflightError(ValueError):
    """Input that would fail inside the pipeline. The message names the file, row and column."""


@dataclasses.dataclass(frozen=True)
class SplitSummary:
    """What preflight read of one split: its files and data rows."""

    split: str
    files: List[str]
    rows: int


_GZIP_MAGIC = b"\x1f\x8b"


def _rows(path: str, spec: DatasetSpec) -> Iterator[Tuple[int, List[str]]]:
    if path.endswith(".gz"):
        with fileio.open(path, "rb") as f:
            if f.read(2) != _GZIP_MAGIC:
                raise PreflightError(f"{path}: named .gz but is not gzip-compressed; rename it without .gz, "
                                     "or compress it with gzip.")
    try:
        yield from example_gen.read_numbered_rows(path, spec.format)
    except UnicodeDecodeError as e:
        raise PreflightError(f"{path}: not UTF-8 text ({e}); is it a CSV file?") from None
    except (OSError, EOFError) as e:
        raise PreflightError(f"{path}: cannot be read: {e}") from None
    except csv.Error as e:
        raise PreflightError(f"{path}: not valid CSV: {e}") from None


def _one_column(path: str, line: int, fields: Sequence[str], spec: DatasetSpec, what: str) -> None:
    """A row read as one field where the spec has several: the separator is not the spec's."""
    expected = len(spec.column_names)
    if len(fields) != 1 or expected == 1:
        return
    separator = spec.format.separator
    guess = next((s for s in _SEPARATORS if s != separator and s in fields[0]), None)
    hint = f"; it looks separated by {guess!r}: set `format: {{separator: {guess!r}}}` in the spec" if guess else ""
    raise PreflightError(
        f"{path}:{line}: the {what} is one column, the spec has {expected}: the spec's format says fields are "
        f"separated by {separator!r}{hint}."
    )


def _check_header(path: str, line: int, header: Sequence[str], spec: DatasetSpec) -> None:
    expected = list(spec.column_names)
    if list(header) == expected:
        return
    _one_column(path, line, header, spec, "header")
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if missing or extra:
        raise PreflightError(
            f"{path}:{line}: the header does not name the spec's columns: missing {missing}, not in the spec "
            f"{extra}; the columns found are {list(header)}. Fix the header or the spec's columns."
        )
    raise PreflightError(
        f"{path}:{line}: the header lists the spec's columns in another order ({list(header)}); "
        "list them in the spec in file order."
    )


def _numeric_error(value: str, int_type: bool):
    try:
        number = float(value)
    except ValueError:
        return "is not a number"
    if not math.isfinite(number):
        return "is not a finite number (NaN and infinities cannot be z-scored)"
    if int_type and not number.is_integer():
        return "is not an integer, and the schema says INT"
    if int_type and not value.strip().lstrip("+-").isdigit():
        return "is not written as an integer, and the schema says INT"
    return None


def check_split_files(split: str, files: Sequence[str], spec: DatasetSpec,
                      schema: Optional[schema_pb2.Schema]) -> SplitSummary:
    """Checks every row of `files` (one input split) as ExampleGen and Transform will read them
    (without a schema, numbers are not checked to be integers)."""
    if not files:
        raise PreflightError(f"split {split!r} has no files; put its CSV files under {split}/.")
    headerless = not spec.format.header
    types = {f.name: f.type for f in schema.feature} if schema else {}
    columns = {c.name: c for c in spec.columns}
    rows = 0
    for path in files:
        if fileio.stat(path).length == 0:
            raise PreflightError(f"{path}: the file is empty; ExampleGen needs data rows"
                                 f"{'' if headerless else ' after a header row'}.")
        reader = _rows(path, spec)
        if headerless:
            header = list(spec.column_names)
        else:
            header_line, header = next(reader, (None, None))
            if header is None:
                raise PreflightError(f"{path}: no header row; the first line must name the columns.")
            _check_header(path, header_line, header, spec)
        numeric = [(i, name) for i, name in enumerate(header) if columns[name].kind is ColumnKind.NUMERIC]
        required = [(i, name) for i, name in enumerate(header)
                    if columns[name].missing.policy is MissingPolicy.ERROR]
        try:
            for line, fields in example_gen.data_rows(reader, len(header), path, spec.format.separator):
                for i, name in required:
                    if not fields[i].strip():
                        raise PreflightError(
                            f"{path}:{line}: column {name!r} is empty, and the spec says missing: error for it; "
                            "fill the value, or declare another policy (mean, median, {constant: V})."
                        )
                for i, name in numeric:
                    value = fields[i].strip()
                    problem = value and _numeric_error(value, types.get(name) == schema_pb2.INT)
                    if problem:
                        raise PreflightError(
                            f"{path}:{line}: column {name!r} value {value!r} {problem}; the spec says it is numeric. "
                            "Fix the value, or make the column categorical in the spec and the schema."
                        )
                rows += 1
        except example_gen.RowWidthError as e:
            line, fields = e.line, e.fields
            if headerless and rows == 0:
                _one_column(path, line, fields, spec, "first row")
                raise PreflightError(
                    f"{path}:{line}: {len(fields)} fields, the spec has {len(header)} columns "
                    f"({', '.join(header)}); the spec's format says the files have no header, so every "
                    "row must hold one value per spec column, in order."
                ) from None
            what = "truncated" if len(fields) < len(header) else "too long"
            raise PreflightError(
                f"{path}:{line}: {len(fields)} fields, {'the spec has' if headerless else 'the header has'} "
                f"{len(header)} (the row is {what}); fix or remove the row."
            ) from None
    if rows == 0:
        raise PreflightError(f"split {split!r} ({', '.join(files)}) holds no data rows"
                             f"{'' if headerless else ', only a header'}.")
    return SplitSummary(split, list(files), rows)


def split_files(data_root: str, split: str) -> List[str]:
    return sorted(p for p in fileio.glob(os.path.join(data_root, split, "*")) if not fileio.isdir(p))


def check_inputs(spec: DatasetSpec, schema_path: Optional[str], data_root: str, span_folder: Optional[str] = None,
                 num_spans: int = 1) -> Tuple[example_gen.SpanSelection, Dict[str, SplitSummary]]:
    """Every check of this module, for a local run on `data_root` (the spans ExampleGen will read);
    returns the spans and the rows per input split. Without `schema_path` (the schema is inferred)
    the spec is checked against the files only."""
    schema = None
    if schema_path:
        schema = load_schema(schema_path)
        check_schema(schema, spec, f"schema file {schema_path!r}")
    try:
        selection = example_gen.resolve_spans(data_root, example_gen.split_patterns(spec, span_folder), num_spans,
                                              span_folder)
    except example_gen.SpanError as e:
        raise PreflightError(str(e)) from None
    except ValueError as e:  # TFX's own matching: "Cannot find matching for split ..."
        where = "ready train/, eval/ and test/ folders" if not spec.split.in_pipeline else "the files to split"
        raise PreflightError(f"{data_root}: {e}; the spec's split says the data root holds {where}.") from None
    return selection, {
        split: check_split_files(split, [f for p in patterns for f in example_gen.matching_files(data_root, p)],
                                 spec, schema)
        for split, patterns in selection.patterns.items()
    }


def infer_schema(spec: DatasetSpec, data_path: str, out_path: str):
    """Infers a schema from the CSV file (or folder of CSV files) at `data_path` with TFDV, checks it
    against `spec` and writes it as text to `out_path`; returns (features, rows)."""
    import tensorflow_data_validation as tfdv
    from tfx.utils import io_utils

    folder, name = os.path.split(os.path.normpath(data_path))
    files = split_files(folder, name) if fileio.isdir(data_path) else [data_path]
    rows = check_split_files(name, files, spec, None).rows
    with tempfile.TemporaryDirectory() as tmp:
        # The rows as ExampleGen reads them (the spec's separator, stripped values, missing markers
        # emptied), rewritten as plain CSV with a header for TFDV.
        cleaned = os.path.join(tmp, "rows.csv")
        with open(cleaned, "w", newline="") as f:
            writer = csv.writer(f)
            for index, path in enumerate(files):
                reader = example_gen.read_rows(path, spec.format)
                header = next(reader) if spec.format.header else list(spec.column_names)
                if index == 0:
                    writer.writerow(header)
                writer.writerows(r for r in reader if r and r != [""])
        statistics = tfdv.generate_statistics_from_csv(data_location=cleaned)
    inferred = tfdv.infer_schema(statistics, infer_feature_shape=False)
    check_schema(inferred, spec, f"the schema inferred from {data_path}")
    io_utils.write_pbtxt_file(out_path, inferred)
    return len(inferred.feature), rows
