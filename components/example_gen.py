"""ExampleGen for any CSV the spec describes, with spans resolved on every runner.

`CsvExampleGen` (this module's; its id is its name) is TFX's file-based ExampleGen, as TFX's own
``CsvExampleGen``, with its own executor:

* **The spec's file format** (``components.spec.FileFormat``): with or without a header
  line, any one-character separator, characters stripped from every value, missing-value
  markers read as empty cells. Rows are parsed by `read_rows`, the same function the
  preflight checks use, then typed and written as ``CsvExampleGen`` does (tfx_bsl's
  ``ColumnTypeInferrer``; the same features per cell), so a curated schema written for
  ``CsvExampleGen`` still holds. Rows travel in batches and are encoded by tfx_bsl's Arrow
  record-batch encoder (C++), not one proto at a time in Python (`encode_batch`).
* **The spec's split** (``components.spec.SplitPlan``): ready ``train/ eval/ test/`` folders,
  or one folder of files split by ExampleGen's ``output_config`` hash buckets.
* **Spans.** With a span folder (``span-{SPAN}``, a folder of the data root per span), the
  newest span is read, or the newest N (``num_spans``) into one Examples artifact. TFX's
  ExampleGen driver resolves one span only (``RangeConfig`` must select a single span) and
  runs only where the orchestrator runs drivers: on the local runners it does, on Vertex AI
  it runs as the ``lifecycle.preCacheCheck`` hook, and on open-source Kubeflow Pipelines
  nothing runs that hook (``backend/src/v2/driver/driver.go``; ``kubeflow_v2_runner``
  removes it). This executor therefore resolves the spans itself, with TFX's own span
  matching for the fingerprint (`resolve_spans`), and records them on the output artifact:
  ``span`` (the newest, TFX's property), ``spans`` (every span read) and the input
  fingerprint.

Its settings travel in ExampleGen's ``custom_config`` (a ``CustomConfig`` holding a
``google.protobuf.Struct``): the spec, the span folder and the number of spans.

Over 400 lines: the component, its executor and the span and row reading they share; the reading functions
are the ones the preflight checks call, so a row is read one way only.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import logging
import os
import re
import shutil
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from google.protobuf import any_pb2, json_format, struct_pb2
from tfx.components.example_gen import base_example_gen_executor, write_split
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder, example_coder

from components.names import DEFAULT_SPAN_FOLDER, SPAN_TOKEN, SPANS_PROPERTY, SPEC_KEY, decode_spans, encode_spans
from components.object_store import open_text
from components.spec import SPLIT_NAMES, DatasetSpec, FileFormat

INPUT_SPLIT = "data"  # the one input split when ExampleGen splits the rows itself

# custom_config keys (beside the spec, under names.SPEC_KEY).
SPAN_FOLDER_KEY = "span_folder"
NUM_SPANS_KEY = "num_spans"


class SpanError(ValueError):
    """The data root's spans cannot be read as asked; the message names the span and the fix."""


# ---------------------------------------------------------------------------------------------
# Reading rows: one function for the executor and the preflight checks.


def read_numbered_rows(path: str, file_format: FileFormat) -> Iterator[Tuple[int, List[str]]]:
    """(line number in the file, cleaned values (`FileFormat.clean`)) of every row of `path`, the
    header row included when the format has one; the format's `skip_rows` first lines and its
    `comment` lines left out. Standard CSV quoting; a blank line is an empty row."""
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=file_format.separator)
        for fields in reader:
            line = reader.line_num
            if line <= file_format.skip_rows:
                continue
            if file_format.comment and fields and fields[0].lstrip().startswith(file_format.comment):
                continue
            yield line, [file_format.clean(v) for v in fields]


def read_rows(path: str, file_format: FileFormat) -> Iterator[List[str]]:
    """The values of `read_numbered_rows`, without the line numbers."""
    return (fields for _, fields in read_numbered_rows(path, file_format))


