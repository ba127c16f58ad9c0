"""The whole chain on 2,000 rows of the embedded sample (5 % of the train ages empty, imputed with
the train mean as the spec declares), run five times in one place:

1. a first run with reachable thresholds trains, blesses and pushes;
2. the same run again: everything up to the Trainer is cached, the Evaluator compares the
   model with itself (now the baseline) and no second copy is pushed;
3. a worse model (one training step) is compared with the pushed one and not pushed;
4. the same worse run again, with the LocalDagRunner, is served entirely from the cache;
5. a better-trained model passes against the same baseline and is pushed beside the first.
"""

import dataclasses
import glob
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx  # noqa: E402

from components.drift import PREVIOUS_SPAN_PROPERTY, SPAN_PROPERTY
from components.names import SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from components.serving_check import ServingCheck
from pipeline.reporting import report

pytestmark = pytest.mark.e2e

from tests.pipeline.conftest import MAX_DROP, MIN_AUC, NODES, _read  # noqa: F401, E402


def test_first_run_executes_every_component_and_pushes(runs):
    first = runs["first"]
    assert first["states"] == {node: "COMPLETE" for node in NODES}
    assert len(first["versions"]) == 1
    config = runs["config"]
    assert os.path.exists(os.path.join(config.serving_model_dir, first["versions"][0], "saved_model.pb"))
    decision = first["decision"]
    assert decision["pushed"] and decision["failing_tasks"] == [] and not decision["has_baseline"]
    assert decision["pushed_destination"] == os.path.join(config.serving_model_dir, first["versions"][0])
    for task in ("income", "never_married"):
        assert decision["tasks"][task]["auc"] >= MIN_AUC
        assert decision["tasks"][task]["baseline_auc"] is None
    assert decision["serving_check"] == {"ok": True, "num_examples": 16, "failures": {}, "anomalies": [],
                                         "drift": [], "spans": [0]}


def test_trainer_writes_gate_statistics_beside_the_model_run(runs):
    config, store = runs["config"], runs["store"]
    model_run = report.latest_output_uri(store, config.pipeline_name, "Trainer", "ModelRun")
    stats = _read(os.path.join(model_run, "gate_stats.json"))
    assert stats["variant"] == "mmoe" and stats["gates"]["examples"] == 3 * 64  # eval_steps x batch_size
    for task in ("income", "never_married"):
        weights = stats["gates"]["tasks"][task]["mean_gate_weight"]
        assert len(weights) == 4 and sum(weights) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= stats["gates"]["tasks"][task]["mean_entropy"] <= np.log(4) + 1e-6


def test_declared_empty_ages_are_imputed_and_are_no_anomaly(runs):
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    assert runs["empty_ages"] > 40  # of 1,600 train rows
    assert runs["first"]["decision"]["pushed"] and runs["first"]["decision"]["anomalies"] == []
    uri = runs["first"]["anomalies_uri"]
    files = sorted(glob.glob(os.path.join(uri, "Split-*", "SchemaDiff.pb")))
    assert [os.path.basename(os.path.dirname(f)) for f in files] == ["Split-eval", "Split-test", "Split-train"]
    for path in files:
        anomalies = anomalies_pb2.Anomalies()
        with open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        assert dict(anomalies.anomaly_info) == {}, path


def test_rerun_reuses_the_cache_and_does_not_push_a_copy(runs):
    again = runs["again"]
    # The first model now serves: ServingBaseline (its cache key is the served version) hands it to
    # the Evaluator as the baseline, so only the baseline, evaluation and push re-run.
    assert again["states"] == {
        node: ("COMPLETE" if node in ("ServingBaseline", "Evaluator", "Pusher") else "CACHED")
        for node in NODES
    }
    assert again["versions"] == runs["first"]["versions"]
    decision = again["decision"]
    assert decision["pushed"] and decision["pushed_destination"] == runs["first"]["decision"]["pushed_destination"]
    for d in decision["tasks"].values():
        assert d["auc_change"] == pytest.approx(0.0)


def test_unchanged_run_after_a_rejected_model_is_entirely_cached(runs):
    cached = runs["cached"]
    assert cached["states"] == {
        node: "CACHED" for node in NODES  # the served model did not change: nor did the baseline
    }
    assert cached["versions"] == runs["first"]["versions"]
    assert cached["decision"]["failing_tasks"] == runs["worse"]["decision"]["failing_tasks"]


