"""Bad inputs a scheduled run meets, each with the outcome a user should get.

Spec, schema and data errors end in one message naming the value, the file, the row and the
column, before any Beam job starts (`preflight`); data that only the ExampleValidator can
judge (values outside the curated domains, missing values, label values outside the spec)
is run through TFDV exactly as the ExampleValidator does, and the push gate must stop on it.
The serving-time cases (unseen categories, a missing feature, a wrong type, an empty batch)
run against the e2e run's pushed model in test_e2e.py.
"""

import csv
import gzip
import json
import os
import shutil

import pytest
from click.testing import CliRunner
from tensorflow_metadata.proto.v0 import schema_pb2

import schemas
from components.names import ANOMALIES_FILE
from components.schema import SchemaMismatch, check_schema, derive_schema, load_schema
from components.serving_check import blocking_anomalies, read_anomalies
from components.spec import DatasetSpec, SpecError, load_spec
from pipeline import cli
from pipeline.local import preflight
from pipeline.reporting import report
from sources import census

SCHEMA = schemas.path("census", "schema.pbtxt")


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory, census_spec):
    out = tmp_path_factory.mktemp("clean")
    return census.prepare(census_spec, str(out / "splits"), test_path=census.SAMPLE_PATH, max_rows=60).root


@pytest.fixture
def root(tmp_path, clean_root):
    shutil.copytree(clean_root, tmp_path / "splits")
    return str(tmp_path / "splits")


def _rows(root, split):
    with open(os.path.join(root, split, "data.csv"), newline="") as f:
        return list(csv.reader(f))


def _write(root, split, rows, name="data.csv", delimiter=","):
    path = os.path.join(root, split, name)
    with open(path, "w", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def _set(root, split, column, value, every=1):
    """Sets `column` to `value` in every `every`-th data row of `split`; returns the first changed row number."""
    rows = _rows(root, split)
    index = rows[0].index(column)
    for row in rows[1::every]:
        row[index] = value
    _write(root, split, rows)
    return 2


def _check(spec, root):
    return preflight.check_inputs(spec, SCHEMA, root)[1]


def _spec_with(spec, **column_updates):
    raw = spec.to_dict()
    for column in raw["columns"]:
        column.update(column_updates.get(column["name"], {}))
    return DatasetSpec.from_dict(raw)


# --- the spec -------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, match", [
    (lambda r: r["columns"][0].update(kind="number"), r"column 'age' kind: received 'number', expected one of"),
    (lambda r: r["columns"].append(dict(r["columns"][0])), r"columns: 'age' appears twice"),
    (lambda r: r["tasks"].append(dict(r["tasks"][0])), r"tasks: 'income' appears twice"),
    (lambda r: r["columns"][0].update(missing="average"), r"column 'age' missing: received 'average'"),
    (lambda r: r["columns"][1].update(missing="median"), r"column 'class_of_worker' missing: .* categorical"),
    (lambda r: r.update(allowed_anomalies=["NEW_VALUES"]), r"allowed_anomalies: received 'NEW_VALUES'"),
    (lambda r: r["columns"][0].update(missing="drop_row"), r"column 'age' missing: drop_row is not supported: "
                                                           r"tf\.Transform maps every input row to one output row"),
])
def test_spec_errors_name_the_value_and_the_fix(census_spec, change, match):
    raw = census_spec.to_dict()
    change(raw)
    with pytest.raises(SpecError, match=match):
        DatasetSpec.from_dict(raw)


