"""What the Trainer's backups (`trainer.checkpoints`, Keras's BackupAndRestore) cost the training.

A fresh census model (the default spec and TrainerConfig, each categorical feature's vocabulary the
curated schema's domain) fits `--steps` steps of one in-memory batch, side by side, `--repeats` times, in
three set-ups: no backup, a backup every step, and a backup every `trainer.checkpoints.backup_steps` steps
(what the Trainer does). Timed from the end of the first step (tracing) to the end of the last. The cost of
one backup is (every step - none) / timed steps (a backup after the first step is timed too); the Trainer's
overhead is the median over the repeats of (its interval / none) - 1. Medians over the repeats; the set-ups
alternate in each repeat.

    python bench/backup.py --steps 2000 --repeats 3
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import click  # noqa: E402

NONE, EVERY_STEP, TRAINER = "no backup", "every step", "the Trainer's interval"
OTHER_VOCABULARY = 64  # a categorical feature without a domain in the schema


def census_model():
    """The census model as the Trainer builds it, and one batch of its inputs and labels."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    import schemas
    from components.spec import ColumnKind, load_spec
    from pipeline.graph.settings import DEFAULT_SCHEMA, DEFAULT_SPEC
    from trainer.config import TrainerConfig
    from trainer.model import build_model

    spec, config = load_spec(schemas.path(*DEFAULT_SPEC)), TrainerConfig()
    schema = tfdv.load_schema_text(schemas.path(*DEFAULT_SCHEMA))
    domains = {d.name: len(d.value) for d in schema.string_domain}
    features = {f.name: domains.get(f.domain, len(f.string_domain.value)) for f in schema.feature}
    vocabulary = {c.name: features.get(c.name) or OTHER_VOCABULARY for c in spec.features
                  if c.kind is ColumnKind.CATEGORICAL}
    tf.keras.utils.set_random_seed(config.seed)
    model = build_model(spec, config, vocabulary)
    rng = np.random.default_rng(config.seed)
    n = config.batch_size
    x = {}
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        shape = (n, *[d or 1 for d in tensor.shape[1:]])
        x[name] = (rng.integers(0, 2, size=shape) if tensor.dtype.is_integer
                   else rng.normal(size=shape)).astype(tensor.dtype.as_numpy_dtype)
    y = {t.output_name: rng.integers(0, 2, size=(n, 1)).astype("float32") for t in spec.tasks}
    return model, tf.data.Dataset.from_tensors((x, y)).repeat()


def fit_seconds(steps: int, backup) -> tuple:
    """Seconds from the end of a fresh census model's first step (traced) to the end of its last, and the
    model's parameter count. `backup`: None, or the (steps_per_epoch, min_steps) the Trainer's
    `backup_callback` is made with."""
    import tf_keras as keras

    from trainer.checkpoints import backup_callback

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.started = time.perf_counter()
            self.ended = time.perf_counter()

    # A fresh model each time: Keras's BackupAndRestore leaves the model it backed up unable to fit again.
    model, data = census_model()
    timer = Timer()
    with tempfile.TemporaryDirectory() as directory:
        callbacks = [timer]
        if backup:
            callbacks.insert(0, backup_callback(directory, *backup))
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=callbacks)
    return timer.ended - timer.started, int(model.count_params())


def measure(steps: int, repeats: int, min_steps=None) -> dict:
    """Seconds of each set-up per repeat, their medians, one backup's cost and the Trainer's overhead."""
    from trainer.checkpoints import BACKUP_MIN_STEPS, backup_steps

    trainer = (steps, BACKUP_MIN_STEPS if min_steps is None else min_steps)  # one epoch of `steps`, as by default
    interval = backup_steps(*trainer)
    backups = {NONE: None, EVERY_STEP: (1, 1), TRAINER: trainer}
    seconds = {name: [] for name in backups}
    for repeat in range(repeats):
        for name, backup in backups.items():
            took, parameters = fit_seconds(steps, backup)
            seconds[name].append(took)
            logging.info("repeat %d/%d %s: %.2f s", repeat + 1, repeats, name, seconds[name][-1])
    median = {name: statistics.median(values) for name, values in seconds.items()}
    timed = steps - 1  # the first step (tracing) is not timed
    return {
        "steps": steps, "repeats": repeats, "trainer_interval": interval,
        "parameters": parameters, "seconds": seconds, "median_s": median,
        "step_ms": 1000 * median[NONE] / timed,
        "backup_ms": 1000 * (median[EVERY_STEP] - median[NONE]) / timed,
        # Paired within each repeat (the set-ups ran side by side), then the median.
        "trainer_overhead": statistics.median(t / n for t, n in zip(seconds[TRAINER], seconds[NONE])) - 1,
    }


def table(result: dict) -> str:
    rows = ["| set-up | seconds (median) | vs no backup |", "|---|---|---|"]
    base = result["median_s"][NONE]
    for name, value in result["median_s"].items():
        label = f"{name} ({result['trainer_interval']} steps)" if name == TRAINER else name
        rows.append(f"| {label} | {value:.2f} | {value / base:.2f}x |")
    return "\n".join(rows)


@click.command()
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the result here.")
def main(steps, repeats, json_path):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(steps, repeats)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    click.echo(table(result))
    click.echo(f"{result['parameters']} parameters; a step {result['step_ms']:.2f} ms, a backup "
               f"{result['backup_ms']:.1f} ms; the Trainer's backups add {100 * result['trainer_overhead']:.1f}%")


if __name__ == "__main__":
    main()