def test_worse_model_is_not_pushed_and_the_decision_names_the_task(runs):
    worse = runs["worse"]
    assert worse["versions"] == runs["first"]["versions"]  # serving keeps the old version only
    decision = worse["decision"]
    assert not decision["pushed"] and decision["has_baseline"]
    assert decision["failing_tasks"]
    for task in decision["failing_tasks"]:
        d = decision["tasks"][task]
        assert d["baseline_auc"] == pytest.approx(runs["first"]["decision"]["tasks"][task]["auc"])
        assert d["auc"] < d["baseline_auc"] - MAX_DROP or d["auc"] < MIN_AUC
        assert any(task in reason for reason in decision["reasons"])
    assert any("change against baseline" in r for r in decision["reasons"])


def test_better_model_is_pushed_beside_the_old_one(runs):
    better = runs["better"]
    assert len(better["versions"]) == 2 and better["versions"][0] == runs["first"]["versions"][0]
    decision = better["decision"]
    assert decision["pushed"] and decision["has_baseline"] and decision["failing_tasks"] == []
    for d in decision["tasks"].values():
        assert d["auc_change"] >= -MAX_DROP
    assert decision["pushed_destination"].endswith(better["versions"][1])


def test_tfma_reports_auc_for_every_task_on_every_declared_slice(runs, spec):
    config, prepared, store = runs["config"], runs["prepared"], runs["store"]
    uri = report.latest_output_uri(store, config.pipeline_name, "Evaluator", "ModelEvaluation")
    rows = {r.slice_name: r for r in report.evaluation_metrics(uri, spec)}
    assert rows["Overall"].example_count == {t: prepared.counts["test"] for t in spec.output_names}
    for sl in spec.slices:
        names = [n for n in rows if n.startswith(sl.key + ":")]
        assert names, f"no slice of {sl.key} in {sorted(rows)}"
        # The slice values partition the test split.
        assert sum(rows[n].example_count["income"] for n in names) == prepared.counts["test"]
        for name in names:
            assert set(rows[name].auc) == set(spec.output_names)
    assert {n for n in rows if n.startswith("age_band:")} <= {f"age_band:{b}" for b in ("<25", "25-44", "45-64", ">=65")}
    # Children earn no income > 50K: AUC is undefined there and reported as None, not TFMA's 0.
    assert rows["education:Children"].auc["income"] is None
    assert rows["Overall"].auc["income"] is not None


def test_serving_default_scores_raw_examples_without_labels(runs, spec):
    config, store = runs["config"], runs["store"]
    examples_uri = report.latest_output_uri(store, config.pipeline_name, "CsvExampleGen", "Examples")
    from components.serving_check import raw_examples

    serialized = raw_examples(examples_uri, "test", spec, 20)
    assert all(col not in tf.train.Example.FromString(serialized[0]).features.feature for col in spec.label_columns)
    model = tf.saved_model.load(os.path.join(config.serving_model_dir, runs["first"]["versions"][0]))
    outputs = model.signatures[SERVING_SIGNATURE](examples=tf.constant(serialized))
    assert sorted(outputs) == sorted(spec.output_names)
    for value in outputs.values():
        value = value.numpy()
        assert value.shape == (20, 1)
        assert np.isfinite(value).all() and ((value >= 0) & (value <= 1)).all()
    assert outputs["never_married"].numpy().std() > 0.01  # not a constant


def _rows(features: dict, spec):
    """The transformed feature values, one row per example, in a canonical row order (Beam does not
    keep the input order): sorted on the values rounded to 3 decimals."""
    matrix = np.stack([np.asarray(features[k], dtype="float64").reshape(-1) for k in spec.feature_keys], axis=1)
    order = np.lexsort(np.round(matrix, 3).T[::-1])
    return matrix[order]


