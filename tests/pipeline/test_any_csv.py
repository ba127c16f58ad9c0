"""A dataset that is not census, brought with nothing but a spec file, through `mmoe-pipeline run`.

The test writes two headerless, ';'-separated files with its own columns ("?" for a missing
value, labels written "yes." / "no.") and a spec that declares that format, an 8/1/1 split made
in the pipeline by hash buckets, two binary tasks, a regression task and a multi-class task (PLE). No schema is
given: SchemaGen infers it. The Tuner (two trials) picks the hyper-parameters the Trainer uses.
One run, in its own process, as a user runs it, with the data root, the pipeline root and the
serving directory on a real S3 server (moto on 127.0.0.1, through tensorflow-io and Beam's boto3
filesystem): only ML Metadata, the logs, the decision and the report stay local.
"""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from tfx.dsl.io import fileio

from pipeline.reporting import report

pytestmark = pytest.mark.e2e

ROWS = 3000
REGIONS = ("north", "south", "east", "west", "centre")
SEGMENTS = ("bargain", "regular", "premium")


def _dataset(root: str, seed: int = 0) -> dict:
    """Writes the files under `root` and returns the spec (as a dict)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 3))
    region = rng.integers(len(REGIONS), size=ROWS)
    effect = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])[region]
    visits = rng.poisson(3.0, size=ROWS)
    click_logit = 2.0 * x[:, 0] + effect + 0.3 * visits - 1.0
    clicked = rng.random(ROWS) < 1 / (1 + np.exp(-click_logit))
    bought = rng.random(ROWS) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - 1.5 * x[:, 1] + effect - 0.5)))
    spend = 3.0 * x[:, 1] + 2.0 * x[:, 2] + effect + rng.normal(scale=0.3, size=ROWS)
    # The customer segment: the largest of three noisy scores (a softmax's argmax), one class per score.
    scores = np.stack([-2.0 * x[:, 1], 2.0 * x[:, 1] - 1.0 + effect, 2.0 * x[:, 2]], axis=1)
    segment = np.array(SEGMENTS)[np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)]
    os.makedirs(root)
    for part, rows in enumerate(np.array_split(np.arange(ROWS), 2)):
        with open(os.path.join(root, f"export-{part}.txt"), "w") as f:
            f.write(f"Shop export part {part}; generated for the test\n")  # a banner line: `skip_rows: 1`
            f.write("# columns: recency;basket;tenure;region;visits;clicked;bought;spend;segment\n")  # `comment: '#'`
            for i in rows:
                x0 = "?" if i % 50 == 0 else f"{x[i, 0]:.5f}"  # 2 % missing, declared: the mean
                # Missing and declared nowhere (the spec has no `missing:` for them): 4 % of the regions,
                # 1 % of the tenures. The inferred schema lets the default policy fill them.
                where = "?" if i % 25 == 3 else REGIONS[region[i]]
                tenure = "?" if i % 100 == 7 else f"{x[i, 2]:.5f}"
                f.write(f"{x0};{x[i, 1]:.5f};{tenure};{where};{visits[i]};"
                        f"{'yes' if clicked[i] else 'no'}.;{'yes' if bought[i] else 'no'}.;{spend[i]:.4f};"
                        f"{segment[i]}\n")
    return {
        "name": "shop",
        "format": {"header": False, "separator": ";", "strip": ".", "missing_values": ["?"], "skip_rows": 1,
                   "comment": "#"},
        "split": {"ratios": {"train": 8, "eval": 1, "test": 1}},
        "columns": [
            {"name": "recency", "kind": "numeric", "missing": "mean"},
            {"name": "basket", "kind": "numeric"},
            {"name": "tenure", "kind": "numeric"},
            {"name": "region", "kind": "categorical"},
            {"name": "visits", "kind": "numeric"},
            {"name": "clicked", "kind": "categorical"},
            {"name": "bought", "kind": "categorical"},
            {"name": "spend", "kind": "numeric"},
            {"name": "segment", "kind": "categorical"},
        ],
        "tasks": [
            {"name": "click", "label_column": "clicked", "positive_values": ["yes"], "min_auc": 0.7},
            {"name": "buy", "label_column": "bought", "positive_values": ["yes"], "min_auc": 0.7},
            {"name": "spend", "label_column": "spend", "type": "regression",
             "max_mse": float(0.5 * np.var(spend))},
            {"name": "segment", "label_column": "segment", "type": "multiclass", "classes": list(SEGMENTS),
             "min_auc": 0.7},
        ],
        "slices": ["region"],
    }


BUCKET = "shop"


@pytest.fixture(scope="module")
def shop(tmp_path_factory, s3_server):
    base = str(tmp_path_factory.mktemp("shop"))
    local_data = os.path.join(base, "exports")
    spec = _dataset(local_data)
    bucket = s3_server.create_bucket(BUCKET)
    assert s3_server.upload_tree(local_data, BUCKET, "exports") == 2
    data_root, pipeline_root, serving = f"{bucket}/exports", f"{bucket}/root", f"{bucket}/serving"
    spec_path = os.path.join(base, "spec.yaml")
    with open(spec_path, "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    trainer_path = os.path.join(base, "trainer.yaml")
    with open(trainer_path, "w") as f:
        yaml.safe_dump({"variant": "ple", "num_experts": 2, "task_experts": 2, "expert_units": 8,
                        "shared_learning_rate": 0.01, "batch_size": 64}, f)
    output = os.path.join(base, "out")
    runs = []
    for _ in range(2):  # the second time, everything is cached but the Evaluator and the Pusher
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--spec", spec_path, "--data-root", data_root,
             "--pipeline-root", pipeline_root, "--serving-model-dir", serving, "--output-dir", output,
             "--trainer-config", trainer_path, "--train-steps", "300", "--eval-steps", "2",
             "--tune", "--tune-trials", "2", "--tune-budget-s", "300"],
            capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        with open(os.path.join(output, "decision.json")) as f:
            runs.append((done, json.load(f)))
    (done, decision), (_, second) = runs
    return {"done": done, "decision": decision, "second": second, "output": output, "spec": spec,
            "server": s3_server}


def test_a_second_run_is_compared_with_the_model_served_from_s3_and_pushes_no_copy(shop):
    first, second = shop["decision"], shop["second"]
    assert first["has_baseline"] is False and second["has_baseline"] is True
    for task in ("click", "buy"):  # the same model, read back from the bucket as the baseline
        assert second["tasks"][task]["baseline_auc"] == pytest.approx(first["tasks"][task]["auc"], abs=1e-6)
        assert second["tasks"][task]["auc_change"] == pytest.approx(0.0, abs=1e-6)
    assert second["pushed"] and second["pushed_destination"] == first["pushed_destination"]
    versions = {k.split("/")[1] for k in shop["server"].keys(BUCKET, "serving/")}
    assert versions == {first["pushed_destination"].rsplit("/", 1)[1]}


def test_artifacts_and_the_pushed_model_are_in_the_bucket_and_nothing_local(shop):
    server, decision = shop["server"], shop["decision"]
    version = decision["pushed_destination"].rsplit("/", 1)[1]
    assert decision["pushed_destination"] == f"s3://{BUCKET}/serving/{version}" and version.isdigit()
    served = server.keys(BUCKET, "serving/")
    assert f"serving/{version}/saved_model.pb" in served
    assert any(k.startswith(f"serving/{version}/variables/variables.data") for k in served)
    keys = server.keys(BUCKET, "root/")
    for component in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "SpecSchema", "Transform", "Tuner",
                      "Trainer", "Evaluator", "ServingCheck", "Pusher"):
        assert any(k.startswith(f"root/{component}/") for k in keys), component
    assert sorted(os.listdir(shop["output"])) == [".mmoe-pipeline.lock", "decision.json", "logs",
                                                  "metadata.sqlite", "report.html"]
    with open(os.path.join(shop["output"], "report.html")) as f:
        page = f.read()
    assert f"s3://{BUCKET}/serving/{version}" in page


def test_the_run_says_the_schema_is_inferred_and_pushes(shop):
    out = shop["done"].stdout
    assert "schema inferred from the data (SchemaGen)" in out, out
    assert "input checked ({'data': 3000})" in out, out  # the banner and comment lines are no rows
    decision = shop["decision"]
    assert decision["pushed"], decision["reasons"]


def test_missing_values_the_spec_says_nothing_about_are_filled_named_and_no_anomaly(shop):
    decision = shop["decision"]
    assert decision["anomalies"] == []
    filled = {f["column"]: f for f in decision["filled_missing"]}
    assert sorted(filled) == ["region", "tenure"]  # recency declares `missing: mean`; labels are never filled
    # About 4 % and 1 % of the rows (8/10 of them are train rows), as written above.
    np.testing.assert_allclose(filled["region"]["fraction_missing"], 0.04, atol=0.012)
    np.testing.assert_allclose(filled["tenure"]["fraction_missing"], 0.01, atol=0.006)
    assert filled["region"]["spec_line"] == "missing: {constant: ''}"
    assert filled["tenure"]["spec_line"] == "missing: mean"
    # The console's SpecSchema line names each filled column.
    (line,) = [ln for ln in shop["done"].stdout.splitlines() if ln.strip().startswith("SpecSchema") and "complete" in ln]
    assert "filled by default: " in line, line
    assert re.search(r"region \d+\.\d% with '' \(the out-of-vocabulary bucket\) \(missing: \{constant: ''\}\)", line)
    assert re.search(r"tenure \d+\.\d% with the train split's mean \(missing: mean\)", line), line


def test_every_task_is_reported_and_passes(shop):
    tasks = shop["decision"]["tasks"]
    for name in ("click", "buy"):
        assert tasks[name]["type"] == "binary" and tasks[name]["auc"] > 0.75, tasks[name]
    assert tasks["spend"]["type"] == "regression" and tasks["spend"]["auc"] is None
    assert 0 < tasks["spend"]["mse"] <= tasks["spend"]["max_mse"]
    uri = report.latest_output_uri(report.open_store(os.path.join(shop["output"], "metadata.sqlite")),
                                   "mmoe-pipeline", "Evaluator", "ModelEvaluation")
    from components.spec import DatasetSpec

    rows = {r.slice_name: r for r in report.evaluation_metrics(uri, DatasetSpec.from_dict(shop["spec"]))}
    assert {n for n in rows if n.startswith("region:")} == {f"region:{r}" for r in REGIONS}


def test_the_multiclass_task_is_gated_on_its_auc_with_per_class_and_macro_metrics(shop):
    """The Evaluator's metrics of the multi-class head: the gated (micro-averaged) AUC in the decision, the
    top-1 accuracy, every class's one-vs-rest AUC and their macro average, overall and per slice."""
    from components.spec import DatasetSpec

    segment = shop["decision"]["tasks"]["segment"]
    assert segment["type"] == "multiclass" and segment["passed"] and segment["auc"] > 0.75, segment
    store = report.open_store(os.path.join(shop["output"], "metadata.sqlite"))
    uri = report.latest_output_uri(store, "mmoe-pipeline", "Evaluator", "ModelEvaluation")
    rows = {r.slice_name: r for r in report.evaluation_metrics(uri, DatasetSpec.from_dict(shop["spec"]))}
    overall = rows["Overall"].extra["segment"]
    assert sorted(overall) == ["AUC bargain", "AUC premium", "AUC regular", "accuracy", "macro AUC"]
    # Three classes of about equal size: a constant model is right a third of the time and ranks at 0.5.
    assert overall["accuracy"] > 0.45, overall
    assert all(overall[f"AUC {s}"] > 0.65 for s in SEGMENTS), overall
    per_class = [overall[f"AUC {s}"] for s in SEGMENTS]
    assert overall["macro AUC"] == pytest.approx(sum(per_class) / 3, abs=1e-6)
    # The region slices hold every test row but those with no region (4 % of the rows, filled with '').
    in_regions = sum(rows[f"region:{r}"].example_count["segment"] for r in REGIONS)
    assert 0.9 * rows["Overall"].example_count["segment"] < in_regions < rows["Overall"].example_count["segment"]
    assert all(rows[f"region:{r}"].extra["segment"]["accuracy"] is not None for r in REGIONS)
    with open(os.path.join(shop["output"], "report.html")) as f:
        page = f.read()
    other = page[page.index('<section id="other">'):]
    other = other[:other.index("</section>")]
    assert f"<td>segment</td><td>AUC premium</td><td>{overall['AUC premium']:.4f}</td>" in other, other[:500]


