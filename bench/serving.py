"""Serving latency and throughput of a pushed model, in process, through `serving_default` with
raw serialized tf.Examples (labels removed, as serving traffic has none).

* batch 1: `--requests` single-example calls one after another; p50 and p99 latency in ms;
* batch 1024: `--repeats` calls of 1,024 examples; the median examples per second.

The model is the newest version pushed under OUTPUT/serving_model, the examples that run's test
split (CsvExampleGen's output, found through the run's ML Metadata).

    mmoe-pipeline run --output-dir mmoe_output              # any run that pushed a model
    python bench/serving.py --output-dir mmoe_output --requests 2000 --repeats 20
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import List, Sequence  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.baseline import newest_version  # noqa: E402
from components.names import EXAMPLE_GEN_COMPONENT, EXAMPLES_INPUT, SERVING_SIGNATURE  # noqa: E402
from components.serving_check import raw_examples  # noqa: E402
from components.spec import DatasetSpec  # noqa: E402
from pipeline.graph.config import DEFAULT_PIPELINE_NAME  # noqa: E402
from pipeline.local.local_runner import METADATA_FILE  # noqa: E402
from pipeline.reporting import report  # noqa: E402

BIG_BATCH = 1024


def measure(model_dir: str, serialized: Sequence[bytes], requests: int, repeats: int) -> dict:
    """Latency at batch 1 and throughput at batch `BIG_BATCH` of `model_dir`'s serving_default."""
    if not serialized:
        raise ValueError("no examples to serve; is the run's test split empty?")
    serve = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]
    singles = [tf.constant([serialized[i % len(serialized)]]) for i in range(requests)]
    batch = tf.constant([serialized[i % len(serialized)] for i in range(BIG_BATCH)])
    for warm in (singles[0], batch):  # tracing and the first table lookups are not serving time
        serve(**{EXAMPLES_INPUT: warm})
    latencies: List[float] = []
    for request in singles:
        start = time.perf_counter()
        serve(**{EXAMPLES_INPUT: request})
        latencies.append((time.perf_counter() - start) * 1000)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        serve(**{EXAMPLES_INPUT: batch})
        rates.append(BIG_BATCH / (time.perf_counter() - start))
    return {
        "model": model_dir,
        "batch_1": {"requests": requests, "p50_ms": float(np.percentile(latencies, 50)),
                    "p99_ms": float(np.percentile(latencies, 99))},
        f"batch_{BIG_BATCH}": {"repeats": repeats, "median_examples_per_s": statistics.median(rates)},
    }


def run_inputs(output_dir: str, spec: DatasetSpec, pipeline_name: str = DEFAULT_PIPELINE_NAME, limit: int = 2000):
    """(newest pushed model, raw test examples) of the run in `output_dir`."""
    model_dir = newest_version(os.path.join(output_dir, "serving_model"))
    if model_dir is None:
        raise click.ClickException(f"no pushed model under {output_dir}/serving_model; run the pipeline first.")
    store = report.open_store(os.path.join(output_dir, METADATA_FILE))
    examples = report.latest_output_uri(store, pipeline_name, EXAMPLE_GEN_COMPONENT, "Examples")
    return model_dir, raw_examples(examples, "test", spec, limit)


@click.command()
@click.option("--output-dir", default="mmoe_output", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--spec", "spec_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The run's spec [default: census group 1].")
@click.option("--requests", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True)
def main(output_dir, spec_path, requests, repeats) -> None:
    from pipeline.graph.settings import spec_with

    model_dir, serialized = run_inputs(output_dir, spec_with(spec_path))
    result = measure(model_dir, serialized, requests, repeats)
    click.echo(json.dumps(result, indent=2))
    one, big = result["batch_1"], result[f"batch_{BIG_BATCH}"]
    click.echo(f"batch 1: p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms ({requests} requests); "
               f"batch {BIG_BATCH}: {big['median_examples_per_s']:,.0f} examples/s (median of {repeats})")


if __name__ == "__main__":
    main()