def test_no_train_serve_skew(runs, spec):
    """The pushed model's in-graph transform gives, for the raw eval rows, exactly the rows the Trainer
    was fed (Transform's Beam output), and serving_default on raw rows without labels scores them as
    the model does on those transformed rows."""
    config, store = runs["config"], runs["store"]
    examples_uri = report.latest_output_uri(store, config.pipeline_name, "CsvExampleGen", "Examples")
    transformed_uri = report.latest_output_uri(store, config.pipeline_name, "Transform", "Examples")
    from components.serving_check import raw_examples

    def records(uri, split):
        files = sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*")))
        return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]

    labelled = records(examples_uri, "eval")
    trained_on = {k: [] for k in spec.feature_keys}
    for record in records(transformed_uri, "eval"):
        feature = tf.train.Example.FromString(record).features.feature
        for name in trained_on:
            f = feature[name]
            trained_on[name].append((f.float_list.value or f.int64_list.value)[0])
    model = tf.saved_model.load(os.path.join(config.serving_model_dir, runs["first"]["versions"][0]))
    in_graph = model.signatures[TRANSFORM_SIGNATURE](examples=tf.constant(labelled))
    assert len(labelled) == len(trained_on[spec.features[0].transformed_name]) > 100
    np.testing.assert_allclose(_rows(in_graph, spec), _rows(trained_on, spec), rtol=1e-5, atol=1e-5)
    served = model.signatures[SERVING_SIGNATURE](
        examples=tf.constant(raw_examples(examples_uri, "eval", spec, len(labelled))))
    direct = model({k: in_graph[k] for k in spec.feature_keys}, training=False)
    for task in spec.tasks:
        np.testing.assert_allclose(served[task.output_name].numpy(), direct[task.output_name].numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_a_model_with_an_estimate_as_feature_exports_and_serves(runs, spec, tmp_path):
    import tensorflow_transform as tft

    from components.serving_check import raw_examples
    from trainer.config import TrainerConfig
    from trainer.input_data import vocabulary_sizes
    from trainer.model import build_model
    from trainer.signatures import export

    config, store = runs["config"], runs["store"]
    tf_transform_output = tft.TFTransformOutput(
        report.latest_output_uri(store, config.pipeline_name, "Transform", "TransformGraph"))
    trainer_config = TrainerConfig(num_experts=2, expert_units=4, prediction_inputs={"income": "never_married"})
    model = build_model(spec, trainer_config, vocabulary_sizes(tf_transform_output, spec))
    export(model, tf_transform_output, spec, str(tmp_path / "model"))
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    examples_uri = report.latest_output_uri(store, config.pipeline_name, "CsvExampleGen", "Examples")
    outputs = loaded.signatures[SERVING_SIGNATURE](examples=tf.constant(raw_examples(examples_uri, "test", spec, 8)))
    assert sorted(outputs) == sorted(spec.output_names)
    for value in outputs.values():
        assert value.shape == (8, 1) and ((value.numpy() >= 0) & (value.numpy() <= 1)).all()
    assert "estimate_of_never_married_for_income" in [layer.name for layer in model.layers]


class _NaNForOneTask(tf.Module):
    """Wraps a served model so that one task answers NaN."""

    def __init__(self, model, task):
        super().__init__()
        self.model = model
        self.task = task

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        outputs = dict(self.model.signatures[SERVING_SIGNATURE](examples=examples))
        outputs[self.task] = outputs[self.task] * float("nan")
        return outputs


def test_serving_check_stops_a_model_that_returns_nan_for_one_task(runs, spec, tmp_path):
    config, store = runs["config"], runs["store"]
    good = tf.saved_model.load(os.path.join(config.serving_model_dir, runs["first"]["versions"][0]))
    bad = _NaNForOneTask(good, "never_married")
    model_uri = str(tmp_path / "nan_model")
    tf.saved_model.save(bad, os.path.join(model_uri, "Format-Serving"), signatures={SERVING_SIGNATURE: bad.serve})
    examples_uri = report.latest_output_uri(store, config.pipeline_name, "CsvExampleGen", "Examples")
    anomalies_uri = report.latest_output_uri(store, config.pipeline_name, "ExampleValidator", "ExampleAnomalies")

    model = tfx.dsl.Importer(source_uri=model_uri, artifact_type=tfx.types.standard_artifacts.Model).with_id("model")
    anomalies = tfx.dsl.Importer(
        source_uri=anomalies_uri, artifact_type=tfx.types.standard_artifacts.ExampleAnomalies,
        properties={"split_names": '["train", "eval", "test"]'},
    ).with_id("anomalies")
    examples = tfx.dsl.Importer(
        source_uri=examples_uri, artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["train", "eval", "test"]'},
    ).with_id("examples")
    drift = tfx.dsl.Importer(
        source_uri=report.latest_output_uri(store, config.pipeline_name, "SpanDrift", "ExampleAnomalies"),
        artifact_type=tfx.types.standard_artifacts.ExampleAnomalies, properties={"split_names": '["train"]'},
        custom_properties={PREVIOUS_SPAN_PROPERTY: -1, SPAN_PROPERTY: 0},
    ).with_id("drift")
    check = ServingCheck(model=model.outputs["result"], examples=examples.outputs["result"],
                         anomalies=anomalies.outputs["result"], drift=drift.outputs["result"],
                         spec_json=spec.to_json())
    serving_dir = str(tmp_path / "serving")
    pusher = tfx.components.Pusher(
        model=model.outputs["result"], infra_blessing=check.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)),
    )
    check_config = dataclasses.replace(
        config, pipeline_name="serving-check", pipeline_root=str(tmp_path / "root"),
        metadata_path=str(tmp_path / "metadata.sqlite"), serving_model_dir=serving_dir,
    )
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=check_config.pipeline_name, pipeline_root=check_config.pipeline_root,
        components=[model, examples, anomalies, drift, check, pusher],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            check_config.metadata_path),
    ))
    decision = report.write_decision(check_config, str(tmp_path / "decision.json"))
    assert not os.path.exists(serving_dir) or os.listdir(serving_dir) == []
    assert not decision["pushed"] and decision["failing_tasks"] == ["never_married"]
    assert decision["serving_check"]["failures"]["never_married"].startswith("16 of 16 examples did not get")
    assert "income" not in decision["serving_check"]["failures"]


