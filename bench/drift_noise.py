"""How far TFDV's drift measure moves between two spans that did not drift: the data behind the
default `drift_threshold` (components/spec.py, DEFAULT_DRIFT_THRESHOLD) and the census columns
marked `drift: off`.

Two disjoint random samples of N rows of the same prepared census split are compared exactly as
SpanDrift compares two spans (`components.drift.compare`, every column checked); then the second
sample again with every age moved up by `--age-shift` years (a real drift). Prints the largest
Jensen-Shannon divergences per sample size.

    python bench/drift_noise.py --rows 1600 4000 8000
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import dataclasses  # noqa: E402
import tempfile  # noqa: E402
from typing import Dict, List, Sequence  # noqa: E402

import click  # noqa: E402
import pandas as pd  # noqa: E402

import schemas  # noqa: E402
from components.drift import compare  # noqa: E402
from components.spec import ColumnKind, DatasetSpec, load_spec  # noqa: E402
from sources import census  # noqa: E402


def divergences(spec: DatasetSpec, a: pd.DataFrame, b: pd.DataFrame) -> Dict[str, float]:
    """Every column's Jensen-Shannon divergence of `b` against `a`, as SpanDrift measures it."""
    import tensorflow_data_validation as tfdv

    checked = dataclasses.replace(spec, columns=tuple(dataclasses.replace(c, drift=None) for c in spec.columns))
    first, second = (tfdv.generate_statistics_from_dataframe(x) for x in (a, b))
    anomalies = compare(second, first, tfdv.infer_schema(first), checked)
    return {".".join(i.path.step): m.value for i in anomalies.drift_skew_info for m in i.drift_measurements}


def measure(rows: Sequence[int], age_shift: int, seed: int = 42) -> List[dict]:
    spec = load_spec(schemas.path("census", "group1.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        prepared = census.prepare(spec, tmp, test_path=census.SAMPLE_PATH, seed=seed)
        frame = pd.read_csv(os.path.join(prepared.root, "train", "data.csv"), dtype=str, keep_default_na=False)
    for column in spec.columns:
        if column.kind is ColumnKind.NUMERIC:
            frame[column.name] = frame[column.name].astype(float)
    results = []
    for n in rows:
        if 2 * n > len(frame):
            raise click.BadParameter(f"{n} rows: the prepared train split has {len(frame)}, two samples need {2 * n}.")
        a, b = frame.iloc[:n], frame.iloc[n:2 * n].copy()
        quiet = divergences(spec, a, b)
        b["age"] = b["age"] + age_shift
        shifted = divergences(spec, a, b)
        results.append({"rows": n, "largest": sorted(quiet.items(), key=lambda kv: -kv[1])[:5],
                        "age_shifted": shifted["age"]})
    return results


@click.command()
@click.option("--rows", multiple=True, type=click.IntRange(min=100), default=(1600, 4000, 8000), show_default=True)
@click.option("--age-shift", type=int, default=30, show_default=True)
def main(rows, age_shift) -> None:
    for result in measure(rows, age_shift):
        largest = ", ".join(f"{name} {value:.3f}" for name, value in result["largest"])
        click.echo(f"{result['rows']:>6} rows: largest without drift: {largest}; age + {age_shift}: "
                   f"{result['age_shifted']:.3f}")


if __name__ == "__main__":
    main()