class RowWidthError(ValueError):
    """A data row holding another number of fields than the file has columns."""

    def __init__(self, path: str, line: int, fields: List[str], width: int, separator: str = ","):
        self.path, self.line, self.fields, self.width = path, line, fields, width
        super().__init__(f"{path}:{line}: {len(fields)} fields, expected {width}; check the spec's format "
                         f"(separator {separator!r}) or fix the row.")


def data_rows(rows: Iterable[Tuple[int, List[str]]], width: int, path: str,
              separator: str = ",") -> Iterator[Tuple[int, List[str]]]:
    """The data rows of `rows` (`read_numbered_rows`, the header already taken): blank rows left out, and a
    row of another width than `width` a `RowWidthError`. The one row check of ExampleGen, the preflight
    checks and the census files' reader."""
    for line, fields in rows:
        if not fields or fields == [""]:
            continue
        if len(fields) != width:
            raise RowWidthError(path, line, fields, width, separator)
        yield line, fields


def column_names(path: str, spec: DatasetSpec) -> List[str]:
    """The columns of `path`: its header, or the spec's columns when the format has no header."""
    if not spec.format.header:
        return list(spec.column_names)
    header = next(read_rows(path, spec.format), None)
    if header is None:
        raise SpanError(f"{path}: the file is empty; the spec's format says it starts with a header row.")
    return header


# ---------------------------------------------------------------------------------------------
# Input and output configs.


def split_patterns(spec: DatasetSpec, span_folder: Optional[str]) -> Dict[str, str]:
    """ExampleGen's input splits (name -> pattern relative to the data root)."""
    prefix = f"{span_folder}/" if span_folder else ""
    if spec.split.in_pipeline:
        return {INPUT_SPLIT: f"{prefix}*"}
    return {split: f"{prefix}{split}/*" for split in SPLIT_NAMES}


def input_config(spec: DatasetSpec, span_folder: Optional[str]) -> example_gen_pb2.Input:
    return example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=pattern)
        for name, pattern in split_patterns(spec, span_folder).items()
    ])


def output_config(spec: DatasetSpec) -> Optional[example_gen_pb2.Output]:
    """Hash buckets for a split made in the pipeline (None: the input folders are the splits)."""
    if not spec.split.in_pipeline:
        return None
    config = example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=weight) for name, weight in spec.split.ratios
    ])
    if spec.split.key:
        config.partition_feature_name = spec.split.key
    return example_gen_pb2.Output(split_config=config)


def custom_config(spec: DatasetSpec, span_folder: Optional[str], num_spans: int) -> example_gen_pb2.CustomConfig:
    struct = struct_pb2.Struct()
    struct.update({SPEC_KEY: spec.to_json(),  # JSON: a Struct would turn integers into floats
                    SPAN_FOLDER_KEY: span_folder or "", NUM_SPANS_KEY: num_spans})
    packed = any_pb2.Any()
    packed.Pack(struct)
    return example_gen_pb2.CustomConfig(custom_config=packed)


def read_custom_config(exec_properties: Mapping[str, Any]) -> Tuple[DatasetSpec, Optional[str], int]:
    """(spec, span folder, number of spans) from ExampleGen's exec properties."""
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        raise ValueError("CsvExampleGen: no custom_config; build the pipeline with pipeline.create_pipeline, "
                         "which passes the dataset spec to ExampleGen.")
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(raw, config)
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    values = json_format.MessageToDict(struct)
    if SPEC_KEY not in values:
        raise ValueError(f"CsvExampleGen: custom_config has no {SPEC_KEY!r}; keys {sorted(values)}.")
    spec = DatasetSpec.from_dict(json.loads(values[SPEC_KEY]), where="ExampleGen custom_config")
    return spec, values.get(SPAN_FOLDER_KEY) or None, int(values.get(NUM_SPANS_KEY, 1))


# ---------------------------------------------------------------------------------------------
# Spans.


@dataclasses.dataclass(frozen=True)
class SpanSelection:
    """The spans one run reads: `spans` newest first, and each input split's patterns (one per span)."""

    spans: Tuple[int, ...]
    version: Optional[int]
    fingerprint: str
    patterns: Dict[str, Tuple[str, ...]]

    @property
    def span(self) -> int:
        return self.spans[0]


