"""ExampleGen's own executor: the spec's CSV format, spans resolved without TFX's driver."""

import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import example_gen
from components.spec import DatasetSpec, FileFormat, SpecError

COLUMNS = [{"name": "tenure", "kind": "numeric"}, {"name": "plan", "kind": "categorical"},
           {"name": "spend", "kind": "numeric"}, {"name": "churned", "kind": "categorical"}]


def _spec(**extra) -> DatasetSpec:
    return DatasetSpec.from_dict({
        "name": "churn", "columns": COLUMNS,
        "tasks": [{"name": "churn", "label_column": "churned", "positive_values": ["yes"], "min_auc": 0.5}],
        **extra,
    })


def _write(path: str, lines) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def test_a_format_strips_values_and_empties_missing_markers(tmp_path):
    fmt = FileFormat(header=False, separator=";", strip=" .", missing_values=("?",))
    path = _write(str(tmp_path / "a.csv"), ["12; gold; 3.5; yes.", "?; basic;?; no."])
    assert list(example_gen.read_rows(path, fmt)) == [["12", "gold", "3.5", "yes"], ["", "basic", "", "no"]]
    with pytest.raises(SpecError, match=r"format separator: received ', ', expected one character"):
        FileFormat(separator=", ")


def _spans(root, spans, splits=("train", "eval", "test")):
    for span in spans:
        for split in splits:
            _write(os.path.join(root, f"span-{span}", split, "data.csv"), ["tenure,plan,spend,churned", "1,a,2,no"])


def test_the_newest_spans_are_chosen_and_an_empty_newest_span_is_named(tmp_path):
    root = str(tmp_path / "root")
    _spans(root, (1, 2, 10))
    patterns = example_gen.split_patterns(_spec(), "span-{SPAN}")
    assert patterns == {"train": "span-{SPAN}/train/*", "eval": "span-{SPAN}/eval/*", "test": "span-{SPAN}/test/*"}
    newest = example_gen.resolve_spans(root, patterns, 1, "span-{SPAN}")
    assert newest.spans == (10,) and newest.patterns["train"] == ("span-10/train/*",)
    two = example_gen.resolve_spans(root, patterns, 2, "span-{SPAN}")
    assert two.spans == (10, 2) and two.patterns["eval"] == ("span-10/eval/*", "span-2/eval/*")
    assert "span 10:" in two.fingerprint and "span 2:" in two.fingerprint
    assert example_gen.next_span(root) == 11
    os.makedirs(os.path.join(root, "span-11", "train"))
    with pytest.raises(example_gen.SpanError, match=r"span 11 has no files for split 'train' .*the newest span "
                                                    r"must hold data: fill it, or remove the folder"):
        example_gen.resolve_spans(root, patterns, 1, "span-{SPAN}")
    with pytest.raises(example_gen.SpanError, match=r"holds no span folder named like 'day-\{SPAN\}'"):
        example_gen.resolve_spans(root, {"train": "day-{SPAN}/train/*"}, 1, "day-{SPAN}")
    assert example_gen.detect_span_folder(root) == "span-{SPAN}"
    assert example_gen.detect_span_folder(str(tmp_path)) is None


