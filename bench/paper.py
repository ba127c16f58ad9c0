"""The paper's census experiment (Ma et al., KDD 2018, section 5.3): every variant tuned, then 5 seeds.

For each task group (group 1: income and never married; group 2: college education and never
married, `schemas/census/group{1,2}.yaml`) the pipeline runs once up to Transform; its transformed
train and eval splits and the test split (raw ExampleGen output through the same Transform
graph) are then held in memory, and for each variant (MMoE, OMoE, shared-bottom, single-task,
PLE):

1. **tuning**: `--trials` random draws from the pipeline Tuner's own search space
   (`trainer.tuning.define`: experts, expert units, tower units, embedding width, the shared and
   each task's learning rate, batch size, steps; trial 0 is the default `TrainerConfig`), each
   trained on the train split and scored by its loss on the eval split, as the Tuner does
   (`--objective eval_loss`), or by the main task's AUC on the eval split (`--objective main_auc`:
   the group's first task, the one the paper compares the models on);
2. **seeds**: the best values trained with `--seeds` model seeds; test AUC per task (exact, from
   ranks), mean and best over the seeds.

Models are built by the pipeline's `trainer.model.build_model`; the training loop is plain
`model.fit` on the in-memory splits (the pipeline's Trainer adds only reading, callbacks and
export: `bench/trainer_rate.py`).

    python bench/paper.py --data census-income.test.gz --output-dir /tmp/paper
    python bench/paper.py --groups 1 --variants mmoe,shared_bottom --trials 2 --seeds 2 --steps 200
    python bench/paper.py --data census-income.test.gz --groups 1 --variants "" --seeds 5   # LightGBM alone

Beside the neural variants, the table holds the reference a tabular user would pick instead
(`--boosted-trees`, on by default): one LightGBM model per task on the same split files (native
categoricals, early stopping on the eval split's AUC, the same seeds); LightGBM comes with the
project's ``bench`` extra, not with the pipeline.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Mapping, Tuple  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402

GROUPS = {"1": "group1.yaml", "2": "group2.yaml"}
# The targets for MMoE (mean test AUC over the seeds), by task name in the specs.
TARGETS = {"income": 0.950, "never_married": 0.994, "college": 0.890}
# What a trial is scored by, and whether lower is better: the eval loss of every task (the
# pipeline's Tuner) or the eval AUC of the group's first task.
OBJECTIVES = {"eval_loss": True, "main_auc": False}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC (the Mann-Whitney statistic, ties counted half)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).ravel() > 0.5
    ranks = rankdata(np.asarray(scores).ravel())
    positives, negatives = labels.sum(), (~labels).sum()
    if not positives or not negatives:
        raise ValueError(f"AUC needs both classes; got {positives} positive and {negatives} negative labels")
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def load_splits(store, pipeline_name: str, spec) -> Tuple[dict, Dict[str, int]]:
    """{split: (features, labels)} in memory, and the vocabulary sizes: train and eval from
    Transform's output, test from ExampleGen's through the Transform graph."""
    import tensorflow_transform as tft

    from components.spec import SPLIT_NAMES
    from pipeline.reporting import report
    from trainer.input_data import vocabulary_sizes

    from replicas import read_columns

    transformed = report.latest_output_uri(store, pipeline_name, "Transform", "Examples")
    raw = report.latest_output_uri(store, pipeline_name, "CsvExampleGen", "Examples")
    output = tft.TFTransformOutput(report.latest_output_uri(store, pipeline_name, "Transform", "TransformGraph"))
    train, evaluation, test = SPLIT_NAMES
    columns = {
        split: read_columns(sorted(glob.glob(os.path.join(transformed, f"Split-{split}", "*"))),
                     output.transformed_feature_spec())
        for split in (train, evaluation)
    }
    columns[test] = read_columns(sorted(glob.glob(os.path.join(raw, f"Split-{test}", "*"))), output.raw_feature_spec(),
                          transform=output.transform_features_layer())  # as the exported model applies it
    splits = {}
    for split, values in columns.items():
        features = {k: values[k].reshape(-1, 1) for k in spec.feature_keys}
        labels = {t.output_name: values[t.label_key].reshape(-1, 1).astype(np.float32) for t in spec.tasks}
        splits[split] = (features, labels)
    return splits, vocabulary_sizes(output, spec)


def train_and_score(spec, config, steps: int, splits, vocab_sizes) -> Dict[str, float]:
    """Trains on the train split; returns the eval loss, the main (first) task's eval AUC and the
    test AUC of each task."""
    import tf_keras as keras

    from components.spec import SPLIT_NAMES
    from trainer.input_data import in_memory_batches
    from trainer.model import build_model

    train, evaluation, test = SPLIT_NAMES
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    dataset = in_memory_batches(*splits[train], config.batch_size, config.seed)
    model = build_model(spec, config, vocab_sizes)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    eval_features, eval_labels = splits[evaluation]
    eval_loss = model.evaluate(eval_features, eval_labels, batch_size=4096, verbose=0, return_dict=True)["loss"]
    main = spec.tasks[0].output_name
    main_auc = auc(eval_labels[main], model.predict(eval_features, batch_size=4096, verbose=0)[main])
    test_features, test_labels = splits[test]
    predictions = model.predict(test_features, batch_size=4096, verbose=0)
    result = {"eval_loss": float(eval_loss), "main_auc": main_auc}
    result.update({t.name: auc(test_labels[t.output_name], predictions[t.output_name]) for t in spec.tasks})
    return result


def with_buckets(spec, buckets):
    """`spec` with every numeric column's `buckets` set to `buckets` (None: no bucket feature)."""
    from components.spec import ColumnKind

    return dataclasses.replace(spec, columns=tuple(
        dataclasses.replace(c, buckets=buckets) if c.kind is ColumnKind.NUMERIC else c for c in spec.columns))


