"""The MMoE paper's synthetic experiment (Ma et al., KDD 2018, sections 3.2 and 5.1), redone faithfully.

Two regression tasks whose correlation is controlled (`sources.synthetic.generate`: weight
vectors at cosine p, shared sine terms). For each task correlation and seed, one draw of the data
(`--train-rows` training rows, enough that training loss ~ test loss; a validation and a test set
of `--test-rows` each) is shared by every model, so results are paired by seed. Models, built by
the pipeline's own `trainer.model.build_model` with the paper's sizes (section 5.1):

* MMoE and OMoE: 8 experts of 16 units, towers of 8;
* shared-bottom: a bottom of `--bottom-units` (113: its parameter count matched to MMoE's, about
  13k on 100 inputs), towers of 8.

Each model is trained with Adam at every learning rate of `--learning-rates` (the paper's grid,
1e-4, 1e-3, 1e-2) for every correlation; per model and correlation the rate with the lowest mean
validation loss over the `--grid-seeds` first seeds is kept, and the remaining seeds run at that
rate alone. Losses are MSE divided by the test labels' variance (1 - R^2), averaged over the two
tasks: the label variance differs several-fold between draws, and raw MSE averaged over seeds is
dominated by a few of them. Reported: the loss against training steps on the training and the
test data (the paper's Figure 4), the histogram of final test losses over seeds (Figure 5), and
per seed the paired difference to shared-bottom.

The data's constants are this project's choices, not the paper's (it gives no values): weight
norm c = 1, m = 10 sine terms, alpha and beta drawn from N(0, 1), noise N(0, 0.01), d = 100.

    python bench/synthetic.py --seeds 30 --json synthetic.json --plot docs/synthetic.png
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from components.spec import DatasetSpec  # noqa: E402
from sources import synthetic  # noqa: E402
from trainer.config import TrainerConfig, Variant  # noqa: E402
from trainer.model import build_model  # noqa: E402

VARIANTS = (Variant.MMOE, Variant.OMOE, Variant.SHARED_BOTTOM)
CORRELATIONS = (0.5, 0.9, 1.0)
LEARNING_RATES = (1e-4, 1e-3, 1e-2)  # the paper's grid for Adam
BASELINE = Variant.SHARED_BOTTOM.value  # paired differences are taken against it
BOTTOM_UNITS = 113  # section 5.1: 13,056 / (100 + 8 x 2), parameters matched to MMoE's


def model_config(variant: Variant, learning_rate: float, seed: int, bottom_units: int, batch_size: int):
    return TrainerConfig(variant=variant, num_experts=8, expert_units=16, bottom_units=bottom_units,
                         tower_units=(8,), batch_size=batch_size, shared_learning_rate=learning_rate, seed=seed)


def _spec(dim: int, learning_rate: float) -> DatasetSpec:
    raw = synthetic.spec_dict(dim)
    raw["tasks"] = [dict(t, learning_rate=learning_rate) for t in raw["tasks"]]  # the towers' rate too
    return DatasetSpec.from_dict(raw)


def _split(spec: DatasetSpec, x: np.ndarray, y: np.ndarray):
    return ({c.transformed_name: x[:, i:i + 1] for i, c in enumerate(spec.features)},
            {t.output_name: y[:, k:k + 1] for k, t in enumerate(spec.tasks)})


def normalised_losses(model, spec: DatasetSpec, x: np.ndarray, y: np.ndarray, variance: np.ndarray) -> float:
    """Mean over tasks of MSE / label variance (1 - R^2 against the test labels' variance)."""
    features, _ = _split(spec, x, y)
    predictions = model.predict(features, batch_size=8192, verbose=0)
    mse = np.array([np.mean((predictions[t.output_name][:, 0] - y[:, k]) ** 2) for k, t in enumerate(spec.tasks)])
    return float(np.mean(mse / variance))


class Curve(keras.callbacks.Callback):
    """The normalised loss on a fixed sample of the training rows and on the test rows after every `epoch`
    of `every` steps (the paper's Figure 4)."""

    def __init__(self, evaluate, every: int):
        super().__init__()
        self.evaluate, self.every = evaluate, every
        self.steps: List[int] = []
        self.train: List[float] = []
        self.test: List[float] = []

    def on_epoch_end(self, epoch, logs=None):
        train, test = self.evaluate(self.model)
        self.steps.append((epoch + 1) * self.every)
        self.train.append(train)
        self.test.append(test)


def draw(correlation: float, seed: int, train_rows: int, test_rows: int, dim: int) -> dict:
    """One draw of the data, shared by every model and rate of this (correlation, seed)."""
    data = synthetic.generate(train_rows + 2 * test_rows, dim=dim, correlation=correlation, seed=seed)
    y = np.stack([data.y[t] for t in synthetic.TASKS], axis=1).astype("float32")
    parts = {"train": slice(0, train_rows), "validation": slice(train_rows, train_rows + test_rows),
             "test": slice(train_rows + test_rows, None)}
    out = {name: (data.x[rows], y[rows]) for name, rows in parts.items()}
    out["variance"] = y[parts["test"]].var(axis=0)
    return out


def run_one(variant: Variant, learning_rate: float, data: dict, seed: int, steps: int, batch_size: int,
            every: int, bottom_units: int, dim: int) -> dict:
    """One model trained on one draw: its curve, final train / validation / test losses (normalised)."""
    spec = _spec(dim, learning_rate)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(spec, model_config(variant, learning_rate, seed, bottom_units, batch_size), vocab_sizes={})
    x, y = data["train"]
    sample = slice(0, min(len(x), 10000))
    variance = data["variance"]

    def evaluate(m):
        return (normalised_losses(m, spec, x[sample], y[sample], variance),
                normalised_losses(m, spec, *data["test"], variance))

    curve = Curve(evaluate, every)
    # Batches gathered by reshuffled row indices from two whole tensors (a row-by-row shuffle buffer of
    # 200k rows of 100 floats costs more than the small models' steps).
    xt, yt = tf.constant(x), tf.constant(y)
    train = (tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
             .batch(batch_size, drop_remainder=True)
             .map(lambda rows: _split(spec, tf.gather(xt, rows), tf.gather(yt, rows)),
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    model.fit(train, steps_per_epoch=every, epochs=max(1, steps // every), callbacks=[curve], verbose=0)
    return {"steps": curve.steps, "train_curve": curve.train, "test_curve": curve.test,
            "train": curve.train[-1], "test": curve.test[-1],
            "validation": normalised_losses(model, spec, *data["validation"], variance)}


def paired(runs: Sequence[dict], variant: str, correlation: float) -> List[float]:
    """Per seed, `variant`'s final test loss minus shared-bottom's (negative: `variant` is better)."""
    by_seed = {}
    for r in runs:
        if r["correlation"] == correlation and r["best"]:
            by_seed.setdefault(r["seed"], {})[r["variant"]] = r["test"]
    return [d[variant] - d[BASELINE] for _, d in sorted(by_seed.items()) if variant in d and BASELINE in d]


def _mean_ci(values: Sequence[float]) -> dict:
    """Mean and the half-width of its 95% confidence interval (normal approximation)."""
    mean = statistics.mean(values)
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": mean, "ci95": half, "n": len(values)}


def run_experiment(seeds: int, steps: int, train_rows: int = 200_000, test_rows: int = 10_000, dim: int = 100,
                   batch_size: int = 256, every: int = 250, grid_seeds: Optional[int] = None,
                   bottom_units: int = BOTTOM_UNITS, variants: Sequence[Variant] = VARIANTS,
                   correlations: Sequence[float] = CORRELATIONS,
                   learning_rates: Sequence[float] = LEARNING_RATES) -> dict:
    """Every (correlation, seed, variant, rate) run, the rate kept per (variant, correlation), and a summary."""
    grid_seeds = seeds if grid_seeds is None else min(grid_seeds, seeds)
    variants = [Variant(v) for v in variants]
    runs: List[dict] = []
    best_rate: Dict[str, Dict[str, float]] = {}
    started = time.monotonic()
    total = len(correlations) * (grid_seeds * len(variants) * len(learning_rates)
                                 + (seeds - grid_seeds) * len(variants))

    def record(correlation, seed, variant, rate, data):
        start = time.monotonic()
        result = run_one(variant, rate, data, seed, steps, batch_size, every, bottom_units, dim)
        runs.append({"correlation": correlation, "seed": seed, "variant": variant.value, "learning_rate": rate,
                     "best": False, **result, "seconds": round(time.monotonic() - start, 2)})
        logging.info("correlation %s seed %d %s lr %g: test %.4f, train %.4f (%.0f s); %d of %d runs, %.0f s in all",
                     correlation, seed, variant.value, rate, result["test"], result["train"],
                     runs[-1]["seconds"], len(runs), total, time.monotonic() - started)

    for correlation in correlations:
        for seed in range(grid_seeds):
            one = draw(correlation, seed, train_rows, test_rows, dim)
            for variant in variants:
                for rate in learning_rates:
                    record(correlation, seed, variant, rate, one)
        best_rate[str(correlation)] = {}
        for variant in variants:
            def validation(rate, variant=variant, correlation=correlation):
                return statistics.mean(r["validation"] for r in runs if r["correlation"] == correlation
                                       and r["variant"] == variant.value and r["learning_rate"] == rate)
            rate = min(learning_rates, key=validation)
            best_rate[str(correlation)][variant.value] = rate
            for r in runs:
                if r["correlation"] == correlation and r["variant"] == variant.value and r["learning_rate"] == rate:
                    r["best"] = True
        for seed in range(grid_seeds, seeds):
            one = draw(correlation, seed, train_rows, test_rows, dim)
            for variant in variants:
                record(correlation, seed, variant, best_rate[str(correlation)][variant.value], one)
                runs[-1]["best"] = True
    return {"settings": {"seeds": seeds, "grid_seeds": grid_seeds, "steps": steps, "train_rows": train_rows,
                         "test_rows": test_rows, "dim": dim, "batch_size": batch_size, "every": every,
                         "bottom_units": bottom_units, "learning_rates": list(learning_rates)},
            "best_rate": best_rate, "runs": runs, "summary": summarise(runs, variants, correlations)}


def combine(results: Sequence[dict]) -> dict:
    """One result of several runs of this script over different correlations (e.g. one process per
    correlation, on as many cores), with the same settings."""
    settings = {json.dumps(r["settings"], sort_keys=True) for r in results}
    if len(settings) > 1:
        raise ValueError(f"cannot combine runs made with different settings: {sorted(settings)}")
    runs = [run for r in results for run in r["runs"]]
    correlations = sorted({run["correlation"] for run in runs})
    variants = list(dict.fromkeys(Variant(run["variant"]) for run in runs))
    best_rate = {c: v for r in results for c, v in r["best_rate"].items()}
    return {"settings": results[0]["settings"], "best_rate": best_rate, "runs": runs,
            "summary": summarise(runs, variants, correlations)}


def summarise(runs: Sequence[dict], variants: Sequence[Variant], correlations: Sequence[float]) -> dict:
    """Per correlation and variant, at its kept rate: final test and train loss (mean, 95% CI, median),
    and the paired difference to shared-bottom with the share of seeds where the variant is better."""
    summary = {}
    for correlation in correlations:
        cell = {}
        for variant in variants:
            kept = [r for r in runs if r["correlation"] == correlation and r["variant"] == variant.value and r["best"]]
            tests = [r["test"] for r in kept]
            cell[variant.value] = {"test": _mean_ci(tests), "test_median": statistics.median(tests),
                                   # the spread of Figure 5: how far the worst draws and starts land
                                   "test_p90": float(np.percentile(tests, 90)),
                                   "train": _mean_ci([r["train"] for r in kept]),
                                   "learning_rate": kept[0]["learning_rate"]}
            if variant.value != BASELINE:
                diffs = paired(runs, variant.value, correlation)
                if diffs:
                    cell[variant.value]["minus_shared_bottom"] = {
                        **_mean_ci(diffs), "better_share": sum(d < 0 for d in diffs) / len(diffs)}
        summary[str(correlation)] = cell
    return summary


def table(result: dict) -> str:
    """Markdown: per correlation and variant, kept rate, final test and train loss, paired difference."""
    lines = ["| correlation | model | rate | test loss (mean ± 95% CI; median; 90th percentile) | train loss | "
             "minus shared-bottom, paired (mean ± 95% CI; seeds better) |", "|---|---|---|---|---|---|"]
    for correlation, by_variant in result["summary"].items():
        for variant, c in by_variant.items():
            diff = c.get("minus_shared_bottom")
            paired_cell = (f"{diff['mean']:+.4f} ± {diff['ci95']:.4f}; {diff['better_share']:.0%}" if diff else "-")
            lines.append(f"| {correlation} | {variant} | {c['learning_rate']:g} | {c['test']['mean']:.4f} ± "
                         f"{c['test']['ci95']:.4f}; {c['test_median']:.4f}; {c['test_p90']:.4f} | "
                         f"{c['train']['mean']:.4f} | {paired_cell} |")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    """Figure 4 (loss against steps, train dashed, test solid, mean over seeds at the kept rate) above
    Figure 5 (histograms of the final test loss over seeds), one column per correlation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    correlations = list(result["summary"])
    fig, axes = plt.subplots(2, len(correlations), figsize=(5 * len(correlations), 8), squeeze=False)
    for col, correlation in enumerate(correlations):
        curves, hist = axes[0][col], axes[1][col]
        for i, variant in enumerate(result["summary"][correlation]):
            kept = [r for r in result["runs"] if str(r["correlation"]) == correlation and r["variant"] == variant
                    and r["best"]]
            steps = kept[0]["steps"]
            color = f"C{i}"
            for key, style in (("test_curve", "-"), ("train_curve", "--")):
                curves.plot(steps, np.mean([r[key] for r in kept], axis=0), style, color=color,
                            label=f"{variant} {key.split('_')[0]}")
            hist.hist([r["test"] for r in kept], bins=15, alpha=0.5, color=color, label=variant)
        curves.set_title(f"correlation {correlation}")
        curves.set_xlabel("training steps")
        curves.set_ylabel("loss / label variance")
        curves.set_yscale("log")
        hist.set_xlabel("final test loss / label variance")
        hist.set_ylabel("seeds")
        curves.legend(fontsize=7)
        hist.legend(fontsize=7)
    settings = result["settings"]
    fig.suptitle(f"Synthetic data (paper 3.2): {settings['seeds']} seeds, {settings['train_rows']:,} training rows, "
                 f"{settings['steps']} steps of {settings['batch_size']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@click.command()
@click.option("--seeds", type=click.IntRange(min=1), default=30, show_default=True,
              help="Data draws per correlation, each shared by every model (paired).")
@click.option("--grid-seeds", type=click.IntRange(min=1), default=None,
              help="The first seeds that try every learning rate (default: all); the rest run at the kept rate.")
@click.option("--steps", type=click.IntRange(min=1), default=4000, show_default=True)
@click.option("--every", type=click.IntRange(min=1), default=250, show_default=True,
              help="Steps between two points of the loss curves.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--train-rows", type=click.IntRange(min=100), default=200_000, show_default=True)
@click.option("--test-rows", type=click.IntRange(min=10), default=10_000, show_default=True,
              help="Rows of the validation set (picks the rate) and of the test set each.")
@click.option("--bottom-units", type=click.IntRange(min=1), default=BOTTOM_UNITS, show_default=True)
@click.option("--correlations", default=",".join(map(str, CORRELATIONS)), show_default=True)
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), help="Write the plot (PNG) here.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write every run here.")
@click.option("--combine", "combined", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Train nothing: the table and plot of these --json files together (e.g. one process per "
                   "correlation); repeatable.")
def main(seeds, grid_seeds, steps, every, batch_size, train_rows, test_rows, bottom_units, correlations, plot_path,
         json_path, combined) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if combined:
        loaded = []
        for path in combined:
            with open(path) as f:
                loaded.append(json.load(f))
        result = combine(loaded)
    else:
        result = run_experiment(seeds, steps, train_rows=train_rows, test_rows=test_rows, batch_size=batch_size,
                                every=every, grid_seeds=grid_seeds, bottom_units=bottom_units,
                                correlations=[float(c) for c in correlations.split(",")])
    click.echo(table(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    if plot_path:
        plot(result, plot_path)
        click.echo(f"Wrote {plot_path}")


if __name__ == "__main__":
    main()