def test_the_served_model_answers_the_multiclass_task_with_probabilities_and_class_names(shop):
    """The pushed model's serving_default on raw examples (no labels), read from the bucket: per example the
    segment's probabilities (summing to 1) and the class names in the spec's order."""
    import tensorflow as tf

    from components import object_store

    pushed = shop["decision"]["pushed_destination"]
    object_store.enable([pushed])
    signature = tf.saved_model.load(pushed).signatures["serving_default"]
    raw = []
    for i in range(4):
        features = {"recency": 0.5 * i, "basket": 1.0 - i, "tenure": 0.2, "visits": 3}
        example = tf.train.Example()
        for name, value in features.items():
            if isinstance(value, int):
                example.features.feature[name].int64_list.value.append(value)
            else:
                example.features.feature[name].float_list.value.append(value)
        example.features.feature["region"].bytes_list.value.append(REGIONS[i].encode())
        raw.append(example.SerializeToString())
    outputs = signature(examples=tf.constant(raw))
    probabilities = outputs["segment"].numpy()
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert outputs["segment_classes"].numpy().tolist() == [[s.encode() for s in SEGMENTS]] * 4
    assert sorted(outputs) == ["buy", "click", "segment", "segment_classes", "spend"]
    # A small basket scores "bargain" high, a large one "regular" (the data's scores): the model learned it.
    assert probabilities[3, 0] > probabilities[0, 0] and probabilities[0, 1] > probabilities[3, 1]