def draws(spec, steps: int, trials: int, seed: int) -> List[dict]:
    """`trials` value sets of the Tuner's search space: {} (the defaults) first, then random draws."""
    import keras_tuner as kt

    from trainer.tuning import define

    space = kt.HyperParameters()
    define(space, spec, steps)
    rng = np.random.default_rng(seed)
    return [{}] + [{hp.name: hp.random_sample(int(rng.integers(2**31))) for hp in space.space}
                   for _ in range(trials - 1)]


def run_variant(spec, variant: str, splits, vocab_sizes, steps: int, trials: int, seeds: int,
                seed: int, objective: str = "eval_loss") -> dict:
    from trainer.config import TrainerConfig
    from trainer.tuning import apply

    base = TrainerConfig(variant=variant, seed=seed)
    tried = []
    for values in draws(spec, steps, trials, seed):
        trial_spec, config, trial_steps = apply(values, spec, base)
        score = train_and_score(trial_spec, config, trial_steps or steps, splits, vocab_sizes)
        tried.append({"values": values, "eval_loss": score["eval_loss"], "main_auc": score["main_auc"]})
        logging.warning("%s trial %d: eval loss %.4f, main task's eval AUC %.4f %s", variant, len(tried),
                        score["eval_loss"], score["main_auc"], values)
    lower_is_better = OBJECTIVES[objective]
    best = min(tried, key=lambda t: t[objective] if lower_is_better else -t[objective])
    best_spec, best_config, best_steps = apply(best["values"], spec, base)
    runs = []
    for i in range(seeds):
        score = train_and_score(best_spec, dataclasses.replace(best_config, seed=seed + i), best_steps or steps,
                                splits, vocab_sizes)
        runs.append({t.name: score[t.name] for t in spec.tasks})
        logging.warning("%s seed %d: %s", variant, seed + i, runs[-1])
    return {"trials": tried, "best": best["values"], "test_auc": runs}


BOOSTED_TREES = "boosted_trees"  # the reference row: one LightGBM model per task
LIGHTGBM = {"n_estimators": 5000, "learning_rate": 0.05, "num_leaves": 31, "subsample": 0.8, "subsample_freq": 1,
            "colsample_bytree": 0.8, "verbose": -1}
EARLY_STOPPING_ROUNDS = 100


def split_frames(spec, data_root: str) -> dict:
    """{split: (features DataFrame, {task: 0/1 labels})} from the pipeline's own split files, cleaned
    as ExampleGen reads them (the spec's format); categorical features as pandas categories of the
    train split's values (LightGBM's native categoricals), numeric ones with NaN where empty."""
    import pandas as pd

    from components.spec import SPLIT_NAMES, ColumnKind

    raw = {s: pd.read_csv(os.path.join(data_root, s, "data.csv"), dtype=str, keep_default_na=False).apply(
        lambda values: values.map(spec.format.clean)) for s in SPLIT_NAMES}
    train = raw[SPLIT_NAMES[0]]
    categories = {c.name: sorted(set(train[c.name]) - {""}) for c in spec.features if c.kind is ColumnKind.CATEGORICAL}
    frames = {}
    for split, frame in raw.items():
        features = pd.DataFrame(index=frame.index)
        for column in spec.features:
            values = frame[column.name]
            if column.kind is ColumnKind.NUMERIC:
                features[column.name] = pd.to_numeric(values.replace("", np.nan))
            else:
                features[column.name] = pd.Categorical(values.replace("", np.nan), categories=categories[column.name])
        labels = {t.name: frame[t.label_column].isin(t.positive_values).to_numpy(dtype=np.float32) for t in spec.tasks}
        frames[split] = (features, labels)
    return frames


def boosted_trees(spec, data_root: str, seeds: int, seed: int) -> dict:
    """The reference a tabular user would pick instead: one LightGBM model per task on the same split
    files, early stopping on the eval split's AUC, `seeds` seeds (row and column subsampling); the
    test AUC of each, in `run_variant`'s shape."""
    import lightgbm as lgb

    from components.spec import SPLIT_NAMES

    frames = split_frames(spec, data_root)
    (x_train, y_train), (x_eval, y_eval), (x_test, y_test) = (frames[s] for s in SPLIT_NAMES)
    runs = []
    for i in range(seeds):
        scores = {}
        for task in spec.tasks:
            model = lgb.LGBMClassifier(**LIGHTGBM, random_state=seed + i)
            model.fit(x_train, y_train[task.name], eval_X=(x_eval,), eval_y=(y_eval[task.name],), eval_metric="auc",
                      callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])
            scores[task.name] = auc(y_test[task.name], model.predict_proba(x_test)[:, 1])
            logging.warning("%s %s seed %d: %d trees, test AUC %.4f", BOOSTED_TREES, task.name, seed + i,
                            model.best_iteration_, scores[task.name])
        runs.append(scores)
    return {"trials": [], "best": {"model": f"LightGBM {lgb.__version__}"}, "test_auc": runs}


