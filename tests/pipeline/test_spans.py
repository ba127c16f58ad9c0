"""Scheduled retraining on three spans of the sample, run in sequence as a schedule would:

1. span 1 (the only one): a cold start (no blessed model yet), pushed;
2. span 2 arrives: the Trainer warm-starts from the span-1 model (its loss before any step is
   lower than a fresh model's on the same batches), no drift, pushed;
3. span 3 arrives with every age moved up by 30 years: trained and blessed by the Evaluator, but the
   drift on `age` beyond its threshold stops the push, and decision.json names the feature, the
   divergence and the threshold;
4. span 4 (undrifted again): its Evaluator baseline and its warm-start base are the model in serving,
   span 2's, not span 3's blessed-but-refused model (what TFX's LatestBlessedModelStrategy would give).
"""

import csv
import dataclasses
import json
import os

import pytest

import schemas
from components.baseline import SOURCE_PROPERTY
from components.pusher import pushed_spans
from pipeline.local import local_runner
from pipeline.reporting import report
from sources import census
from tests.pipeline.conftest import MAX_DROP, MIN_AUC
from trainer.config import TrainerConfig

pytestmark = pytest.mark.slow

ROWS_PER_SPAN = 2000
AGE_SHIFT = 30
NODES = ["CsvExampleGen", "SpanDrift", "Trainer", "ServingCheck", "Pusher"]


def _write_span(prepared_root: str, data_root: str, span: int, age_shift: int = 0) -> None:
    """Span `span`: a third of each prepared split, the first for span 1 and span 4 (ages shifted by
    `age_shift`)."""
    for split in ("train", "eval", "test"):
        with open(os.path.join(prepared_root, split, "data.csv"), newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        third = (span - 1) % 3
        part = body[third * len(body) // 3: (third + 1) * len(body) // 3]
        age = header.index("age")
        for row in part:
            row[age] = str(int(row[age]) + age_shift)
        target = os.path.join(data_root, f"span-{span}", split)
        os.makedirs(target)
        with open(os.path.join(target, "data.csv"), "w", newline="") as f:
            csv.writer(f).writerows([header, *part])


@pytest.fixture(scope="module")
def spans(tmp_path_factory, census_spec):
    out = str(tmp_path_factory.mktemp("spans"))
    tasks = tuple(dataclasses.replace(t, min_auc=MIN_AUC, max_auc_drop=MAX_DROP) for t in census_spec.tasks)
    spec = dataclasses.replace(census_spec, tasks=tasks)
    prepared = census.prepare(spec, os.path.join(out, "prepared"), test_path=census.SAMPLE_PATH,
                              max_rows=3 * ROWS_PER_SPAN)
    data_root = os.path.join(out, "data")
    config = local_runner.local_config(
        out, data_root, spec, schemas.path("census", "schema.pbtxt"),
        trainer=TrainerConfig(num_experts=4, expert_units=8, batch_size=64),
        train_steps=150, eval_steps=3, span_folder="span-{SPAN}", warm_start=True,
    )
    store = report.open_store(config.metadata_path)
    results = {"config": config, "store": store}
    for span, shift in ((1, 0), (2, 0), (3, AGE_SHIFT), (4, 0)):
        _write_span(prepared.root, data_root, span, shift)
        path = os.path.join(out, f"decision-{span}.json")
        local_runner.run(config, decision_path=path)
        with open(path) as f:
            decision = json.load(f)
        versions = sorted(os.listdir(config.serving_model_dir))
        baseline = report.latest_output_uri(store, config.pipeline_name, "ServingBaseline", "Model")
        blessing = report.latest_output_uri(store, config.pipeline_name, "Evaluator", "ModelBlessing")
        results[span] = {"decision": decision, "versions": versions,
                         "states": report.node_states(store, config.pipeline_name, NODES),
                         "baseline": baseline, "baseline_source": report._custom(store, baseline, SOURCE_PROPERTY),
                         "blessed": report._custom(store, blessing, "blessed")}
    return results


def test_span_1_cold_starts_and_is_pushed_with_its_span_recorded(spans):
    first = spans[1]["decision"]
    assert first["pushed"] and first["spans"] == [1] and first["drift"] == []
    assert first["warm_start"] == {"base_model": None, "weights_loaded": 0, "reinitialised": [], "remapped": [],
                                   "initial_loss": None, "cold_initial_loss": None}
    version = os.path.join(spans["config"].serving_model_dir, spans[1]["versions"][0])
    assert pushed_spans(version) == [1]


def test_span_2_warm_starts_from_the_span_1_model_and_is_pushed(spans):
    second = spans[2]["decision"]
    assert second["pushed"] and second["spans"] == [2] and second["drift"] == [], second["reasons"]
    started = second["warm_start"]
    assert started["base_model"] and started["base_model"].startswith(spans[2]["baseline"])  # ServingBaseline's copy
    assert spans[2]["baseline_source"] == os.path.join(spans["config"].serving_model_dir, spans[1]["versions"][0])
    assert started["reinitialised"] == [] and started["weights_loaded"] > 40
    # Each span has its own vocabularies (other sizes, other orders): embeddings are matched by token.
    remapped = {r["variable"]: r for r in started["remapped"]}
    assert len(remapped) == 32 and all(r["tokens_kept"] > 0 for r in remapped.values())
    assert any(r["new_tokens"] > 0 for r in remapped.values())
    # The span-1 model already knows the task: before any step its loss is well below a fresh model's.
    assert started["initial_loss"] < 0.8 * started["cold_initial_loss"], started
    assert len(spans[2]["versions"]) == 2
    assert pushed_spans(os.path.join(spans["config"].serving_model_dir, spans[2]["versions"][1])) == [2]


def test_span_3_is_trained_but_its_age_drift_stops_the_push(spans):
    third = spans[3]
    decision = third["decision"]
    assert third["states"]["Trainer"] == "COMPLETE" and third["states"]["SpanDrift"] == "COMPLETE"
    assert not decision["pushed"] and third["versions"] == spans[2]["versions"]
    assert [d["feature"] for d in decision["drift"]] == ["age"]
    drift = decision["drift"][0]
    assert drift["threshold"] == 0.1 and drift["divergence"] > 0.3
    assert (drift["span"], drift["previous_span"]) == (3, 2)
    assert any(r.startswith("data drift: age Jensen-Shannon divergence") and "(span 3 against span 2)" in r
               for r in decision["reasons"]), decision["reasons"]
    # The model serves and the data breaks no schema rule: the drift alone withholds the serving blessing.
    check = decision["serving_check"]
    assert not check["ok"] and check["failures"] == {} and check["anomalies"] == []


def test_span_4_is_compared_with_and_starts_from_the_served_model_not_the_refused_one(spans):
    assert spans[3]["blessed"] == 1 and not spans[3]["decision"]["pushed"]  # blessed, then refused
    served = os.path.join(spans["config"].serving_model_dir, spans[2]["versions"][1])
    fourth = spans[4]
    assert spans[3]["versions"] == spans[2]["versions"]  # span 3's model never served
    assert fourth["baseline_source"] == served
    assert fourth["decision"]["warm_start"]["base_model"].startswith(fourth["baseline"])
    assert fourth["decision"]["has_baseline"] is True
    # The served model did not change since span 3: ServingBaseline's artifact came from the cache.
    assert fourth["baseline"] == spans[3]["baseline"] and fourth["states"]["Trainer"] == "COMPLETE"