def test_the_pipeline_split_the_rows_by_the_declared_ratios_and_inferred_a_schema(shop):
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    store = report.open_store(os.path.join(shop["output"], "metadata.sqlite"))
    states = report.node_states(store, "mmoe-pipeline", ["SchemaGen", "SpecSchema"])
    assert states == {"SchemaGen": "CACHED", "SpecSchema": "CACHED"}  # by the second run: the first ran them
    stats = report.split_statistics(report.latest_output_uri(store, "mmoe-pipeline", "StatisticsGen",
                                                             "ExampleStatistics"))
    counts = {split: s.num_examples for split, s in stats.items()}
    assert sum(counts.values()) == ROWS
    assert 0.75 < counts["train"] / ROWS < 0.85 and 0.07 < counts["test"] / ROWS < 0.13, counts
    schema = io_utils.SchemaReader().read(os.path.join(
        report.latest_output_uri(store, "mmoe-pipeline", "SpecSchema", "Schema"), "schema.pbtxt"))
    features = {f.name: f for f in schema.feature}
    assert features["region"].type == schema_pb2.BYTES and features["visits"].type == schema_pb2.INT
    assert features["recency"].presence.min_fraction == 0.0  # `missing: mean`: may be empty
    # The "." after each label was stripped: the label domain holds yes and no only.
    domain = next(d for d in schema.string_domain if d.name == features["clicked"].domain)
    assert sorted(domain.value) == ["no", "yes"]


