"""Missing values through tf.Transform: each policy fills what the spec says, inside the graph.

One Transform run over one numeric column per policy (the same values, one of them missing).
"""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.names import TRANSFORM_TF_COMPAT_V1
from components.preprocessing import preprocessing_fn
from components.spec import DatasetSpec

AGES = [10, None, 30, 40, 60]  # present: mean 35, median 30 or 40 (an element of the data)
POLICIES = {"age_default": None, "age_mean": "mean", "age_median": "median", "age_constant": {"constant": -5}}

SPEC = DatasetSpec.from_dict({
    "name": "tiny",
    "columns": [
        *({"name": name, "kind": "numeric", **({"missing": policy} if policy is not None else {})}
          for name, policy in POLICIES.items()),
        {"name": "job", "kind": "categorical", "missing": {"constant": "unknown"}},
        {"name": "income", "kind": "categorical"},
    ],
    "tasks": [{"name": "rich", "label_column": "income", "positive_values": ["50000+"]}],
    "slices": [{"column": "age_mean", "boundaries": [35]}],
})

FEATURE_SPEC = {  # what the derived schema gives Transform: variable-length columns
    **{name: tf.io.VarLenFeature(tf.int64) for name in POLICIES},
    "job": tf.io.VarLenFeature(tf.string),
    "income": tf.io.VarLenFeature(tf.string),
}


@pytest.fixture(scope="module")
def transformed():
    rows = [{**{name: [] if a is None else [a] for name in POLICIES},
             "job": [b"a"] if a != 30 else [], "income": [b"50000+"]} for a in AGES]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(FEATURE_SPEC))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(), force_tf_compat_v1=TRANSFORM_TF_COMPAT_V1):
        (data, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"spec": SPEC.to_dict()})
        )
    return data


PRESENT = np.array([a for a in AGES if a is not None], dtype=np.float64)  # mean 35, std 18.03


def _z(fill):
    """Each row filled, then z-scored with the mean and standard deviation of the values present."""
    values = np.array([fill if a is None else a for a in AGES], dtype=np.float64)
    return (values - PRESENT.mean()) / PRESENT.std()


def _column(data, name):
    return np.array([np.ravel(row[name + "_xf"])[0] for row in data])


@pytest.mark.parametrize("name, fill", [("age_default", 35.0), ("age_mean", 35.0), ("age_constant", -5.0)])
def test_missing_numeric_is_filled_then_z_scored_with_the_present_values_statistics(transformed, name, fill):
    got = _column(transformed, name)
    np.testing.assert_allclose(got, _z(fill), rtol=1e-4, atol=1e-5)
    # by hand: std of [10, 30, 40, 60] is sqrt(325) = 18.028; the mean fill's z-score is 0
    assert got[0] == pytest.approx((10 - 35) / 325 ** 0.5, abs=1e-5)
    assert got[1] == pytest.approx((fill - 35) / 325 ** 0.5, abs=1e-5)


def test_missing_numeric_median_is_a_train_statistic(transformed):
    got = _column(transformed, "age_median")
    # TFT's approximate median of [10, 30, 40, 60] is one of the two middle elements.
    candidates = [_z(fill) for fill in (30.0, 40.0)]
    assert any(np.allclose(got, c, atol=1e-4) for c in candidates), got


def test_missing_categorical_gets_the_declared_token_and_slice_bands_use_the_fill(transformed):
    # the vocabulary is ordered by frequency: 'a' (4 rows) -> 0, the fill 'unknown' (1 row) -> 1
    assert [int(np.ravel(r["job_xf"])[0]) for r in transformed] == [0, 0, 1, 0, 0]
    # age band of the missing row: the mean 35 falls in '>=35'
    assert [np.ravel(r["age_mean_band"])[0] for r in transformed] == [b"<35", b">=35", b"<35", b">=35", b">=35"]
