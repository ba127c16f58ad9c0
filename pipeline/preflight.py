"""Checks that run before the first component starts: each bad input ends in one message.

Beam, tf.Transform and the Trainer report bad data as long tracebacks from deep inside
(``KeyError: "workclass [while running 'Run[Transform]']"``, ``Unable to convert a
LargeListArray to a tensor``). What can be checked cheaply is checked here first, on the
files CsvExampleGen will read, and named: the spec against the schema, each split's files
(present, non-empty, gzip when named .gz, readable as UTF-8), the header against the
spec's columns, the separator, every row's field count, numbers in numeric columns (finite,
integers where the schema says INT) and missing values where a column's policy is
``error``. Each error names the file, the row (1-based, header = row 1) and the column.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import math
import os
from typing import Dict, Iterator, List, Optional, Sequence

from tensorflow_metadata.proto.v0 import schema_pb2

from components import census
from components.schema import check_schema, load_schema
from components.spec import ColumnKind, DatasetSpec, MissingPolicy

# What CsvExampleGen reads: files with a header, fields separated by ',', standard CSV quoting.
SEPARATOR = ","
_OTHER_SEPARATORS = (";", "\t", "|")


class PreflightError(ValueError):
    """Input that would fail inside the pipeline. The message names the file, row and column."""


@dataclasses.dataclass(frozen=True)
class SplitSummary:
    """What preflight read of one split: its files and data rows."""

    split: str
    files: List[str]
    rows: int


_GZIP_MAGIC = b"\x1f\x8b"


def _rows(path: str) -> Iterator[List[str]]:
    if path.endswith(".gz"):
        with open(path, "rb") as f:
            if f.read(2) != _GZIP_MAGIC:
                raise PreflightError(f"{path}: named .gz but is not gzip-compressed; rename it without .gz, "
                                     "or compress it with gzip.")
    try:
        with census.open_text(path) as f:
            yield from csv.reader(f, delimiter=SEPARATOR)
    except UnicodeDecodeError as e:
        raise PreflightError(f"{path}: not UTF-8 text ({e}); is it a CSV file?") from None
    except (OSError, EOFError) as e:
        raise PreflightError(f"{path}: cannot be read: {e}") from None
    except csv.Error as e:
        raise PreflightError(f"{path}: not valid CSV: {e}") from None


def _check_header(path: str, header: Sequence[str], spec: DatasetSpec) -> None:
    expected = list(spec.column_names)
    if list(header) == expected:
        return
    if len(header) == 1 and len(expected) > 1:
        joined = header[0] if header else ""
        guess = next((s for s in _OTHER_SEPARATORS if s in joined), None)
        hint = f"; it looks separated by {guess!r}" if guess else ""
        raise PreflightError(
            f"{path}:1: the header has 1 column, the spec {len(expected)}: fields must be separated by "
            f"{SEPARATOR!r}{hint}. Rewrite the file with commas."
        )
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if missing or extra:
        raise PreflightError(
            f"{path}:1: the header does not name the spec's columns: missing {missing}, not in the spec "
            f"{extra}; the columns found are {list(header)}. Fix the header or the spec's columns."
        )
    raise PreflightError(
        f"{path}:1: the header lists the spec's columns in another order ({list(header)}); "
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
    """Checks every row of `files` (one split) as CsvExampleGen and Transform will read them
    (without a schema, numbers are not checked to be integers)."""
    if not files:
        raise PreflightError(f"split {split!r} has no files; put its CSV files under {split}/.")
    types = {f.name: f.type for f in schema.feature} if schema else {}
    columns = {c.name: c for c in spec.columns}
    rows = 0
    for path in files:
        if os.path.getsize(path) == 0:
            raise PreflightError(f"{path}: the file is empty; CsvExampleGen needs a header row and data rows.")
        reader = _rows(path)
        header = next(reader, None)
        if header is None:
            raise PreflightError(f"{path}: no header row; the first line must name the columns.")
        _check_header(path, header, spec)
        numeric = [(i, name) for i, name in enumerate(header) if columns[name].kind is ColumnKind.NUMERIC]
        required = [(i, name) for i, name in enumerate(header)
                    if columns[name].missing.policy is MissingPolicy.ERROR]
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != len(header):
                what = "truncated" if len(fields) < len(header) else "too long"
                raise PreflightError(
                    f"{path}:{line}: {len(fields)} fields, the header has {len(header)} (the row is {what}); "
                    "fix or remove the row."
                )
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
    if rows == 0:
        raise PreflightError(f"split {split!r} ({', '.join(files)}) holds a header but no data rows.")
    return SplitSummary(split, list(files), rows)


def split_files(data_root: str, split: str) -> List[str]:
    return sorted(p for p in glob.glob(os.path.join(data_root, split, "*")) if os.path.isfile(p))


def check_inputs(spec: DatasetSpec, schema_path: str, data_root: str,
                 splits: Sequence[str]) -> Dict[str, SplitSummary]:
    """Every check of this module, for a local run on `data_root/<split>/*`; returns rows per split."""
    schema = load_schema(schema_path)
    check_schema(schema, spec, f"schema file {schema_path!r}")
    return {split: check_split_files(split, split_files(data_root, split), spec, schema) for split in splits}


def infer_schema(spec: DatasetSpec, data_path: str, out_path: str):
    """Infers a schema from the CSV file (or folder of CSV files) at `data_path` with TFDV, checks it
    against `spec` and writes it as text to `out_path`; returns (features, rows)."""
    import tensorflow_data_validation as tfdv
    from tfx.utils import io_utils

    folder, name = os.path.split(os.path.normpath(data_path))
    files = split_files(folder, name) if os.path.isdir(data_path) else [data_path]
    rows = check_split_files(name, files, spec, None).rows
    # Beam picks each file's compression from its name (.gz), as CsvExampleGen does.
    statistics = tfdv.generate_statistics_from_csv(
        data_location=os.path.join(data_path, "*") if os.path.isdir(data_path) else data_path)
    inferred = tfdv.infer_schema(statistics, infer_feature_shape=False)
    check_schema(inferred, spec, f"the schema inferred from {data_path}")
    io_utils.write_pbtxt_file(out_path, inferred)
    return len(inferred.feature), rows