def test_the_trainer_used_the_tuners_best_hyperparameters(shop):
    store = report.open_store(os.path.join(shop["output"], "metadata.sqlite"))
    assert report.node_states(store, "mmoe-pipeline", ["Tuner"]) == {"Tuner": "CACHED"}  # by the second run
    best_dir = report.latest_output_uri(store, "mmoe-pipeline", "Tuner", "HyperParameters")
    with fileio.open(os.path.join(best_dir, "best_hyperparameters.txt")) as f:
        best = json.load(f)["values"]
    assert set(best) == {"num_experts", "expert_units", "tower_units", "embedding_dim", "shared_learning_rate",
                         "learning_rate_click", "learning_rate_buy", "learning_rate_spend", "learning_rate_segment",
                         "batch_size", "train_steps"}
    with fileio.open(os.path.join(report.latest_output_uri(store, "mmoe-pipeline", "Trainer", "ModelRun"),
                                  "trainer_config.json")) as f:
        used = json.load(f)
    assert used["hyperparameters"] == best
    assert (used["trainer"]["num_experts"], used["trainer"]["expert_units"], used["trainer"]["batch_size"]) == (
        best["num_experts"], best["expert_units"], best["batch_size"])
    assert used["trainer"]["tower_units"] == [best["tower_units"]] and used["train_steps"] == best["train_steps"]
    assert used["learning_rates"] == {t: best[f"learning_rate_{t}"] for t in ("click", "buy", "spend", "segment")}
    assert used["trainer"]["variant"] == "ple"  # what was not tuned stays as configured


def test_the_tuner_reads_the_train_split_into_memory_once_for_all_its_trials(shop):
    logs = sorted(glob.glob(os.path.join(shop["output"], "logs", "run-*.log")))
    assert len(logs) == 2
    log_path = logs[0]  # the first run's: the second one's Tuner and Trainer were cached
    with open(log_path) as f:
        log = f.read()
    assert len(re.findall(r"Tuner: trial \S+ val_loss=", log)) == 2
    loads = [int(n) for n in re.findall(r"Train split in memory: (\d+) rows", log)]
    assert len(loads) == 2, loads  # the Tuner's, once for both trials, then the Trainer's
    assert loads[0] == loads[1] and 0.75 * ROWS < loads[0] < 0.85 * ROWS  # the train split of an 8/1/1 split
