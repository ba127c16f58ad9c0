"""Missing values through tf.Transform: each policy fills what the spec says, inside the graph."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.preprocessing import preprocessing_fn
from components.spec import DatasetSpec

AGES = [10, None, 30, 40, 60]  # present: mean 35, median 30 or 40 (an element of the data)


def _spec(policy):
    return DatasetSpec.from_dict({
        "name": "tiny",
        "columns": [
            {"name": "age", "kind": "numeric", **({"missing": policy} if policy is not None else {})},
            {"name": "job", "kind": "categorical", "missing": {"constant": "unknown"}},
            {"name": "income", "kind": "categorical"},
        ],
        "tasks": [{"name": "rich", "label_column": "income", "positive_values": ["50000+"]}],
        "slices": [{"column": "age", "boundaries": [35]}],
    })


FEATURE_SPEC = {  # what the derived schema gives Transform: variable-length columns
    "age": tf.io.VarLenFeature(tf.int64),
    "job": tf.io.VarLenFeature(tf.string),
    "income": tf.io.VarLenFeature(tf.string),
}


def _transform(spec):
    rows = [{"age": [] if a is None else [a], "job": [b"a"] if a != 30 else [], "income": [b"50000+"]}
            for a in AGES]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(FEATURE_SPEC))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(), force_tf_compat_v1=False):
        (data, _), output = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"spec": spec.to_dict()})
        )
    return data, output


def _z_of_missing(data):
    return float(np.ravel(data[1]["age_xf"])[0]), np.array([np.ravel(r["age_xf"])[0] for r in data])


@pytest.mark.parametrize("policy, fill", [(None, 35.0), ("mean", 35.0), ({"constant": -5}, -5.0)])
def test_missing_numeric_is_filled_before_z_scoring(policy, fill):
    data, _ = _transform(_spec(policy))
    filled = np.array([fill if a is None else a for a in AGES], dtype=np.float64)
    expected = (filled - filled.mean()) / filled.std()
    np.testing.assert_allclose(_z_of_missing(data)[1], expected, rtol=1e-4, atol=1e-5)


def test_missing_numeric_median_is_a_train_statistic():
    data, _ = _transform(_spec("median"))
    got = _z_of_missing(data)[1]
    # TFT's approximate median of [10, 30, 40, 60] is one of the two middle elements.
    candidates = []
    for fill in (30.0, 40.0):
        filled = np.array([fill if a is None else a for a in AGES])
        candidates.append((filled - filled.mean()) / filled.std())
    assert any(np.allclose(got, c, atol=1e-4) for c in candidates), got


def test_missing_categorical_gets_the_declared_token_and_slice_bands_use_the_fill():
    data, _ = _transform(_spec("mean"))
    # the vocabulary is ordered by frequency: 'a' (4 rows) -> 0, the fill 'unknown' (1 row) -> 1
    assert [int(np.ravel(r["job_xf"])[0]) for r in data] == [0, 0, 1, 0, 0]
    # age band of the missing row: the mean 35 falls in '>=35'
    assert [np.ravel(r["age_band"])[0] for r in data] == [b"<35", b">=35", b"<35", b">=35", b">=35"]