def _served(model, examples):
    batch = tf.constant(examples, dtype=tf.string)
    return {k: v.numpy() for k, v in model.signatures[SERVING_SIGNATURE](examples=batch).items()}


def _example(row: dict) -> bytes:
    feature = {}
    for name, value in row.items():
        if isinstance(value, bytes):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        elif isinstance(value, float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        elif value is None:  # present, with no value (what CsvExampleGen writes for an empty cell)
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[]))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def served_model(runs):
    config = runs["config"]
    return tf.saved_model.load(os.path.join(config.serving_model_dir, runs["first"]["versions"][0]))


@pytest.fixture(scope="module")
def raw_row(runs, spec):
    """The first raw test example as a dict of Python values, labels removed."""
    from components.serving_check import raw_examples

    config, store = runs["config"], runs["store"]
    examples_uri = report.latest_output_uri(store, config.pipeline_name, "CsvExampleGen", "Examples")
    example = tf.train.Example.FromString(raw_examples(examples_uri, "test", spec, 1)[0])
    row = {}
    for name, f in example.features.feature.items():
        values = f.bytes_list.value or f.int64_list.value or f.float_list.value
        row[name] = values[0]
    return row


def test_a_missing_feature_at_serving_gets_what_training_saw(runs, spec, served_model, raw_row):
    """An absent or empty age is imputed in the graph with the train mean: the same z-score the
    Trainer was fed for the train rows whose age was empty."""
    absent = {k: v for k, v in raw_row.items() if k != "age"}
    empty = dict(raw_row, age=None)
    transform = served_model.signatures[TRANSFORM_SIGNATURE]
    labelled = {**absent, "income": b"- 50000", "marital_stat": b"Never married"}
    age_absent = float(np.ravel(transform(examples=tf.constant([_example(labelled)]))["age_xf"])[0])
    age_empty = float(np.ravel(transform(examples=tf.constant([_example({**labelled, "age": None})]))["age_xf"])[0])
    assert age_absent == pytest.approx(0.0, abs=1e-5) and age_empty == pytest.approx(0.0, abs=1e-5)
    # the mean's z-score is 0; in Transform's train output, exactly the rows with an empty age carry it
    config, store = runs["config"], runs["store"]
    transformed_uri = report.latest_output_uri(store, config.pipeline_name, "Transform", "Examples")
    files = sorted(glob.glob(os.path.join(transformed_uri, "Split-train", "*")))
    ages = [tf.train.Example.FromString(r.numpy()).features.feature["age_xf"].float_list.value[0]
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert sum(abs(a) < 1e-5 for a in ages) == runs["empty_ages"]
    served = _served(served_model, [_example(absent), _example(empty)])
    for task in spec.output_names:
        assert served[task][0] == pytest.approx(served[task][1], abs=1e-6)
        assert 0 <= served[task][0] <= 1


def test_an_unseen_category_at_serving_is_scored_through_the_oov_bucket(spec, served_model, raw_row):
    unseen = dict(raw_row, education=b"A degree no census has seen")
    other = dict(raw_row, education=b"Another unseen degree")
    served = _served(served_model, [_example(unseen), _example(other)])
    for task in spec.output_names:
        assert np.isfinite(served[task]).all() and ((served[task] >= 0) & (served[task] <= 1)).all()
        # both land in the single OOV bucket: the same score
        assert served[task][0] == pytest.approx(served[task][1], abs=1e-6)


def test_a_wrong_type_at_serving_is_a_clear_error_from_the_signature(served_model, raw_row):
    wrong = dict(raw_row, age=b"forty")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Key: age, Index: 0\.\s+Data types don't match\. "
                                                            r"Expected type: int64, Actual type: string"):
        _served(served_model, [_example(wrong)])


