"""The Trainer's steady training rate against a bare tf_keras `fit` of the same model on the same data.

Runs the pipeline once (to get its Transform output), then, side by side, `--repeats` times:

* ``Trainer``: the Trainer's executor (`python -m tfx.scripts.run_executor`, TFX's GenericExecutor
  with `trainer.run.run_fn`): Transform's gzipped TFRecords read through TFX's data accessor,
  the pipeline's callbacks (progress, NaN check, TensorBoard), validation and export;
* ``bare fit``: the same model (`trainer.model.build_model`, the same `TrainerConfig`) fitted by
  plain `model.fit` on the same transformed train split, parsed into memory first, shuffled and
  batched by `tf.data` from tensors, no callback but the rate report.

Both report the same windowed rate (`trainer.callbacks.LogProgress`: examples since the previous report
over the time since it); the steady rate is the median of the reports, the first one (tracing)
left out. Each set-up runs in its own process.

    python bench/trainer_rate.py --data census-income.test.gz --steps 2000 --repeats 3
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import click  # noqa: E402

from replicas import read_columns, steady_rate, transformed_census, ungated_spec  # noqa: E402

BARE, TRAINER = "bare fit", "Trainer"


def bare_fit(examples_uri: str, transform_uri: str, steps: int, spec=None) -> None:
    """Fits the model of `spec` (default: the benchmark's census spec) on the transformed train split
    held in memory; logs the progress as the Trainer does."""
    import glob

    import tensorflow as tf
    import tensorflow_transform as tft

    from components.spec import SPLIT_NAMES
    from trainer.callbacks import LogProgress
    from trainer.config import TrainerConfig
    from trainer.input_data import in_memory_batches, vocabulary_sizes
    from trainer.model import build_model

    spec = spec or transformed_census_spec()
    config = TrainerConfig()
    output = tft.TFTransformOutput(transform_uri)
    columns = read_columns(sorted(glob.glob(os.path.join(examples_uri, f"Split-{SPLIT_NAMES[0]}", "*"))),
                           output.transformed_feature_spec())
    features = {k: columns[k] for k in spec.feature_keys}
    labels = {t.output_name: columns[t.label_key] for t in spec.tasks}
    logging.info("bare fit: %d rows in memory", len(next(iter(labels.values()))))
    tf.keras.utils.set_random_seed(config.seed)
    model = build_model(spec, config, vocabulary_sizes(output, spec))
    model.fit(in_memory_batches(features, labels, config.batch_size, config.seed), epochs=1,
              steps_per_epoch=steps, callbacks=[LogProgress(steps, config.batch_size)], verbose=0)


def transformed_census_spec():
    """The spec the benchmark's pipeline ran with (the census default, no AUC gates)."""
    import schemas
    from pipeline.graph.settings import DEFAULT_SPEC

    return ungated_spec(schemas.path(*DEFAULT_SPEC))


def _run(command, log_path: str) -> str:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    with open(log_path, "w") as log:
        code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    with open(log_path) as log:
        text = log.read()
    if code:
        raise RuntimeError(f"{' '.join(command[:4])} ... exited with {code}; log {log_path}:\n{text[-3000:]}")
    return text


@click.command()
@click.option("--data", "data_paths", multiple=True, type=click.Path(exists=True))
@click.option("--output-dir", default="bench_trainer_rate", show_default=True)
@click.option("--steps", type=click.IntRange(min=20), default=2000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--bare", "bare", nargs=2, type=str, default=None, hidden=True,
              help="(internal) EXAMPLES_URI TRANSFORM_URI: run the bare fit in this process.")
def main(data_paths, output_dir, steps, repeats, bare):
    if bare:
        logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)  # over absl's handler
        bare_fit(*bare, steps)
        return
    logging.basicConfig(level=logging.WARNING)
    from pipeline.local import local_workers
    from pipeline.reporting import report
    from trainer.config import TrainerConfig

    output_dir = os.path.abspath(output_dir)
    spec = transformed_census_spec()
    config, store, counts = transformed_census(output_dir, data_paths, spec)
    examples_uri = report.latest_output_uri(store, config.pipeline_name, "Transform", "Examples")
    transform_uri = report.latest_output_uri(store, config.pipeline_name, "Transform", "TransformGraph")
    rates = {TRAINER: [], BARE: []}
    for repeat in range(repeats):
        out = os.path.join(output_dir, "runs", f"trainer-{repeat}")
        os.makedirs(out, exist_ok=True)
        args = local_workers.trainer_args(store, config.pipeline_name, spec, TrainerConfig(), out, steps, 2)
        log = _run([sys.executable, "-m", local_workers.RUN_EXECUTOR_MODULE, *args], os.path.join(out, "log.txt"))
        rates[TRAINER].append(steady_rate(log))
        log = _run([sys.executable, os.path.abspath(__file__), "--steps", str(steps), "--bare", examples_uri,
                    transform_uri], os.path.join(out, "bare.txt"))
        rates[BARE].append(steady_rate(log))
        click.echo(f"repeat {repeat + 1}: Trainer {rates[TRAINER][-1]:,.0f}, bare fit {rates[BARE][-1]:,.0f} "
                   "examples/s", err=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratio = medians[TRAINER] / medians[BARE]
    lines = [f"{steps} steps of {TrainerConfig().batch_size}, {repeats} repeats; rows: {counts}", "",
             "| set-up | steady examples/s (median) | runs |", "|---|---|---|"]
    lines += [f"| {name} | {medians[name]:,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |"
              for name, values in rates.items()]
    lines += ["", f"Trainer / bare fit: {ratio:.2f}"]
    click.echo("\n".join(lines))
    with open(os.path.join(output_dir, "trainer_rate.json"), "w") as f:
        json.dump({"steps": steps, "rates": rates, "medians": medians, "ratio": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