def _span_regex(span_folder: str) -> re.Pattern:
    if span_folder.count(SPAN_TOKEN) != 1 or "/" in span_folder:
        raise SpanError(
            f"span folder: received {span_folder!r}; expected one folder name with {SPAN_TOKEN} once, "
            f"e.g. {DEFAULT_SPAN_FOLDER!r}."
        )
    before, after = span_folder.split(SPAN_TOKEN)
    return re.compile(f"^{re.escape(before)}(\\d+){re.escape(after)}$")


def span_numbers(input_base: str, span_folder: str) -> List[int]:
    """The span numbers of the folders of `input_base` named like `span_folder`, ascending (none if
    `input_base` does not exist)."""
    regex = _span_regex(span_folder)
    if not fileio.isdir(input_base):
        return []
    return sorted(int(m.group(1)) for m in (regex.match(e.rstrip("/")) for e in fileio.listdir(input_base)) if m)


def list_spans(input_base: str, span_folder: str) -> List[int]:
    """`span_numbers`, which must not be empty."""
    spans = span_numbers(input_base, span_folder)
    if not spans:
        entries = sorted(fileio.listdir(input_base))[:10] if fileio.isdir(input_base) else "it does not exist"
        raise SpanError(
            f"data root {input_base!r} holds no span folder named like {span_folder!r} (entries: "
            f"{entries}); write one with `mmoe-pipeline prepare --span`."
        )
    return spans


def matching_files(input_base: str, pattern: str) -> List[str]:
    """The files (not folders) matching `pattern` under `input_base`, sorted."""
    return sorted(p for p in fileio.glob(os.path.join(input_base, pattern)) if not fileio.isdir(p))


def resolve_spans(input_base: str, patterns: Mapping[str, str], num_spans: int = 1,
                  span_folder: Optional[str] = None) -> SpanSelection:
    """The newest `num_spans` spans of `input_base` (or span 0 when the patterns name no span).

    Every chosen span must hold files for every split: an empty newest span is an error (TFX's
    own matching would silently take the span before it).
    """
    if num_spans < 1:
        raise SpanError(f"num_spans: received {num_spans!r}, expected an integer >= 1.")
    has_span = any(SPAN_TOKEN in p for p in patterns.values())
    if not has_span:
        fingerprint, span, version = example_gen_utils.calculate_splits_fingerprint_span_and_version(
            input_base, [example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in patterns.items()])
        return SpanSelection((span,), version, fingerprint, {n: (p,) for n, p in patterns.items()})
    folder = span_folder or next(p for p in patterns.values() if SPAN_TOKEN in p).split("/")[0]
    available = list_spans(input_base, folder)
    newest = available[-1]
    chosen = available[::-1][:num_spans]
    if len(chosen) < num_spans:
        logging.warning("Asked for the newest %d spans; %s holds %d (%s): reading those.", num_spans, input_base,
                        len(chosen), chosen)
    fingerprints, version = [], None
    for span in chosen:
        for name, pattern in patterns.items():
            concrete = pattern.replace(SPAN_TOKEN, str(span))
            if not matching_files(input_base, concrete):
                raise SpanError(
                    f"span {span} has no files for split {name!r} (pattern {os.path.join(input_base, concrete)}); "
                    f"{'the newest span' if span == newest else 'an older span'} must hold data: fill it, or remove "
                    "the folder."
                )
        static = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span))
        fingerprint, _, span_version = example_gen_utils.calculate_splits_fingerprint_span_and_version(
            input_base, [example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in patterns.items()], static)
        fingerprints.append(f"span {span}:\n{fingerprint}")
        if span == newest:
            version = span_version
    return SpanSelection(
        spans=tuple(chosen), version=version, fingerprint="\n".join(fingerprints),
        patterns={n: tuple(p.replace(SPAN_TOKEN, str(s)) for s in chosen) for n, p in patterns.items()},
    )


def detect_span_folder(input_base: str) -> Optional[str]:
    """`DEFAULT_SPAN_FOLDER` when `input_base` holds span folders, else None."""
    if not span_numbers(input_base, DEFAULT_SPAN_FOLDER):
        return None
    logging.info("%s holds %s folders: reading spans.", input_base, DEFAULT_SPAN_FOLDER)
    return DEFAULT_SPAN_FOLDER