def table(group: str, results: Mapping[str, dict], tasks: List[str]) -> List[str]:
    lines = [f"Group {group}", "", "| variant | " + " | ".join(f"{t} AUC mean (best; median)" for t in tasks) +
             " | tuned values |", "|---|" + "---|" * (len(tasks) + 1)]
    for variant, result in results.items():
        cells = [f"{statistics.mean(r[t] for r in result['test_auc']):.4f} "
                 f"({max(r[t] for r in result['test_auc']):.4f}; median "
                 f"{statistics.median(r[t] for r in result['test_auc']):.4f})" for t in tasks]
        tuned = ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(result["best"].items())) or "defaults"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {tuned} |")
    return lines


@click.command()
@click.option("--data", "data_paths", multiple=True, type=click.Path(exists=True),
              help="The UCI census file(s); default: the embedded 20,000-row sample.")
@click.option("--output-dir", default="bench_paper", show_default=True)
@click.option("--groups", default="1,2", show_default=True)
@click.option("--variants", default="mmoe,omoe,shared_bottom,single_task,ple", show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=8, show_default=True,
              help="Tuning trials per variant, the defaults included.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Training steps of the defaults (the search tries half, this and twice this).")
@click.option("--seed", type=int, default=42, show_default=True, help="Seeds the split, the draws, the models.")
@click.option("--objective", type=click.Choice(sorted(OBJECTIVES)), default="eval_loss", show_default=True,
              help="What picks the best trial: the eval loss of every task (as the pipeline's Tuner) or the "
                   "group's first task's eval AUC.")
@click.option("--numeric-buckets", type=click.IntRange(min=0), default=None,
              help="Every numeric column's quantile buckets (`buckets` in the spec; 0: none, the z-score alone); "
                   "default: the spec's.")
@click.option("--boosted-trees/--no-boosted-trees", "boosted_trees_row", default=True, show_default=True,
              help="Add the reference row: one LightGBM model per task on the same split (the bench extra).")
def main(data_paths, output_dir, groups, variants, trials, seeds, steps, seed, objective, numeric_buckets,
         boosted_trees_row):
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    import schemas

    from replicas import transformed_census, ungated_spec

    output_dir = os.path.abspath(output_dir)
    report_lines, everything = [], {}
    started = time.monotonic()
    for group in groups.split(","):
        if group not in GROUPS:
            raise click.BadParameter(f"unknown group {group!r}; choose from {sorted(GROUPS)}", param_hint="--groups")
        spec = ungated_spec(schemas.path("census", GROUPS[group]))
        if numeric_buckets is not None:
            spec = with_buckets(spec, numeric_buckets or None)
        config, store, counts = transformed_census(os.path.join(output_dir, f"group{group}"), data_paths, spec)
        neural = [v for v in variants.split(",") if v]
        splits, vocab_sizes = load_splits(store, config.pipeline_name, spec) if neural else (None, None)
        results = {v: run_variant(spec, v, splits, vocab_sizes, steps, trials, seeds, seed, objective)
                   for v in neural}
        if boosted_trees_row:
            results[BOOSTED_TREES] = boosted_trees(spec, config.data_root, seeds, seed)
        tasks = [t.name for t in spec.tasks]
        everything[group] = {"counts": counts, "results": results}
        report_lines += table(group, results, tasks) + [""]
        for task in tasks:
            if task in TARGETS and "mmoe" in results:
                mean = statistics.mean(r[task] for r in results["mmoe"]["test_auc"])
                report_lines.append(f"MMoE {task}: mean {mean:.4f}, target {TARGETS[task]:.3f}: "
                                    + ("met" if mean >= TARGETS[task] else f"missed by {TARGETS[task] - mean:.4f}"))
        main_task = tasks[0]
        if "mmoe" in results:
            means = {v: statistics.mean(r[main_task] for r in res["test_auc"]) for v, res in results.items()}
            better = [v for v, m in means.items() if m > means["mmoe"]]  # the boosted trees included
            verdict = "at least as good as every other variant" if not better else "beaten by " + ", ".join(better)
            report_lines.append(f"{main_task}: MMoE {verdict}")
        report_lines.append("")
    report_lines.append((f"{trials} trials by {objective} and {seeds} seeds per variant, {steps} default steps"
                         if any(variants.split(",")) else f"{seeds} seeds, boosted trees only")
                        + f"; {time.monotonic() - started:.0f} s in all")
    click.echo("\n".join(report_lines))
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "paper.json"), "w") as f:
        json.dump(everything, f, indent=2)


if __name__ == "__main__":
    main()
