"""Trains every model variant through the pipeline on one census split and compares them.

All variants run in one pipeline (one output folder), so ExampleGen, statistics
and Transform run once and are cached for the others; each variant then trains,
is evaluated on the same test split and reports its AUC per task. Timings are
the MLMD wall times of each variant's Trainer and Evaluator executions.

    python bench/variants.py --data ../census-income.test.gz --output-dir /tmp/bench
    python bench/variants.py            # the embedded 20,000-row sample
    python bench/variants.py --repeats 3   # three model seeds per variant: the spread

`compare` takes any local pipeline configuration, so it can also compare variants on a run that
already exists (its output folder and configuration): only the Trainer and what follows it run
again, as the tiny run in the test suite does.

Prints a Markdown table (paste it into docs/BENCHMARKS.md) and writes
OUTPUT/variants.json.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import List  # noqa: E402

import click  # noqa: E402

import schemas  # noqa: E402
from pipeline.graph.settings import DEFAULT_SCHEMA, DEFAULT_SPEC  # noqa: E402
from pipeline.local import local_runner
from pipeline.reporting import report  # noqa: E402
from sources import census  # noqa: E402
from trainer.config import TrainerConfig, Variant  # noqa: E402

from replicas import ungated_spec  # noqa: E402


def compare(config, variants: List[str], repeats: int = 1, seed: int = 42) -> List[dict]:
    """Each variant (model seeds seed, seed+1, ...) through the pipeline of `config`, whose
    components up to Transform are served from its cache after the first; one row per training:
    the variant, its seed, AUC per task (the Evaluator's), and its Trainer's and Evaluator's
    seconds (ML Metadata)."""
    output_dir = os.path.dirname(config.pipeline_root)
    rows = []
    for repeat in range(repeats):
        for variant in variants:
            run_config = dataclasses.replace(
                config, trainer=dataclasses.replace(config.trainer, variant=variant, seed=seed + repeat))
            start = time.monotonic()
            decision = local_runner.run(
                run_config, decision_path=os.path.join(output_dir, f"decision-{variant}-{repeat}.json")
            )
            seconds = report.node_seconds(report.open_store(config.metadata_path), config.pipeline_name,
                                          ["Trainer", "Evaluator"])
            rows.append({
                "variant": variant,
                "model_seed": seed + repeat,
                "auc": {t: d["auc"] for t, d in decision["tasks"].items()},
                "trainer_s": seconds.get("Trainer"),
                "evaluator_s": seconds.get("Evaluator"),
                "run_s": time.monotonic() - start,
            })
            logging.info("%s: %s", variant, rows[-1])
    return rows


def table(rows: List[dict], tasks: List[str]) -> List[str]:
    """The Markdown table of `compare`'s rows: per variant, in their order, the median AUC per task
    (with the range over seeds when there are several) and the median Trainer and Evaluator seconds."""
    lines = ["| variant | " + " | ".join(f"{t} AUC median (min-max)" for t in tasks)
             + " | Trainer s (median) | Evaluator s (median) |",
             "|---|" + "---|" * (len(tasks) + 2)]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        cells = []
        for t in tasks:
            values = [r["auc"][t] for r in mine]
            spread = f" ({min(values):.4f}-{max(values):.4f})" if len(values) > 1 else ""
            cells.append(f"{statistics.median(values):.4f}{spread}")
        trainer_s = statistics.median(r["trainer_s"] for r in mine)
        evaluator_s = statistics.median(r["evaluator_s"] for r in mine)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {trainer_s:.0f} | {evaluator_s:.0f} |")
    return lines


@click.command()
@click.option("--data", "data_paths", multiple=True, type=click.Path(exists=True))
@click.option("--output-dir", default="bench_output", show_default=True)
@click.option("--variants", default=",".join(v.value for v in Variant), show_default=True)
@click.option("--train-steps", type=int, default=2000, show_default=True)
@click.option("--eval-steps", type=int, default=50, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="Seeds the split and the first model.")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each variant with model seeds seed, seed+1, ... (same split) to see the spread.")
def main(data_paths, output_dir, variants, train_steps, eval_steps, seed, repeats):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("absl", "tensorflow", "apache_beam"):
        logging.getLogger(name).setLevel(logging.WARNING)
    spec = ungated_spec(schemas.path(*DEFAULT_SPEC))  # report only: no gate hides a variant's numbers
    output_dir = os.path.abspath(output_dir)
    data_file, test_file = census.classify_inputs(data_paths) if data_paths else (None, census.SAMPLE_PATH)
    prepared = census.prepare(spec, os.path.join(output_dir, "data"), data_path=data_file, test_path=test_file,
                              seed=seed)
    config = local_runner.local_config(output_dir, prepared.root, spec, schemas.path(*DEFAULT_SCHEMA),
                                       train_steps=train_steps, eval_steps=eval_steps)
    rows = compare(config, variants.split(","), repeats, seed)
    with open(os.path.join(output_dir, "variants.json"), "w") as f:
        json.dump({"counts": prepared.counts, "train_steps": train_steps, "rows": rows}, f, indent=2)
    click.echo(f"splits: {prepared.counts}; {train_steps} steps of {TrainerConfig().batch_size}; "
               f"{repeats} model seed(s) per variant")
    for line in table(rows, list(spec.output_names)):
        click.echo(line)
    trainer_times = [r["trainer_s"] for r in rows if r["trainer_s"]]
    if trainer_times:
        click.echo(f"median Trainer time: {statistics.median(trainer_times):.0f} s")


if __name__ == "__main__":
    main()