def next_span(input_base: str, span_folder: str = DEFAULT_SPAN_FOLDER) -> int:
    """The number a new span of `input_base` gets: one more than the newest, or 1."""
    return max(span_numbers(input_base, span_folder), default=0) + 1


@contextlib.contextmanager
def staged_span(input_base: str, span_folder: str = DEFAULT_SPAN_FOLDER) -> Iterator[Tuple[str, str]]:
    """(staging folder, span folder) for writing a new local span of `input_base`: written in the staging
    folder beside the spans and renamed to the next span once the block ends, so a run starting meanwhile
    never sees half of it; removed, with no span added, when the block raises."""
    target = os.path.join(input_base, span_folder.replace(SPAN_TOKEN, str(next_span(input_base, span_folder))))
    staging = os.path.join(input_base, f".tmp-{os.path.basename(target)}-{os.getpid()}")
    try:
        yield staging, target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(staging, target)


# ---------------------------------------------------------------------------------------------
# The executor.

_PATTERNS_KEY = "_spec_csv_patterns"  # exec_properties: split pattern -> the patterns of every chosen span
_SPEC_KEY = "_spec_csv_spec"
_OUTPUT_KEY = "_spec_csv_output"  # the output Examples artifacts, where `Executor._write` writes the splits


ROWS_PER_BATCH = 2048  # rows typed and encoded together (one Arrow record batch, C++ encoding)


class _ReadRowBatches(beam.DoFn):
    """A file path -> its data rows (lists of bytes, tfx_bsl's CSV cells) in batches, header skipped."""

    def __init__(self, spec: DatasetSpec, rows_per_batch: int = ROWS_PER_BATCH):
        self._spec, self._rows_per_batch = spec, rows_per_batch

    def process(self, path: str) -> Iterable[List[List[bytes]]]:
        width = len(column_names(path, self._spec))
        rows = read_numbered_rows(path, self._spec.format)
        if self._spec.format.header:
            next(rows, None)
        batch = []
        for _, fields in data_rows(rows, width, path, self._spec.format.separator):
            batch.append([v.encode("utf-8") for v in fields])
            if len(batch) == self._rows_per_batch:
                yield batch
                batch = []
        if batch:
            yield batch


class _DistinctCells(beam.DoFn):
    """A batch of rows -> each column's distinct cells in it (what typing a column needs)."""

    def process(self, batch: List[List[bytes]]) -> Iterable[List[List[bytes]]]:
        yield [sorted(set(column)) for column in zip(*batch)]


class _InferColumnTypes(beam.CombineFn):
    """tfx_bsl's ``ColumnTypeInferrer`` (CsvExampleGen's typing) over each batch's distinct cells
    per column (`_DistinctCells`; padded with empty cells, which type nothing): a column's type
    depends only on its set of values."""

    def __init__(self, names: List[str]):
        self._inferrer = csv_decoder.ColumnTypeInferrer(names, skip_blank_lines=True)

    def create_accumulator(self):
        return self._inferrer.create_accumulator()

    def add_input(self, accumulator, distinct: List[List[bytes]]):
        for row in itertools.zip_longest(*distinct, fillvalue=b""):
            accumulator = self._inferrer.add_input(accumulator, list(row))
        return accumulator

    def merge_accumulators(self, accumulators):
        return self._inferrer.merge_accumulators(accumulators)

    def extract_output(self, accumulator):
        return self._inferrer.extract_output(accumulator)


_ARROW_TYPES = {
    csv_decoder.ColumnType.INT: (int, pa.large_list(pa.int64())),
    csv_decoder.ColumnType.FLOAT: (float, pa.large_list(pa.float32())),
    csv_decoder.ColumnType.STRING: (bytes, pa.large_list(pa.large_binary())),
}


