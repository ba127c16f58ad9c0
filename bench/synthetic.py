"""The MMoE paper's synthetic experiment (Ma et al., KDD 2018, section 3.2).

Two regression tasks whose correlation is controlled (`components.synthetic.generate`: weight
vectors at cosine p, shared sine terms); MMoE, OMoE and shared-bottom, built by the pipeline's
own `trainer.model.build_model`, trained on the same data for each task correlation and seed.
The paper's finding: every model does better when the tasks are more correlated, and MMoE
degrades least as the correlation drops (its Figure 4, training loss). Reported here: the final
test MSE, averaged over both tasks, mean and standard deviation over the seeds, per
correlation and model, as a table (stdout, JSON) and a plot.

Training runs in memory on the raw features (no Transform: the features are already standard
normal), Adam, the same steps and batch for every model.

    python bench/synthetic.py --seeds 5 --steps 3000 --plot docs/synthetic.png --json synthetic.json
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Dict, Sequence  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from components import synthetic  # noqa: E402
from components.spec import DatasetSpec  # noqa: E402
from trainer.config import TrainerConfig, Variant  # noqa: E402
from trainer.model import build_model  # noqa: E402

VARIANTS = (Variant.MMOE, Variant.OMOE, Variant.SHARED_BOTTOM)
CORRELATIONS = (0.5, 0.9, 1.0)


def _inputs(data: synthetic.SyntheticData, spec: DatasetSpec, rows: slice):
    features = {c.transformed_name: data.x[rows, i:i + 1] for i, c in enumerate(spec.features)}
    labels = {t.output_name: data.y[t.label_column][rows].reshape(-1, 1).astype("float32") for t in spec.tasks}
    return features, labels


def run_one(variant: Variant, correlation: float, seed: int, train_rows: int, test_rows: int, dim: int,
            steps: int, batch_size: int) -> Dict[str, float]:
    """Test MSE per task (and their mean) of one model trained on one draw of the data."""
    data = synthetic.generate(train_rows + test_rows, dim=dim, correlation=correlation, seed=seed)
    spec = DatasetSpec.from_dict(synthetic.spec_dict(dim))
    config = TrainerConfig(variant=variant, num_experts=8, expert_units=16, tower_units=(8,), batch_size=batch_size,
                           shared_learning_rate=1e-3, seed=seed)
    keras.utils.set_random_seed(seed)
    model = build_model(spec, config, vocab_sizes={})
    # Rows as two tensors, split into the model's 100 inputs per batch (not per row: much faster).
    x = data.x[:train_rows]
    y = np.stack([data.y[t.label_column][:train_rows] for t in spec.tasks], axis=1).astype("float32")

    def split(xb, yb):
        return ({c.transformed_name: xb[:, i:i + 1] for i, c in enumerate(spec.features)},
                {t.output_name: yb[:, k:k + 1] for k, t in enumerate(spec.tasks)})

    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(train_rows, seed=seed).repeat() \
        .batch(batch_size).map(split).prefetch(tf.data.AUTOTUNE)
    model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
    features, labels = _inputs(data, spec, slice(train_rows, None))
    predictions = model.predict(features, batch_size=4096, verbose=0)
    mse = {t.name: float(np.mean((predictions[t.output_name] - labels[t.output_name]) ** 2)) for t in spec.tasks}
    return {**mse, "mean": float(np.mean(list(mse.values())))}


def run_experiment(seeds: int, steps: int, train_rows: int = 10000, test_rows: int = 2000, dim: int = 100,
                   batch_size: int = 256, variants: Sequence[Variant] = VARIANTS,
                   correlations: Sequence[float] = CORRELATIONS) -> dict:
    """Every (correlation, variant, seed): the runs and, per correlation and variant, mean and std."""
    runs = []
    for correlation in correlations:
        for seed in range(seeds):
            for variant in variants:
                start = time.monotonic()
                result = run_one(variant, correlation, seed, train_rows, test_rows, dim, steps, batch_size)
                runs.append({"correlation": correlation, "variant": variant.value, "seed": seed, **result,
                             "seconds": time.monotonic() - start})
                logging.info("correlation %s seed %d %s: test MSE %.4f (%.0f s); %d of %d runs done", correlation,
                             seed, variant.value, result["mean"], runs[-1]["seconds"], len(runs),
                             len(correlations) * seeds * len(variants))
    summary = {}
    for correlation in correlations:
        for variant in variants:
            values = [r["mean"] for r in runs if r["correlation"] == correlation and r["variant"] == variant.value]
            summary.setdefault(str(correlation), {})[variant.value] = {
                "mean_mse": statistics.mean(values), "std_mse": statistics.stdev(values) if len(values) > 1 else 0.0,
                "seeds": len(values)}
    return {"settings": {"seeds": seeds, "steps": steps, "train_rows": train_rows, "test_rows": test_rows,
                         "dim": dim, "batch_size": batch_size},
            "runs": runs, "summary": summary}


def table(result: dict) -> str:
    variants = list(next(iter(result["summary"].values())))
    lines = ["correlation  " + "  ".join(f"{v:>20}" for v in variants)]
    for correlation, by_variant in result["summary"].items():
        lines.append(f"{correlation:>11}  " + "  ".join(
            f"{by_variant[v]['mean_mse']:>12.4f} ± {by_variant[v]['std_mse']:.4f}" for v in variants))
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    correlations = [float(c) for c in result["summary"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in next(iter(result["summary"].values())):
        means = [result["summary"][str(c)][variant]["mean_mse"] for c in correlations]
        stds = [result["summary"][str(c)][variant]["std_mse"] for c in correlations]
        ax.errorbar(correlations, means, yerr=stds, marker="o", capsize=3, label=variant)
    ax.set_xlabel("task correlation (cosine of the task weight vectors)")
    ax.set_ylabel("test MSE, mean of both tasks")
    settings = result["settings"]
    ax.set_title(f"Synthetic data (paper 3.2): {settings['seeds']} seeds, {settings['steps']} steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@click.command()
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--train-rows", type=click.IntRange(min=100), default=10000, show_default=True)
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), help="Write the plot (PNG) here.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write every run here.")
def main(seeds, steps, train_rows, plot_path, json_path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run_experiment(seeds, steps, train_rows=train_rows)
    click.echo(table(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    if plot_path:
        plot(result, plot_path)
        click.echo(f"Wrote {plot_path}")


if __name__ == "__main__":
    main()