def test_a_spec_cannot_name_a_python_object(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo owned']\ncolumns: []\ntasks: []\n")
    with pytest.raises(SpecError, match=r"is not valid YAML: could not determine a constructor"):
        load_spec(str(path))


# --- the spec against the schema ------------------------------------------------------------------

def test_a_spec_column_missing_from_the_schema_is_named_with_the_columns_found(census_spec, tmp_path):
    text = open(SCHEMA).read().replace('name: "class_of_worker"', 'name: "workclass"')
    path = tmp_path / "schema.pbtxt"
    path.write_text(text)
    with pytest.raises(SchemaMismatch, match=r"column 'class_of_worker' is not in the schema \(its features are "
                                             r"\[.*'workclass'.*\]\); add it to the schema"):
        check_schema(load_schema(str(path)), census_spec, "schema file")


def test_a_numeric_column_of_string_type_in_the_schema_is_refused(census_spec, tmp_path):
    raw = census_spec.to_dict()
    next(c for c in raw["columns"] if c["name"] == "sex")["kind"] = "numeric"
    with pytest.raises(SchemaMismatch, match=r"column 'sex' is numeric in spec .* but BYTES in the schema; "
                                             r"expected INT or FLOAT"):
        check_schema(load_schema(SCHEMA), DatasetSpec.from_dict(raw), "schema file")


def test_a_schema_file_that_is_not_a_schema_is_named(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text("feature { nme: 'age' }\n")
    with pytest.raises(SchemaMismatch, match=r"schema\.pbtxt' is not a text-format Schema proto"):
        load_schema(str(path))


# --- the files ------------------------------------------------------------------------------------

def test_clean_splits_pass_and_are_counted(census_spec, root):
    assert {s: r.rows for s, r in _check(census_spec, root).items()} == {"train": 48, "eval": 6, "test": 6}


def test_a_header_without_a_spec_column_names_it(census_spec, root):
    rows = _rows(root, "eval")
    for row in rows:
        del row[-1]  # the income label column
    path = _write(root, "eval", rows)
    with pytest.raises(preflight.PreflightError, match=rf"{path}:1: the header does not name the spec's columns: "
                                                       r"missing \['income'\], not in the spec \[\]"):
        _check(census_spec, root)


def test_a_file_separated_by_semicolons_says_so(census_spec, root):
    path = _write(root, "test", _rows(root, "test"), delimiter=";")
    with pytest.raises(preflight.PreflightError, match=rf"{path}:1: the header is one column, the spec has 42: .* "
                                                       r"it looks separated by ';': set `format: \{separator: ';'\}`"):
        _check(census_spec, root)


@pytest.mark.parametrize("cut, what", [(slice(0, 30), "truncated"), (None, "too long")])
def test_a_row_with_the_wrong_number_of_fields_names_file_and_line(census_spec, root, cut, what):
    rows = _rows(root, "train")
    rows[5] = rows[5][cut] if cut else rows[5] + ["extra"]
    path = _write(root, "train", rows)
    with pytest.raises(preflight.PreflightError, match=rf"{path}:6: {len(rows[5])} fields, the header has 42 "
                                                       rf"\(the row is {what}\)"):
        _check(census_spec, root)


@pytest.mark.parametrize("value, problem", [
    ("abc", "is not a number"),
    ("nan", "is not a finite number"),
    ("inf", "is not a finite number"),
    ("-inf", "is not a finite number"),
    ("41.5", "is not an integer, and the schema says INT"),
])
def test_a_bad_value_in_a_numeric_column_names_file_row_and_column(census_spec, root, value, problem):
    _set(root, "eval", "age", value)
    path = os.path.join(root, "eval", "data.csv")
    with pytest.raises(preflight.PreflightError, match=rf"{path}:2: column 'age' value '{value}' {problem}"):
        _check(census_spec, root)


def test_missing_error_policy_names_file_row_and_column(census_spec, root):
    rows = _rows(root, "train")
    rows[9][0] = ""
    path = _write(root, "train", rows)
    spec = _spec_with(census_spec, age={"missing": "error"})
    with pytest.raises(preflight.PreflightError, match=rf"^{path}:10: column 'age' is empty, and the spec says "
                                                       r"missing: error"):
        _check(spec, root)
    assert {s: r.rows for s, r in _check(census_spec, root).items()}["train"] == 48  # the default imputes


def test_an_empty_file_a_header_only_and_no_file_are_named(census_spec, root):
    empty = os.path.join(root, "test", "data.csv")
    open(empty, "w").close()
    with pytest.raises(preflight.PreflightError, match=rf"{empty}: the file is empty"):
        _check(census_spec, root)
    _write(root, "test", _rows(root, "eval")[:1])
    with pytest.raises(preflight.PreflightError, match=r"split 'test' .* holds no data rows, only a header"):
        _check(census_spec, root)
    os.remove(empty)
    with pytest.raises(preflight.PreflightError, match=r"split 'test' has no files; put its CSV files under test/"):
        _check(census_spec, root)


def test_a_gz_file_that_is_not_gzip_is_named(census_spec, root):
    path = os.path.join(root, "eval", "data.csv")
    os.rename(path, path + ".gz")
    with pytest.raises(preflight.PreflightError, match=rf"{path}\.gz: named \.gz but is not gzip-compressed"):
        _check(census_spec, root)
    with open(path + ".gz", "rb") as f:
        content = f.read()
    with gzip.open(path + ".gz", "wb") as f:
        f.write(content)
    assert _check(census_spec, root)["eval"].rows == 6  # a real gzip passes


def test_a_bad_uci_file_ends_in_one_line_at_the_cli(tmp_path):
    bad = tmp_path / "census-income.test"
    bad.write_text("just one field\n")
    result = CliRunner().invoke(cli.main, ["prepare", "--data", str(bad), "--output-dir", str(tmp_path / "o"),
                                           "--skip-checksum"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: {bad}:1: 1 fields separated by ',', expected 42 (the spec's columns). Is this a UCI census file?"]


@pytest.fixture
def isolated_logging():
    """`run` takes over the root logger (a quiet console, a log file); give it back to pytest afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def test_run_refuses_bad_data_before_the_pipeline_starts(root, tmp_path, isolated_logging):
    _set(root, "train", "age", "abc")
    result = CliRunner().invoke(cli.main, ["run", "--splits-dir", root, "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (f"Error: {root}/train/data.csv:2: column 'age' value 'abc' is not a "
                                              "number; the spec says it is numeric. Fix the value, or make the "
                                              "column categorical in the spec and the schema.")
    assert not os.path.exists(tmp_path / "out" / "metadata.sqlite")  # no component ran
    (log,) = os.listdir(tmp_path / "out" / "logs")
    assert result.output.splitlines()[0] == f"Log:          {tmp_path / 'out' / 'logs' / log}"


# --- data the ExampleValidator judges: TFDV as the ExampleValidator runs it, then the push gate ----------

def _anomalies(spec, root, split, out):
    """`split` read by CsvExampleGen's own CSV-to-tf.Example transform, its TFDV statistics validated against
    the derived schema, and the anomalies written and read back as ExampleValidator and ServingCheck do."""
    import apache_beam as beam
    import tensorflow_data_validation as tfdv
    from tfx.components.example_gen.csv_example_gen.executor import _CsvToExample

    records = os.path.join(out, "examples")
    with beam.Pipeline() as p:
        _ = (p | _CsvToExample({"input_base": root}, f"{split}/*")
             | beam.Map(lambda e: e.SerializeToString())
             | beam.io.WriteToTFRecord(records, shard_name_template=""))
    statistics = tfdv.generate_statistics_from_tfrecord(records)
    schema = derive_schema(load_schema(SCHEMA), spec)
    found = tfdv.validate_statistics(statistics, schema)
    os.makedirs(os.path.join(out, f"Split-{split}"), exist_ok=True)
    with open(os.path.join(out, f"Split-{split}", ANOMALIES_FILE), "wb") as f:
        f.write(found.SerializeToString())
    return read_anomalies(str(out), [split])


def test_a_value_outside_the_curated_domain_stops_the_push_unless_allowed(census_spec, root, tmp_path):
    _set(root, "test", "sex", "Unknown", every=3)
    found = _anomalies(census_spec, root, "test", tmp_path / "anomalies")
    assert [(a.feature, a.split, a.types) for a in found] == [
        ("sex", "test", ("ENUM_TYPE_UNEXPECTED_STRING_VALUES",))]
    assert "Unknown" in found[0].description
    assert blocking_anomalies(found, ()) == found
    assert blocking_anomalies(found, ("ENUM_TYPE_UNEXPECTED_STRING_VALUES",)) == []


def test_a_label_value_outside_the_spec_is_an_anomaly_not_a_negative(census_spec, root, tmp_path):
    _set(root, "train", "income", "maybe", every=3)
    found = _anomalies(census_spec, root, "train", tmp_path / "anomalies")
    assert [(a.feature, a.types) for a in found] == [("income", ("ENUM_TYPE_UNEXPECTED_STRING_VALUES",))]
    assert "maybe" in found[0].description


def test_missing_values_are_anomalies_unless_the_spec_declares_a_policy(census_spec, root, tmp_path):
    _set(root, "train", "age", "", every=20)
    found = _anomalies(census_spec, root, "train", tmp_path / "curated")
    assert [(a.feature, a.types) for a in found] == [("age", ("FEATURE_TYPE_LOW_NUMBER_VALUES",))]
    assert _anomalies(_spec_with(census_spec, age={"missing": "mean"}), root, "train", tmp_path / "declared") == []


def test_the_decision_lists_each_anomaly_and_the_undefined_auc(census_spec, tmp_path):
    from components.serving_check import RESULT_FILE

    serving = tmp_path / "serving"
    serving.mkdir()
    anomaly = {"feature": "sex", "split": "test", "types": ["ENUM_TYPE_UNEXPECTED_STRING_VALUES"],
               "short_description": "Unexpected string values", "description": "Examples contain Unknown (~30%)"}
    (serving / RESULT_FILE).write_text(json.dumps({"ok": False, "num_examples": 16, "failures": {},
                                                      "anomalies": [anomaly]}))
    decision = report.decide_from("p", census_spec, "/serving", report.RunOutputs(None, str(serving), False, None))
    assert decision["reasons"] == ["data anomalies: sex in test: Unexpected string values (fix the data, or accept "
                                   "it with --allow-anomaly ENUM_TYPE_UNEXPECTED_STRING_VALUES (the spec's "
                                   "allowed_anomalies))"]
    assert decision["anomalies"] == [anomaly]

    one_class = report.SliceMetrics("Overall", {"never_married": None}, {"never_married": 600.0},
                                    mean_label={"never_married": 0.0})
    failure = {"task": "never_married", "slice": "Overall", "metric": "auc", "kind": "absolute", "value": 0.0}
    assert report._failure_text(failure, one_class, census_spec.task("never_married")) == (
        "AUC is undefined on Overall: the test split holds only negatives for never_married (600 examples), so "
        "the absolute AUC threshold cannot pass; add examples of both classes to the test split")


def test_the_root_cause_of_a_beam_failure_is_its_innermost_error_without_the_wrapper():
    from pipeline.local.local_runner import root_cause

    try:
        try:
            raise KeyError("workclass")
        except KeyError as inner:
            raise RuntimeError("KeyError: \"workclass [while running 'Run[Transform]']\"") from inner
    except RuntimeError as outer:
        assert root_cause(outer) == "KeyError: 'workclass'"
    try:
        raise ValueError("line one\nUnable to convert [while running 'Analyze/ApplySavedModel']")
    except ValueError as error:
        assert root_cause(error) == "ValueError: Unable to convert"


def test_a_second_run_on_the_same_output_directory_is_refused_until_the_first_ends(tmp_path):
    from pipeline.local.local_runner import RunLocked, output_lock

    with output_lock(str(tmp_path)):
        with pytest.raises(RunLocked, match=rf"^{tmp_path} is in use by another run \(pid {os.getpid()}, started "
                                            r"\d{4}-\d\d-\d\dT.*\); wait for it to finish"):
            with output_lock(str(tmp_path)):
                pass
    with output_lock(str(tmp_path)):  # released: the next run goes ahead
        pass


def test_schema_infers_a_schema_from_any_csv_and_names_a_column_the_data_lacks(tmp_path):
    """Not census: a CSV written here, with its own columns, through `mmoe-pipeline schema`."""
    from components.schema import check_schema, load_schema

    spec = {"name": "shop", "columns": [{"name": "visits", "kind": "numeric"}, {"name": "price", "kind": "numeric"},
                                        {"name": "country", "kind": "categorical"},
                                        {"name": "bought", "kind": "categorical"}],
            "tasks": [{"name": "buyer", "label_column": "bought", "positive_values": ["yes"]}]}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(json.dumps(spec))  # JSON is YAML
    data = tmp_path / "train"
    data.mkdir()
    rows = [["visits", "price", "country", "bought"]] + [[str(i % 7), f"{i * 1.5:.1f}", ["fr", "de", "it"][i % 3],
                                                         "yes" if i % 4 == 0 else "no"] for i in range(40)]
    _write(str(tmp_path), "train", rows)
    out = tmp_path / "schema.pbtxt"
    result = CliRunner().invoke(cli.main, ["schema", "--spec", str(spec_path), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote {out}: 4 features inferred from 40 rows.")
    schema = load_schema(str(out))
    types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
    assert types == {"visits": "INT", "price": "FLOAT", "country": "BYTES", "bought": "BYTES"}
    domains = {d.name: sorted(d.value) for d in schema.string_domain}
    assert domains["country"] == ["de", "fr", "it"]
    check_schema(schema, DatasetSpec.from_dict(spec), "inferred")

    spec["columns"].append({"name": "age", "kind": "numeric"})
    spec_path.write_text(json.dumps(spec))
    result = CliRunner().invoke(cli.main, ["schema", "--spec", str(spec_path), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 1 and result.output.strip() == (
        f"Error: {data / 'data.csv'}:1: the header does not name the spec's columns: missing ['age'], not in the "
        "spec []; the columns found are ['visits', 'price', 'country', 'bought']. Fix the header or the spec's "
        "columns.")

    # The same data as the spec's format says it is written: no header, ';', '?' missing, "yes." labels.
    spec["columns"].pop()
    spec["format"] = {"header": False, "separator": ";", "strip": ".", "missing_values": ["?"]}
    spec_path.write_text(json.dumps(spec))
    _write(str(tmp_path), "train", [[("?" if i == 0 else v) if j == 1 else (v + "." if j == 3 else v)
                                     for j, v in enumerate(row)] for i, row in enumerate(rows[1:])], delimiter=";")
    result = CliRunner().invoke(cli.main, ["schema", "--spec", str(spec_path), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    schema = load_schema(str(out))
    assert {d.name: sorted(d.value) for d in schema.string_domain}["bought"] == ["no", "yes"]
    price = next(f for f in schema.feature if f.name == "price")
    assert price.type == schema_pb2.FLOAT and price.presence.min_fraction < 1.0  # one "?" read as missing


# --- the spec's file format and spans --------------------------------------------------------------

def _headerless(spec, separator=","):
    raw = spec.to_dict()
    raw["format"] = {"header": False, "separator": separator}
    return DatasetSpec.from_dict(raw)


def test_a_headerless_format_reads_rows_as_the_spec_columns(census_spec, root):
    for split in ("train", "eval", "test"):
        _write(root, split, _rows(root, split)[1:])  # drop the header line
    assert sum(r.rows for r in _check(_headerless(census_spec), root).values()) == 60


def test_a_headerless_file_with_another_separator_is_one_column_and_says_so(census_spec, root):
    path = _write(root, "train", _rows(root, "train")[1:], delimiter=";")
    with pytest.raises(preflight.PreflightError, match=rf"{path}:1: the first row is one column, the spec has 42: "
                                                       r".* it looks separated by ';'"):
        _check(_headerless(census_spec), root)


def test_a_headerless_row_with_other_columns_names_the_count(census_spec, root):
    path = _write(root, "train", [row[:40] for row in _rows(root, "train")[1:]])
    with pytest.raises(preflight.PreflightError, match=rf"{path}:1: 40 fields, the spec has 42 columns \(age, "
                                                       r"class_of_worker, .*\); the spec's format says the files have "
                                                       r"no header"):
        _check(_headerless(census_spec), root)


def test_spans_are_checked_and_an_empty_newest_span_is_named(census_spec, root, tmp_path):
    spans = str(tmp_path / "spans")
    shutil.copytree(root, os.path.join(spans, "span-1"))
    shutil.copytree(root, os.path.join(spans, "span-2"))
    selection, summaries = preflight.check_inputs(census_spec, SCHEMA, spans, "span-{SPAN}", num_spans=2)
    assert selection.spans == (2, 1) and {s: r.rows for s, r in summaries.items()} == {
        "train": 96, "eval": 12, "test": 12}
    os.makedirs(os.path.join(spans, "span-3", "train"))
    with pytest.raises(preflight.PreflightError, match=r"span 3 has no files for split 'train' \(pattern "
                                                       rf"{spans}/span-3/train/\*\); the newest span must hold data"):
        preflight.check_inputs(census_spec, SCHEMA, spans, "span-{SPAN}")
    with pytest.raises(preflight.PreflightError, match=rf"data root {root!r} holds no span folder named like "
                                                       r"'span-\{SPAN\}'"):
        preflight.check_inputs(census_spec, SCHEMA, root, "span-{SPAN}")


def test_prepare_writes_the_next_span(tmp_path):
    from pipeline.cli import main

    out = str(tmp_path / "spans")
    for span in (1, 2):
        result = CliRunner().invoke(main, ["prepare", "--data", census.SAMPLE_PATH, "--output-dir", out, "--span"])
        assert result.exit_code == 0, result.output
        assert f"to {os.path.join(out, f'span-{span}')}" in result.output
    assert sorted(os.listdir(out)) == ["span-1", "span-2"]  # no staging folder left
    assert sorted(os.listdir(os.path.join(out, "span-2"))) == ["eval", "manifest.json", "test", "train"]
