"""Training examples/second of the census MMoE with 1 and 2 replicas on this machine.

Runs the pipeline once (to get its Transform output), then the Trainer's executor
(`python -m tfx.scripts.run_executor`, the command of every TFJob / Vertex AI replica)
in three set-ups, side by side, `--repeats` times each:

* ``1 replica``: the default strategy, global batch 2 x B;
* ``mirrored 2 logical CPUs``: MirroredStrategy over the CPU split in 2 logical devices, B per replica;
* ``2 workers``: two local processes with TF_CONFIG on 127.0.0.1 (MultiWorkerMirroredStrategy), B per replica.

The rate is the steady one: the median of the progress reports' rates (each measured since the
previous report), the first report (tracing) left out.

    python bench/replicas.py --steps 1000 --repeats 3
    python bench/replicas.py --data data/census-income.test.gz
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402

import click  # noqa: E402

import schemas  # noqa: E402
from components.spec import load_spec  # noqa: E402
from pipeline.graph.settings import DEFAULT_SCHEMA, DEFAULT_SPEC  # noqa: E402
from pipeline.local import local_runner, local_workers
from pipeline.reporting import report  # noqa: E402
from sources import census  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402

RATE = re.compile(r"step \d+/\d+ loss=[0-9.na]+ \((\d+) examples/s\)")


def steady_rate(log: str) -> float:
    rates = [float(r) for r in RATE.findall(log)]
    if len(rates) < 2:
        raise ValueError(f"fewer than 2 progress reports in the log; train more steps. Log tail:\n{log[-2000:]}")
    return statistics.median(rates[1:])


def ungated_spec(path: str):
    """The spec at `path` without AUC gates: a benchmark reports every variant's numbers."""
    spec = load_spec(path)
    return dataclasses.replace(
        spec, tasks=tuple(dataclasses.replace(t, min_auc=None, max_auc_drop=None) for t in spec.tasks))


def read_columns(files, feature_spec, transform=None) -> dict:
    """The gzipped tf.Example files as one numpy array per feature (through `transform` if given)."""
    import numpy as np
    import tensorflow as tf

    if not files:
        raise FileNotFoundError("no files to read: is the split's folder empty?")
    parts = []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192):
        parsed = tf.io.parse_example(batch, feature_spec)
        parts.append({k: v.numpy() for k, v in (transform(parsed) if transform else parsed).items()})
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def transformed_census(output_dir: str, data_paths, spec):
    """(config, metadata store, split row counts) of a short pipeline run on the census files (the
    embedded sample by default) under `output_dir`, run for its Transform output; cached after the
    first time."""
    data_file, test_file = census.classify_inputs(data_paths) if data_paths else (None, census.SAMPLE_PATH)
    prepared = census.prepare(spec, os.path.join(output_dir, "data"), data_path=data_file, test_path=test_file)
    config = local_runner.local_config(output_dir, prepared.root, spec, schemas.path(*DEFAULT_SCHEMA),
                                       train_steps=10, eval_steps=2)
    local_runner.run(config)
    return config, report.open_store(config.metadata_path), prepared.counts


@click.command()
@click.option("--data", "data_paths", multiple=True, type=click.Path(exists=True))
@click.option("--output-dir", default="bench_replicas", show_default=True)
@click.option("--steps", type=click.IntRange(min=20), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Per replica; 1 replica trains on twice this.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
def main(data_paths, output_dir, steps, batch_size, repeats):
    logging.basicConfig(level=logging.WARNING)
    spec = ungated_spec(schemas.path(*DEFAULT_SPEC))
    output_dir = os.path.abspath(output_dir)
    config, store, counts = transformed_census(output_dir, data_paths, spec)
    setups = {
        "1 replica": (TrainerConfig(batch_size=2 * batch_size), 0, 1),
        "mirrored 2 logical CPUs": (TrainerConfig(batch_size=batch_size, distribution="mirrored",
                                                  devices=["/cpu:0", "/cpu:1"]), 2, 1),
        "2 workers (127.0.0.1)": (TrainerConfig(batch_size=batch_size, distribution="multi_worker"), 0, 2),
    }
    rates = {name: [] for name in setups}
    for repeat in range(repeats):
        for name, (trainer, logical_cpus, workers) in setups.items():
            out = os.path.join(output_dir, "runs", f"{name.split()[0]}-{workers}-{repeat}")
            os.makedirs(out, exist_ok=True)
            args = local_workers.trainer_args(store, config.pipeline_name, spec, trainer, out, steps, 2)
            if workers > 1:
                replicas = local_workers.start_workers(args, workers, out)
            else:
                replicas = [local_workers.start(args, os.path.join(out, "log.txt"), logical_cpus=logical_cpus)]
            logs = local_workers.wait(replicas)
            rates[name].append(steady_rate(logs[0]))  # the chief's view of the global batch
            click.echo(f"{name} repeat {repeat + 1}: {rates[name][-1]:.0f} examples/s", err=True)
    base = statistics.median(rates["1 replica"])
    lines = [f"Global batch {2 * batch_size}, {steps} steps, {repeats} repeats; rows: {counts}",
             "", "| set-up | examples/s (median) | runs | vs 1 replica |", "|---|---|---|---|"]
    for name, values in rates.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:,.0f} | {', '.join(f'{v:,.0f}' for v in values)} | {median / base:.2f}x |")
    click.echo("\n".join(lines))
    with open(os.path.join(output_dir, "replicas.json"), "w") as f:
        json.dump({"steps": steps, "batch_size": batch_size, "rates": rates}, f, indent=2)


if __name__ == "__main__":
    main()