def encode_batch(batch: List[List[bytes]], column_infos: List[csv_decoder.ColumnInfo]) -> List[bytes]:
    """Serialized tf.Examples of a batch of rows, feature for feature what CsvExampleGen's
    cell handlers write (an empty cell: the column's list type with no value; a column empty in
    every row, type UNKNOWN: a feature with no kind), encoded by tfx_bsl in C++."""
    arrays = []
    for cells, info in zip(zip(*batch), column_infos):
        if info.type not in _ARROW_TYPES:
            arrays.append(pa.nulls(len(batch), pa.large_list(pa.int64())))
            continue
        convert, arrow_type = _ARROW_TYPES[info.type]
        values = {v: [convert(v)] if v else [] for v in set(cells)}
        arrays.append(pa.array([values[v] for v in cells], arrow_type))
    record_batch = pa.RecordBatch.from_arrays(arrays, [info.name for info in column_infos])
    return example_coder.RecordBatchToExamples(record_batch)


class _ReadAndEncode(beam.DoFn):
    """A file path -> its rows as serialized tf.Examples, batch by batch (`_ReadRowBatches`, then
    `encode_batch` with the column types as a side input). Reading and encoding are one step on
    purpose: a step that takes a side input starts a new stage on Beam's runners, and the rows
    between a reading step and such a step are held by the runner, all of them (about 1.5 GB per
    million census rows), before the first is encoded."""

    def __init__(self, spec: DatasetSpec):
        self._read = _ReadRowBatches(spec)

    def process(self, path: str, column_infos) -> Iterable[bytes]:
        for batch in self._read.process(path):
            yield from encode_batch(batch, column_infos)


def partition_record(record: bytes, num_partitions: int, buckets: List[int],
                     split_config: example_gen_pb2.SplitConfig) -> int:
    """The output split of a serialized tf.Example: TFX's own partition function on the parsed
    proto, so every row lands where ``CsvExampleGen`` puts it (its key is the proto's
    deterministic serialization or one feature's), while the C++-encoded bytes are written as they
    are instead of being serialized again."""
    return base_example_gen_executor._PartitionFn(  # noqa: SLF001 (the same split as TFX's, by construction)
        tf.train.Example.FromString(record), num_partitions, buckets, split_config)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def SpecCsvToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # noqa: N802 (Beam style)
                     split_pattern: str) -> beam.pvalue.PCollection:
    """The rows of every span's files for one input split, as tf.Examples typed like CsvExampleGen's."""
    spec: DatasetSpec = exec_properties[_SPEC_KEY]
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = []
    for pattern in exec_properties[_PATTERNS_KEY][split_pattern]:
        matched = matching_files(input_base, pattern)
        if not matched:
            raise SpanError(f"{os.path.join(input_base, pattern)} matches no file.")
        files.extend(matched)
    names = column_names(files[0], spec)
    missing = [c for c in spec.column_names if c not in names]
    if missing:
        raise ValueError(f"{files[0]}: no column {missing} (the columns found are {names}); fix the header or "
                         "the spec's columns.")
    for path in files[1:]:
        if column_names(path, spec) != names:
            raise ValueError(f"{path}: its columns {column_names(path, spec)} differ from {files[0]}'s {names}.")
    logging.info("ExampleGen: reading %d file(s) for %s.", len(files), split_pattern)
    # Two passes over the files, neither holding them: the first types the columns (each batch's
    # distinct cells), the second encodes the rows with the types as a side input. One pass
    # would make Beam keep every row until the types are known.
    paths = pipeline | "Files" >> beam.Create(files)
    column_infos = beam.pvalue.AsSingleton(
        paths | "RowsToType" >> beam.ParDo(_ReadRowBatches(spec)) | "DistinctCells" >> beam.ParDo(_DistinctCells())
        | "InferColumnTypes" >> beam.CombineGlobally(_InferColumnTypes(names)))
    return paths | "ToTFExample" >> beam.ParDo(_ReadAndEncode(spec), column_infos)


