"""Synthetic two-task regression data with a controlled task correlation.

MMoE paper (Ma et al., KDD 2018), section 3.2:

1. draw orthonormal ``u1, u2`` in R^d;
2. ``w1 = c u1``, ``w2 = c (p u1 + sqrt(1 - p^2) u2)``, so ``cos(w1, w2) = p``;
3. draw ``x ~ N(0, I_d)``;
4. ``y_k = w_k . x + sum_i sin(alpha_i w_k . x + beta_i) + eps_k``, with
   ``alpha_i, beta_i`` shared by both tasks and ``eps_k ~ N(0, 0.01)``.

`write_dataset` writes it as a pipeline data source: CSV splits (header row)
plus the matching dataset spec and schema, for
``mmoe-pipeline run --spec S --schema S --splits-dir D``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Dict, Optional, Tuple

import numpy as np
import yaml
from tensorflow_metadata.proto.v0 import schema_pb2

from components.names import SCHEMA_FILE
from components.spec import DatasetSpec
from sources.census import SINGLE_FILE_FRACTIONS, SPLITS

TASKS = ("y1", "y2")


@dataclasses.dataclass(frozen=True)
class SyntheticData:
    x: np.ndarray  # [n, d]
    y: Dict[str, np.ndarray]  # task -> [n]
    w1: np.ndarray
    w2: np.ndarray


def generate(n: int, dim: int = 100, correlation: float = 0.5, c: float = 1.0, num_sin: int = 10,
             noise_std: float = 0.1, seed: int = 0) -> SyntheticData:
    """`n` examples of the paper's synthetic data with task correlation `correlation` (p)."""
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"Received: correlation={correlation!r}, expected a number in [-1, 1].")
    if dim < 2 or n < 1:
        raise ValueError(f"Received: dim={dim!r}, n={n!r}; expected dim >= 2 and n >= 1.")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    u1, u2 = q[:, 0], q[:, 1]
    w1 = c * u1
    w2 = c * (correlation * u1 + np.sqrt(1.0 - correlation ** 2) * u2)
    alpha = rng.normal(size=num_sin)
    beta = rng.normal(size=num_sin)
    x = rng.normal(size=(n, dim))

    def target(w):
        z = x @ w
        return z + np.sin(np.outer(z, alpha) + beta).sum(axis=1) + rng.normal(scale=noise_std, size=n)

    return SyntheticData(x=x.astype(np.float32), y={"y1": target(w1), "y2": target(w2)}, w1=w1, w2=w2)


def spec_dict(dim: int, max_mse: Optional[Dict[str, float]] = None, name: str = "synthetic") -> dict:
    """The dataset spec of `write_dataset`'s CSV: d numeric features, two regression tasks,
    gated by `max_mse` (label column -> bound) when given."""
    max_mse = max_mse or {}
    return {
        "name": name,
        "columns": [{"name": f"x{i}", "kind": "numeric"} for i in range(dim)]
        + [{"name": t, "kind": "numeric"} for t in TASKS],
        "tasks": [
            {"name": f"task_{t}", "label_column": t, "type": "regression",
             **({"max_mse": round(max_mse[t], 4)} if t in max_mse else {})}
            for t in TASKS
        ],
    }


def schema_for(spec: DatasetSpec) -> schema_pb2.Schema:
    """A schema where every column is a required scalar float."""
    schema = schema_pb2.Schema()
    for column in spec.columns:
        feature = schema.feature.add(name=column.name, type=schema_pb2.FLOAT)
        feature.presence.min_fraction = 1.0
        feature.shape.dim.add(size=1)
    return schema


def write_dataset(out_dir: str, n: int, dim: int = 16, correlation: float = 0.5, seed: int = 0) -> Tuple[str, str, str]:
    """Writes splits (80/10/10), spec.yaml and schema.pbtxt; returns (splits_dir, spec_path, schema_path).

    Each task is gated at half its target variance (R^2 >= 0.5 on the test split):
    a constant prediction scores the full variance.
    """
    from google.protobuf import text_format

    data = generate(n, dim=dim, correlation=correlation, seed=seed)
    raw = spec_dict(dim, max_mse={t: 0.5 * float(np.var(data.y[t])) for t in TASKS})
    spec = DatasetSpec.from_dict(raw)
    splits_dir = os.path.join(out_dir, "splits")
    bounds = np.cumsum([0] + [int(round(f * n)) for f in SINGLE_FILE_FRACTIONS[:-1]] + [n])
    bounds[-1] = n
    for split, start, end in zip(SPLITS, bounds[:-1], bounds[1:]):
        os.makedirs(os.path.join(splits_dir, split), exist_ok=True)
        with open(os.path.join(splits_dir, split, "data.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(spec.column_names)
            for i in range(start, end):
                writer.writerow([f"{v:.6g}" for v in data.x[i]] + [f"{data.y[t][i]:.6g}" for t in TASKS])
    spec_path = os.path.join(out_dir, "spec.yaml")
    with open(spec_path, "w") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    schema_path = os.path.join(out_dir, SCHEMA_FILE)
    with open(schema_path, "w") as f:
        f.write(text_format.MessageToString(schema_for(spec)))
    return splits_dir, spec_path, schema_path
