import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.preprocessing import preprocessing_fn, spec_from_custom_config
from components.spec import DatasetSpec

SPEC = DatasetSpec.from_dict({
    "name": "tiny",
    "columns": [
        {"name": "age", "kind": "numeric"},
        {"name": "code", "kind": "categorical", "num_oov_buckets": 2},
        {"name": "job", "kind": "categorical"},
        {"name": "weight", "kind": "ignore"},
        {"name": "income", "kind": "categorical"},
        {"name": "marital", "kind": "categorical"},
    ],
    "tasks": [
        {"name": "rich", "label_column": "income", "positive_values": ["50000+"]},
        {"name": "single", "label_column": "marital", "positive_values": ["Never married", "Divorced"]},
    ],
    "slices": ["job", {"column": "age", "boundaries": [15, 35]}],
})

RAW = [
    {"age": 10, "code": 7, "job": b"a", "weight": 1.5, "income": b"- 50000", "marital": b"Never married"},
    {"age": 20, "code": 7, "job": b"b", "weight": 2.5, "income": b"50000+", "marital": b"Widowed"},
    {"age": 30, "code": 3, "job": b"a", "weight": 3.5, "income": b"- 50000", "marital": b"Divorced"},
    {"age": 40, "code": 7, "job": b"a", "weight": 4.5, "income": b"50000+", "marital": b"Married"},
]
FEATURE_SPEC = {
    "age": tf.io.FixedLenFeature([1], tf.int64),
    "code": tf.io.FixedLenFeature([1], tf.int64),
    "job": tf.io.FixedLenFeature([1], tf.string),
    "weight": tf.io.FixedLenFeature([1], tf.float32),
    "income": tf.io.FixedLenFeature([1], tf.string),
    "marital": tf.io.FixedLenFeature([1], tf.string),
}


@pytest.fixture(scope="module")
def transformed():
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(FEATURE_SPEC))
    rows = [{k: [v] for k, v in row.items()} for row in RAW]
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(), force_tf_compat_v1=False):
        (data, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"spec": SPEC.to_dict()})
        )
    return data


def test_numeric_is_z_scored(transformed):
    ages = np.array([10, 20, 30, 40], dtype=np.float32)
    expected = (ages - 25.0) / np.sqrt(125.0)  # population variance of 10..40 is 125
    got = np.array([row["age_xf"] for row in transformed]).ravel()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_categoricals_get_vocabulary_ids_by_frequency(transformed):
    # 'a' is most frequent (3 of 4) -> id 0; 'b' -> 1. Integer codes are vocabularised as strings.
    assert [int(np.ravel(row["job_xf"])[0]) for row in transformed] == [0, 1, 0, 0]
    assert [int(np.ravel(row["code_xf"])[0]) for row in transformed] == [0, 0, 1, 0]


def test_labels_are_zero_one_from_positive_values(transformed):
    assert [float(np.ravel(row["rich_label"])[0]) for row in transformed] == [0.0, 1.0, 0.0, 1.0]
    assert [float(np.ravel(row["single_label"])[0]) for row in transformed] == [1.0, 0.0, 1.0, 0.0]


def test_age_bands_for_slicing(transformed):
    assert [np.ravel(row["age_band"])[0] for row in transformed] == [b"<15", b"15-34", b"15-34", b">=35"]


def test_labels_and_ignored_columns_are_not_features(transformed):
    # Slices on raw columns ('job') need no output; banded slices add one for TFMA.
    assert set(transformed[0]) == {"age_xf", "code_xf", "job_xf", "age_band", "rich_label", "single_label"}


def test_missing_spec_in_custom_config_says_how_to_fix():
    with pytest.raises(ValueError, match=r"Transform: custom_config has no 'spec' entry.*create_pipeline"):
        spec_from_custom_config({"other": 1}, "Transform")