def _run_executor(tmp_path, spec, data_root, span_folder=None, num_spans=1):
    """The executor as open-source KFP runs it: no driver, the declared {SPAN} patterns."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: data_root,
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen.input_config(spec, span_folder)),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen.output_config(spec) or example_gen_utils.make_default_output_config(
                example_gen.input_config(spec, span_folder))),
        standard_component_specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen.custom_config(spec, span_folder, num_spans)),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: 6,  # FORMAT_TF_EXAMPLE
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: 5,  # FORMAT_TFRECORDS_GZIP
    }
    example_gen.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


def _records(uri, split):
    files = tf.io.gfile.glob(os.path.join(uri, f"Split-{split}", "*"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_a_headerless_file_is_split_in_the_pipeline_by_key(tmp_path):
    spec = _spec(format={"header": False, "separator": ";", "strip": " .", "missing_values": ["?"]},
                 split={"ratios": {"train": 3, "eval": 1, "test": 1}, "key": "plan"})
    rows = [f"{i}; plan{i % 20}; {i * 1.5}; {'yes' if i % 3 else 'no'}." for i in range(400)] + ["?; plan1; 2.5; no."]
    root = str(tmp_path / "root")
    _write(os.path.join(root, "span-3", "part-0.csv"), rows[:200])
    _write(os.path.join(root, "span-3", "part-1.csv"), rows[200:])
    _write(os.path.join(root, "span-2", "part-0.csv"), rows[:5])
    examples = _run_executor(tmp_path, spec, root, "span-{SPAN}")
    assert example_gen.spans_of(examples) == [3]
    assert examples.get_int_custom_property("span") == 3
    by_split = {s: _records(examples.uri, s) for s in ("train", "eval", "test")}
    assert sum(map(len, by_split.values())) == 401
    plans = {s: {e.features.feature["plan"].bytes_list.value[0] for e in recs} for s, recs in by_split.items()}
    assert not (plans["train"] & plans["eval"]) and not (plans["train"] & plans["test"])  # a key stays in one split
    first = next(e for recs in by_split.values() for e in recs if e.features.feature["plan"].bytes_list.value[0] == b"plan1"
                 and not e.features.feature["tenure"].int64_list.value)
    # Typed as CsvExampleGen types: integers INT, decimals FLOAT, the rest bytes; "?" is an empty cell.
    assert first.features.feature["spend"].float_list.value == [2.5]
    assert first.features.feature["churned"].bytes_list.value == [b"no"]


def test_a_single_file_is_split_by_its_ratios_into_disjoint_splits(tmp_path):
    """8:1:1 of 2,000 rows without a key: every row lands in exactly one split (the ids of train, eval and
    test are disjoint and cover the file) and each split's size is within 4 standard deviations of its
    binomial expectation (train 1,600 +- 72, eval and test 200 +- 54)."""
    spec = _spec(format={"header": False}, split={"ratios": {"train": 8, "eval": 1, "test": 1}})
    root = str(tmp_path / "root")
    _write(os.path.join(root, "data.csv"), [f"{i},p{i % 13},{i * 0.25},{'yes' if i % 4 else 'no'}" for i in range(2000)])
    examples = _run_executor(tmp_path, spec, root)
    ids = {s: [e.features.feature["tenure"].int64_list.value[0] for e in _records(examples.uri, s)]
           for s in ("train", "eval", "test")}
    sets = {s: set(v) for s, v in ids.items()}
    assert all(len(v) == len(sets[s]) for s, v in ids.items())  # no row twice within a split
    assert not (sets["train"] & sets["eval"] or sets["train"] & sets["test"] or sets["eval"] & sets["test"])
    assert sets["train"] | sets["eval"] | sets["test"] == set(range(2000))
    for split, share in (("train", 0.8), ("eval", 0.1), ("test", 0.1)):
        sd = (2000 * share * (1 - share)) ** 0.5
        assert abs(len(ids[split]) - 2000 * share) <= 4 * sd, (split, len(ids[split]))


def test_two_spans_are_read_into_one_artifact(tmp_path):
    root = str(tmp_path / "root")
    _spans(root, (1, 2, 3))
    examples = _run_executor(tmp_path, _spec(), root, "span-{SPAN}", num_spans=2)
    assert example_gen.spans_of(examples) == [3, 2]
    assert len(_records(examples.uri, "train")) == 2


def test_a_header_without_a_spec_column_fails_naming_it(tmp_path):
    root = str(tmp_path / "root")
    for split in ("train", "eval", "test"):
        _write(os.path.join(root, split, "data.csv"), ["tenure,plan,churned", "1,a,no"])
    with pytest.raises(ValueError, match=r"data.csv: no column \['spend'\] \(the columns found are "
                                         r"\['tenure', 'plan', 'churned'\]\)"):
        _run_executor(tmp_path, _spec(), root)


def test_the_beam_transform_alone_reads_every_pattern(tmp_path):
    spec = _spec(format={"header": False})
    _write(str(tmp_path / "d" / "x.csv"), ["1,a,2.0,yes", "2,b,3.5,no"])
    properties = {standard_component_specs.INPUT_BASE_KEY: str(tmp_path / "d"),
                  example_gen._SPEC_KEY: spec, example_gen._PATTERNS_KEY: {"*": ("*",)}}  # noqa: SLF001
    with beam.Pipeline() as p:
        out = p | example_gen.SpecCsvToExample(properties, "*") | beam.Map(tf.train.Example.FromString)
        assert_that(out | beam.Map(lambda e: (e.features.feature["tenure"].int64_list.value[0],
                                              e.features.feature["spend"].float_list.value[0])),
                    equal_to([(1, 2.0), (2, 3.5)]))


def test_the_uci_census_files_are_one_instance_of_a_spec_format(tmp_path):
    """schemas/census/uci-group1.yaml reads the UCI file as published (a slice of the embedded
    sample): the pipeline splits it, and labels lose their trailing '.'."""
    import gzip

    import schemas
    from components.spec import load_spec
    from pipeline.local import preflight
    from sources import census

    spec = load_spec(schemas.path(*census.UCI_SPEC))
    assert spec.tasks == load_spec(schemas.path("census", "group1.yaml")).tasks
    root = tmp_path / "uci"
    root.mkdir()
    with gzip.open(census.SAMPLE_PATH, "rt") as f, gzip.open(root / "census-income.test.gz", "wt") as out:
        out.writelines(line for _, line in zip(range(300), f))
    _, summaries = preflight.check_inputs(spec, schemas.path("census", "schema.pbtxt"), str(root))
    assert {s: r.rows for s, r in summaries.items()} == {"data": 300}
    examples = _run_executor(tmp_path, spec, str(root))
    records = [e for split in ("train", "eval", "test") for e in _records(examples.uri, split)]
    assert len(records) == 300
    assert {e.features.feature["income"].bytes_list.value[0] for e in records} <= {b"- 50000", b"50000+"}
    assert all(e.features.feature["age"].int64_list.value for e in records)


def test_batched_encoding_writes_what_csv_example_gen_writes():
    """Each row's tf.Example equals TFX's CsvExampleGen conversion of the same cells, with column types
    inferred over batches of distinct values as CsvExampleGen infers them over every row."""
    from tfx.components.example_gen.csv_example_gen import executor as csv_executor
    from tfx_bsl.coders import csv_decoder

    names = ["n", "x", "word", "huge", "blank", "mixed"]
    rows = [
        [b"1", b"0.5", b"a", b"9223372036854775808", b"", b"3"],   # 2**63 is no int64: STRING
        [b"", b"2", b"", b"1", b"", b"x"],                             # empty cells keep the list type
        [b"-7", b"", b"b c", b"2", b"", b"4.5"],
        [b"12", b"1e3", b"a", b"3", b"", b""],
    ]
    inferrer = csv_decoder.ColumnTypeInferrer(names, skip_blank_lines=True)
    accumulator = inferrer.create_accumulator()
    for row in rows:
        accumulator = inferrer.add_input(accumulator, row)
    expected_infos = inferrer.extract_output(accumulator)
    combine = example_gen._InferColumnTypes(names)  # noqa: SLF001
    distinct = example_gen._DistinctCells()  # noqa: SLF001
    batched = combine.extract_output(combine.merge_accumulators(
        [combine.add_input(combine.create_accumulator(), next(distinct.process(rows[:2]))),
         combine.add_input(combine.create_accumulator(), next(distinct.process(rows[2:])))]))
    assert [(i.name, i.type) for i in batched] == [(i.name, i.type) for i in expected_infos]
    assert [i.type.name for i in batched] == ["INT", "FLOAT", "STRING", "STRING", "UNKNOWN", "STRING"]

    convert = csv_executor._ParsedCsvToTfExample()  # noqa: SLF001
    expected = [e for row in rows for e in convert.process(row, expected_infos)]
    got = [tf.train.Example.FromString(r) for r in example_gen.encode_batch(rows, batched)]
    assert got == expected
    assert got[1].features.feature["word"].HasField("bytes_list")  # an empty cell: no value, typed list
    assert not got[1].features.feature["word"].bytes_list.value
    assert got[3].features.feature["x"].float_list.value == [1000.0]


def test_banner_and_comment_lines_are_skipped_and_rows_keep_their_file_line_numbers(tmp_path):
    from components.example_gen import read_numbered_rows
    from components.spec import FileFormat, SpecError

    path = tmp_path / "export.csv"
    path.write_text("Export of 2026-12-01, do not edit\n(c) the shop\nage;color\n# a comment\n31;red\n"
                    "  # an indented comment\n\n40;?\n")
    rows = list(read_numbered_rows(str(path), FileFormat(separator=";", skip_rows=2, comment="#",
                                                         missing_values=("?",))))
    assert rows == [(3, ["age", "color"]), (5, ["31", "red"]), (7, []), (8, ["40", ""])]
    with pytest.raises(SpecError, match=r"format skip_rows: received -1, expected a number of lines >= 0"):
        FileFormat(skip_rows=-1)
    with pytest.raises(SpecError, match=r"format comment: received ';', expected one character .* \(not the "
                                        r"separator"):
        FileFormat(separator=";", comment=";")


def test_the_split_of_encoded_records_is_tfx_own_split_of_their_protos():
    """Records stay serialized (C++ bytes) through the split, yet each lands in the split TFX's
    partition function gives the parsed proto: the deterministic serialization, or the key feature."""
    from tfx.components.example_gen import base_example_gen_executor as base

    names = ["id", "plan", "x"]
    rows = [[str(i).encode(), f"p{i % 7}".encode(), str(i * 0.5).encode()] for i in range(300)]
    combine = example_gen._InferColumnTypes(names)  # noqa: SLF001
    infos = combine.extract_output(combine.add_input(
        combine.create_accumulator(), next(example_gen._DistinctCells().process(rows))))  # noqa: SLF001
    records = example_gen.encode_batch(rows, infos)
    for key in ("", "plan"):
        config = example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=8),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
            example_gen_pb2.SplitConfig.Split(name="test", hash_buckets=1)])
        if key:
            config.partition_feature_name = key
        ours = [example_gen.partition_record(r, 3, [8, 9, 10], config) for r in records]
        theirs = [base._PartitionFn(tf.train.Example.FromString(r), 3, [8, 9, 10], config)  # noqa: SLF001
                  for r in records]
        assert ours == theirs
        if key:  # one split per key value
            assert all(len({s for s, row in zip(ours, rows) if row[1] == p}) == 1 for p in {r[1] for r in rows})
        else:
            counts = [ours.count(i) for i in range(3)]
            assert 200 < counts[0] < 280 and counts[1] > 10 and counts[2] > 10, counts


def test_data_rows_skip_blank_rows_and_name_a_row_of_another_width(tmp_path):
    path = _write(str(tmp_path / "d.csv"), ["a,b,c", "1,2,3", "", "4,5,6", "7,8"])
    fmt = FileFormat()
    rows = example_gen.read_numbered_rows(path, fmt)
    next(rows)  # the header
    found = []
    with pytest.raises(example_gen.RowWidthError, match=rf"{path}:5: 2 fields, expected 3; check the spec's format "
                                                         r"\(separator ','\) or fix the row\.") as e:
        for line, fields in example_gen.data_rows(rows, 3, path):
            found.append((line, fields))
    assert found == [(2, ["1", "2", "3"]), (4, ["4", "5", "6"])]
    assert (e.value.line, e.value.fields, e.value.width) == (5, ["7", "8"], 3)