def test_an_empty_serving_batch_gets_empty_outputs(spec, served_model):
    served = _served(served_model, [])
    assert {task: value.shape for task, value in served.items()} == {task: (0, 1) for task in spec.output_names}


def test_a_failing_component_ends_in_one_line_that_names_it_and_the_cause(runs, tmp_path):
    """On a copy of the e2e store, so everything up to the Trainer is served from the cache."""
    import shutil

    from pipeline.local import local_runner
    from tests.pipeline.broken_trainer import BROKEN_MESSAGE

    config = runs["config"]
    shutil.copy(config.metadata_path, tmp_path / "metadata.sqlite")
    broken = dataclasses.replace(config, metadata_path=str(tmp_path / "metadata.sqlite"),
                                 run_fn="tests.pipeline.broken_trainer.run_fn")
    with pytest.raises(local_runner.ComponentFailed) as failed:
        local_runner.run(broken, decision_path=str(tmp_path / "decision.json"))
    assert str(failed.value) == f"Trainer failed: ValueError: {BROKEN_MESSAGE}"
    states = report.node_states(report.open_store(broken.metadata_path), broken.pipeline_name, NODES)
    assert (states["Transform"], states["Trainer"]) == ("CACHED", "FAILED")
    assert not os.path.exists(tmp_path / "decision.json")


@pytest.fixture(scope="module")
def cli_run(runs):
    """The "better" run, made through `mmoe-pipeline run` (see conftest.run_cli)."""
    return runs["better"]["cli"]


def test_the_terminal_shows_one_line_per_component_start_and_end_and_the_log_holds_the_rest(cli_run):
    lines = (cli_run.stdout + cli_run.stderr).strip().splitlines()
    assert len(lines) < 60, "\n".join(lines)
    log_path = lines[0].split()[-1]
    assert lines[0] == f"Log:          {log_path}" and log_path.endswith(".log")
    for node in NODES:
        starts = [line for line in lines if line.split()[:2] == [node, "started"]]
        ends = [line for line in lines if line.split()[:1] == [node] and line.split()[1] != "started"]
        assert len(starts) == 1 and len(ends) == 1, (node, lines)
    by_node = {line.split()[0]: line.split() for line in lines if line.startswith("  ") and
               line.split()[:1] and line.split()[0] in NODES and line.split()[1] != "started"}
    assert by_node["Transform"][1] == "cached" and by_node["Trainer"][1] == "complete"
    assert by_node["Trainer"][4:6] == ["400", "steps,"] and by_node["Evaluator"][1] == "complete"
    assert "AUC income" in " ".join(by_node["Evaluator"]) and by_node["Pusher"][-2:] != ["not", "pushed"]
    assert lines[-1].startswith("Decision:") and any(line.startswith("PUSHED to ") for line in lines)
    assert not any("WARNING" in line or "INFO" in line for line in lines)  # no log record on the console
    with open(log_path) as f:
        log = f.read()
    for expected in ("INFO absl: node Transform is running.", "INFO absl: node Pusher is finished.",
                     "Running launcher for node_info", "education:Children", "Preflight: spec, schema and data",
                     # the 1,600 train rows are parsed once and held in memory (TrainerConfig.in_memory_max_mb)
                     "Train split in memory: 1600 rows",
                     # 2,000 input rows: in-process Beam (pipeline.graph.beam_options.AUTO_WORKERS_MIN_ROWS)
                     "Beam components: 1 worker process(es) (--beam-workers default for this data); Beam "
                     "arguments []."):
        assert expected in log, expected
    assert len(log.splitlines()) > 20 * len(lines)