class Executor(BaseExampleGenExecutor):
    """Resolves the spans (when no driver did), then reads the spec's CSV format."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        return SpecCsvToExample

    def GenerateExamplesByBeam(self, pipeline, exec_properties):  # noqa: N802 (TFX API)
        """TFX's splitting, with serialized records in and out (`partition_record`)."""
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        if not output_config.split_config.splits:
            return self._write(super().GenerateExamplesByBeam(pipeline, exec_properties), exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        buckets = list(itertools.accumulate(split.hash_buckets for split in output_config.split_config.splits))
        splits = (pipeline | "InputToRecord" >> SpecCsvToExample(exec_properties, input_config.splits[0].pattern)
                  | "SplitData" >> beam.Partition(partition_record, len(buckets), buckets,
                                                  output_config.split_config))
        names = example_gen_utils.generate_output_split_names(input_config, output_config)
        return self._write(dict(zip(names, splits)), exec_properties)

    @staticmethod
    def _write(splits, exec_properties) -> dict:
        """Writes each split as TFX's ``write_split.WriteSplit`` does, file name and compression alike,
        without its ``Reshuffle``: on Beam's in-process runner that is a group-by-key held in memory,
        every record of the split resident at once (docs/BENCHMARKS.md, "Scale"). The Trainer reshuffles
        the rows every epoch. Returns no split, so TFX's ``Do`` writes nothing more."""
        for name, records in splits.items():
            uri = artifact_utils.get_split_uri(exec_properties[_OUTPUT_KEY], name)
            _ = (records | f"Count[{name}]" >> beam.ParDo(write_split.MaybeSerialize())
                 | f"WriteSplit[{name}]" >> beam.io.WriteToTFRecord(
                     os.path.join(uri, write_split.DEFAULT_FILE_NAME), file_name_suffix=".gz"))
        return {}

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        spec, span_folder, num_spans = read_custom_config(exec_properties)
        config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], config)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        # The patterns as the pipeline declared them: TFX's driver (local runners, Vertex) has
        # already put the newest span into the exec properties' patterns; open-source KFP has not.
        declared = split_patterns(spec, span_folder)
        selection = resolve_spans(input_base, declared, num_spans, span_folder)
        driver_span = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME)
        if driver_span is not None and span_folder and int(driver_span) != selection.span:
            raise SpanError(f"the ExampleGen driver chose span {driver_span}, the executor span {selection.span}; "
                            "did a span folder appear during the run? Run again.")
        exec_properties = dict(exec_properties)
        exec_properties[_SPEC_KEY] = spec
        exec_properties[_OUTPUT_KEY] = output_dict[standard_component_specs.EXAMPLES_KEY]
        exec_properties[_PATTERNS_KEY] = {
            split.pattern: selection.patterns[split.name] for split in config.splits
        }
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.set_int_custom_property(example_gen_utils.SPAN_PROPERTY_NAME, selection.span)
        if selection.version is not None:
            examples.set_int_custom_property(example_gen_utils.VERSION_PROPERTY_NAME, selection.version)
        examples.set_string_custom_property(example_gen_utils.FINGERPRINT_PROPERTY_NAME, selection.fingerprint)
        examples.set_string_custom_property(SPANS_PROPERTY, encode_spans(selection.spans))
        if span_folder:
            logging.info("ExampleGen: span %d%s from %s.", selection.span,
                         f" and the {len(selection.spans) - 1} before it {list(selection.spans[1:])}"
                         if len(selection.spans) > 1 else "", input_base)
        super().Do(input_dict, output_dict, exec_properties)


def spans_of(examples_artifact) -> List[int]:
    """The spans an Examples artifact of `CsvExampleGen` was read from, newest first."""
    if examples_artifact.has_custom_property(SPANS_PROPERTY):
        return decode_spans(examples_artifact.get_string_custom_property(SPANS_PROPERTY))
    return [examples_artifact.get_int_custom_property(example_gen_utils.SPAN_PROPERTY_NAME)]


class CsvExampleGen(FileBasedExampleGen):
    """The pipeline's CSV ExampleGen: TFX's file-based ExampleGen (its driver, spec and outputs, as TFX's
    own ``CsvExampleGen``) with this module's executor, which reads the files as the spec describes them.
    Its id is its name (`components.names.EXAMPLE_GEN_COMPONENT`)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