def test_the_pipeline_time_benchmark_reads_the_times_of_a_cli_run(cli_run):
    """bench/pipeline_time.py's reading of `mmoe-pipeline run`'s console output, on a real one."""
    from tests.conftest import load_bench

    bench = load_bench("pipeline_time")
    text = cli_run.stdout + cli_run.stderr
    parsed = bench.parse_output(text, "the e2e CLI run")
    [finished] = [line for line in text.splitlines() if line.startswith("Pipeline ") and " finished in " in line]
    assert parsed["pipeline_s"] == int(finished.split()[-2])
    completed = {line.split()[0]: float(line.split()[2]) for line in text.splitlines()
                 if line.startswith("  ") and line.split()[1:2] == ["complete"]}
    assert parsed["components"] == completed
    assert "Trainer" in completed and "Transform" not in completed  # cached: it did not run
    both = bench.summary([{**parsed, "wall_s": 1.0}, {**parsed, "wall_s": 3.0}])
    assert (both["pipeline_s"], both["wall_s"], both["components"]) == (parsed["pipeline_s"], 2.0, completed)
    with pytest.raises(ValueError, match=r"no 'Pipeline \.\.\. finished in' line in x\.log"):
        bench.parse_output(text.replace("finished in", "ended after"), "x.log")


def test_run_writes_a_self_contained_report_whose_numbers_are_tfmas(cli_run, runs, spec):
    import base64
    import html.parser

    report_path = next(line.split()[-1] for line in cli_run.stdout.splitlines() if line.startswith("Report:"))
    assert report_path == os.path.join(os.path.dirname(runs["config"].pipeline_root), "report.html")

    class Page(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.sections, self.images, self.cells, self.section, self.table = [], {}, {}, None, None
            self.in_cell, self.row = False, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "section":
                self.section = attrs["id"]
                self.sections.append(self.section)
            elif tag == "img":
                self.images.setdefault(self.section, []).append(attrs["src"])
            elif tag == "table":
                self.table = attrs.get("id")
                self.cells[self.table] = []
            elif tag == "tr":
                self.row = []
            elif tag == "td":
                self.in_cell = True
                self.row.append("")

        def handle_endtag(self, tag):
            if tag == "td":
                self.in_cell = False
            elif tag == "tr" and self.row:
                self.cells[self.table].append(self.row)

        def handle_data(self, data):
            if self.in_cell:
                self.row[-1] += data

    page = Page()
    with open(report_path) as f:
        page.feed(f.read())
    assert page.sections == ["decision", "slices", "quality", "gates", "training", "data", "lineage"]
    for section in ("slices", "quality", "gates", "training"):
        assert page.images.get(section), section
        for src in page.images[section]:
            png = base64.b64decode(src[len("data:image/png;base64,"):])
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, section
    assert len(page.images["slices"]) == len(spec.tasks)
    # every number of the slice table is TFMA's, and undefined AUCs are marked as such
    evaluation = _read(os.path.join(os.path.dirname(runs["config"].pipeline_root), "decision.json"))["evaluation"]
    tfma_rows = {r.slice_name: r for r in report.evaluation_metrics(evaluation, spec)}
    table = {row[0]: row[1:] for row in page.cells["slice-table"]}
    assert set(table) == set(tfma_rows)
    for name, row in table.items():
        for i, task in enumerate(spec.output_names):
            auc = tfma_rows[name].auc[task]
            assert row[2 * i] == ("undefined" if auc is None else f"{auc:.4f}"), (name, task)
            assert row[2 * i + 1] == f"{tfma_rows[name].example_count[task]:.0f}"
    assert table["education:Children"][0] == "undefined"
    overall = tfma_rows["Overall"]
    assert page.cells["quality-table"] == [[t, f"{overall.auc_pr[t]:.4f}", f"{overall.calibration[t]:.4f}"]
                                           for t in spec.output_names]
    assert {row[0]: row[1] for row in page.cells["rows-table"]} == {"eval": "200", "test": "200", "train": "1600"}
    lineage = dict(page.cells["lineage-table"])
    assert lineage["data"] == runs["config"].data_root


def test_the_serving_benchmark_measures_the_pushed_model(runs, spec):
    """bench/serving.py on this run, tiny: the shape of its result (never timings)."""
    from tests.conftest import load_bench

    bench = load_bench("serving")
    model_dir, serialized = bench.run_inputs(os.path.dirname(runs["config"].pipeline_root), spec, limit=50)
    assert model_dir == os.path.join(runs["config"].serving_model_dir, runs["better"]["versions"][-1])
    assert len(serialized) == 50
    result = bench.measure(model_dir, serialized, requests=20, repeats=2)
    assert result["batch_1"]["requests"] == 20 and 0 < result["batch_1"]["p50_ms"] <= result["batch_1"]["p99_ms"]
    assert result["batch_1024"]["repeats"] == 2 and result["batch_1024"]["median_examples_per_s"] > 0


def test_the_paper_benchmark_tunes_and_scores_a_variant_on_this_run(runs, spec):
    """bench/paper.py on this run's Transform output, tiny: two trials (the defaults first) picked by
    the main task's eval AUC, two seeds."""
    from components.spec import SPLIT_NAMES
    from tests.conftest import load_bench

    bench = load_bench("paper")
    splits, vocab_sizes = bench.load_splits(runs["store"], runs["config"].pipeline_name, spec)
    rows = {split: len(next(iter(labels.values()))) for split, (_, labels) in splits.items()}
    assert rows == dict(zip(SPLIT_NAMES, (1600, 200, 200)))  # test: ExampleGen's rows through Transform
    assert set(splits["test"][0]) == set(spec.feature_keys)
    result = bench.run_variant(spec, "mmoe", splits, vocab_sizes, steps=4, trials=2, seeds=2, seed=3,
                               objective="main_auc")
    assert [t["values"] for t in result["trials"]][0] == {} and len(result["trials"]) == 2
    assert result["best"] == max(result["trials"], key=lambda t: t["main_auc"])["values"]
    assert len(result["test_auc"]) == 2
    assert all(0 <= r[t.name] <= 1 for r in result["test_auc"] for t in spec.tasks)
    assert len(bench.table("1", {"mmoe": result}, [t.name for t in spec.tasks])) == 5


def test_the_boosted_tree_reference_trains_on_the_same_split_files(runs, spec):
    """bench/paper.py's LightGBM row on this run's own split files, tiny: two seeds. Shape and the
    data it reads, never a timing."""
    from components.spec import SPLIT_NAMES
    from tests.conftest import load_bench

    bench = load_bench("paper")
    frames = bench.split_frames(spec, runs["prepared"].root)
    assert {s: len(frames[s][0]) for s in SPLIT_NAMES} == dict(zip(SPLIT_NAMES, (1600, 200, 200)))
    features, labels = frames["train"]
    assert list(features.columns) == [c.name for c in spec.features]  # labels and the weight are no features
    assert str(features["education"].dtype) == "category" and features["age"].dtype.kind in "if"
    positives = {t: float(v.mean()) for t, v in labels.items()}
    assert 0.03 < positives["income"] < 0.12 and 0.3 < positives["never_married"] < 0.5, positives
    result = bench.boosted_trees(spec, runs["prepared"].root, seeds=2, seed=3)
    assert len(result["test_auc"]) == 2 and result["best"]["model"].startswith("LightGBM ")
    assert all(0.7 < r[t.name] <= 1 for r in result["test_auc"] for t in spec.tasks), result["test_auc"]
    (row,) = [line for line in bench.table("1", {"boosted_trees": result}, [t.name for t in spec.tasks])
              if line.startswith("| boosted_trees |")]
    assert row.count("median") == 2


def test_the_trainer_rate_benchmark_reads_the_bare_fit_rate(runs, spec, caplog):
    """bench/trainer_rate.py's bare fit on this run's transformed data, tiny: its progress reports
    parse into a steady rate as the Trainer's do."""
    from pipeline.reporting import report
    from tests.conftest import load_bench

    bench = load_bench("trainer_rate")
    store, name = runs["store"], runs["config"].pipeline_name
    with caplog.at_level(logging.INFO):
        bench.bare_fit(report.latest_output_uri(store, name, "Transform", "Examples"),
                       report.latest_output_uri(store, name, "Transform", "TransformGraph"), steps=30, spec=spec)
    reports = [r.getMessage() for r in caplog.records if "examples/s" in r.getMessage()]
    assert [m.split()[3] for m in reports] == [f"{s}/30" for s in range(3, 31, 3)]
    assert bench.steady_rate("\n".join(reports)) > 0


def test_the_variants_benchmark_trains_a_variant_on_this_run_from_its_cache(runs, spec, tmp_path):
    """bench/variants.py on this run's pipeline, tiny: one variant, 20 steps; everything before the
    Trainer comes from the cache, and the table has the variant's AUCs and times."""
    import dataclasses
    import shutil

    from pipeline.reporting import report
    from tests.conftest import load_bench

    bench = load_bench("variants")
    # On a copy of this run's ML Metadata store: the cache is the same, and the benchmark's Trainer and
    # Evaluator do not become "the latest" of the store the other tests read.
    shared = runs["config"]
    metadata = str(tmp_path / "metadata.sqlite")
    shutil.copy(shared.metadata_path, metadata)
    latest_trainer = report.latest_output_uri(runs["store"], shared.pipeline_name, "Trainer", "Model")
    config = dataclasses.replace(shared, serving_model_dir=str(tmp_path / "serving"), train_steps=20,
                                 metadata_path=metadata)
    rows = bench.compare(config, ["shared_bottom"], repeats=1, seed=5)
    assert report.latest_output_uri(runs["store"], shared.pipeline_name, "Trainer", "Model") == latest_trainer
    states = report.node_states(report.open_store(metadata), config.pipeline_name, NODES)
    assert {n: states[n] for n in ("CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator")} == {
        "CsvExampleGen": "CACHED", "StatisticsGen": "CACHED", "Transform": "CACHED",
        "Trainer": "COMPLETE", "Evaluator": "COMPLETE"}
    assert [(r["variant"], r["model_seed"]) for r in rows] == [("shared_bottom", 5)]
    assert sorted(rows[0]["auc"]) == sorted(t.name for t in spec.tasks)
    assert all(0 <= auc <= 1 for auc in rows[0]["auc"].values())
    assert rows[0]["trainer_s"] > 0 and rows[0]["evaluator_s"] > 0
    lines = bench.table(rows, [t.name for t in spec.tasks])
    assert len(lines) == 3 and lines[2].startswith("| shared_bottom | ")
    assert lines[2].count("|") == len(spec.tasks) + 4


def test_the_report_renders_in_a_real_browser(cli_run, tmp_path):
    """Headless Chromium loads report.html: every section is in the rendered DOM, every image was decoded
    (a width and height from the PNG), and the screenshot is the window's size and not blank. Without
    chromium this is skipped on a workstation and fails in CI (`.ci/run` installs it)."""
    import matplotlib.image

    from tests.pipeline import browser

    if browser.chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI: no chromium on PATH; .ci/run installs it with apt-get (Debian's chromium package).")
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    report_path = next(line.split()[-1] for line in cli_run.stdout.splitlines() if line.startswith("Report:"))
    rendered = browser.render(report_path, str(tmp_path), width=1280, height=3000)
    assert rendered["sections"] == ["decision", "slices", "quality", "gates", "training", "data", "lineage"]
    drawn = {i["section"] for i in rendered["images"]}
    assert drawn == {"slices", "quality", "gates", "training"}
    assert all(i["complete"] and i["width"] > 100 and i["height"] > 100 for i in rendered["images"]), rendered["images"]
    pixels = matplotlib.image.imread(rendered["screenshot"])
    assert pixels.shape[:2] == (3000, 1280)
    assert pixels[..., :3].std() > 0.05  # text and plots, not a blank page
