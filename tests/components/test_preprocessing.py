import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.names import TRANSFORM_TF_COMPAT_V1
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
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(), force_tf_compat_v1=TRANSFORM_TF_COMPAT_V1):
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


WORDS = [b"b", b"a", b"a", b"b", b"c", b"", b"x\ny", b"", b"d", b"c", b"a"]
CODES = [b"1", b"2", b"2", b"1", b"3", b"3", b"3", b"1", b"2", b"2", b"1"]


def _vocabularies(tmp_path, top_k=None, frequency_threshold=1) -> dict:
    """Vocabulary files, ids of the analysed rows and of unseen ones, from `Vocabularies` ("ours") and
    from TFT's `compute_and_apply_vocabulary` with the same `top_k` and `frequency_threshold`."""
    from components.preprocessing import PLACEHOLDER_VOCABULARY, Vocabularies

    spec = tf.io.FixedLenFeature([1], tf.string)
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({"w": spec, "k": spec}))
    rows = [{"w": [w], "k": [k]} for w, k in zip(WORDS, CODES)]

    def ours(inputs):
        paths = tft.experimental.ptransform_analyzer(
            [inputs["w"], inputs["k"]], Vocabularies(["w_vocab", "k_vocab"], [(top_k, frequency_threshold)] * 2),
            [tf.string] * 2, [[]] * 2, output_asset_default_values=[PLACEHOLDER_VOCABULARY] * 2)
        return {n: tft.apply_vocabulary(inputs[n], p, num_oov_buckets=2) for n, p in zip("wk", paths)}

    def tfts(inputs):
        return {n: tft.compute_and_apply_vocabulary(inputs[n], num_oov_buckets=2, vocab_filename=f"{n}_vocab",
                                                    top_k=top_k, frequency_threshold=frequency_threshold)
                for n in "wk"}

    results = {}
    for name, fn in (("ours", ours), ("tft", tfts)):
        out = str(tmp_path / name)
        with tft_beam.Context(temp_dir=str(tmp_path / f"tmp-{name}"), force_tf_compat_v1=TRANSFORM_TF_COMPAT_V1):
            (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
            _ = transform_fn | tft_beam.WriteTransformFn(out)
        output = tft.TFTransformOutput(out)
        unseen = output.transform_features_layer()({  # as the exported model applies it
            "w": tf.constant([[b"zz"], [b""], [b"a"]]), "k": tf.constant([[b"9"], [b"1"], [b"3"]])})
        results[name] = {
            "files": [output.vocabulary_by_name(f"{n}_vocab") for n in "wk"],
            "ids": [[int(np.ravel(r[n])[0]) for r in data] for n in "wk"],
            "unseen": [unseen[n].numpy().ravel().tolist() for n in "wk"],
        }
    return results


def test_one_pass_vocabularies_give_tfts_files_and_ids(tmp_path):
    """`Vocabularies` (every column in one Beam pass) against TFT's `compute_and_apply_vocabulary`:
    the same file, line for line (count then token descending; no empty or line-break token), and
    the same ids (OOV buckets included) on the analysed rows and on unseen ones."""
    from components.preprocessing import vocabulary_order

    assert vocabulary_order({b"b": 2, b"a": 2, b"c": 5, b"": 9, b"x\ny": 7, b"d": 1}) == [b"c", b"b", b"a", b"d"]
    results = _vocabularies(tmp_path)
    assert results["ours"] == results["tft"]
    assert results["ours"]["files"][0] == [b"a", b"c", b"b", b"d"]  # a: 3; c, b: 2 (c > b); d: 1
    assert results["ours"]["ids"][0][:3] == [2, 0, 0] and min(results["ours"]["ids"][0][5:8]) >= 4  # '', 'x\ny': OOV


def test_bounded_vocabularies_keep_what_tfts_top_k_and_frequency_threshold_keep(tmp_path):
    """max_vocabulary and min_frequency as TFT's top_k and frequency_threshold: w counts a: 3, b: 2, c: 2,
    d: 1; at least 2 and the top 2 keep a and c (c > b on a tie); b and d go to the OOV buckets."""
    results = _vocabularies(tmp_path, top_k=2, frequency_threshold=2)
    assert results["ours"] == results["tft"]
    assert results["ours"]["files"] == [[b"a", b"c"], [b"2", b"1"]]  # k: 1 and 2 four times each (2 > 1), 3 three
    w = results["ours"]["ids"][0]
    assert w[1:3] == [0, 0] and w[4] == 1 and w[0] == w[3] in (2, 3)  # a, c in the vocabulary; b in an OOV bucket


def test_quantile_buckets_split_the_train_values_evenly_and_serve_unseen_values(tmp_path):
    """`buckets: 4` on 1..100: boundaries near the quartiles (TFT's sketch at epsilon 0.001 is exact on
    100 values to within a rank), so the ids rise with the value and each bucket holds 25 rows (+-1); the
    z-score beside them is unchanged; unseen values below and above the range serve as buckets 0 and 3,
    a missing one as the mean's (50.5: bucket 1, which holds 26-50)."""
    spec = DatasetSpec.from_dict({
        "name": "bucketed",
        "columns": [{"name": "age", "kind": "numeric", "buckets": 4}, {"name": "y", "kind": "categorical"}],
        "tasks": [{"name": "t", "label_column": "y", "positive_values": ["1"]}],
    })
    feature_spec = {"age": tf.io.VarLenFeature(tf.float32), "y": tf.io.FixedLenFeature([1], tf.string)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
    rows = [{"age": [float(a)], "y": [b"1" if a % 2 else b"0"]} for a in range(1, 101)]
    out = str(tmp_path / "out")
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), force_tf_compat_v1=TRANSFORM_TF_COMPAT_V1):
        (data, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"spec": spec.to_dict()}))
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    column = spec.features[0]
    assert column.bucket_name == "age_bucket_xf" and spec.feature_keys == ("age_xf", "age_bucket_xf")
    ids = [int(np.ravel(r[column.bucket_name])[0]) for r in data]
    assert ids == sorted(ids) and set(ids) == {0, 1, 2, 3}
    assert all(abs(ids.count(b) - 25) <= 1 for b in range(4)), [ids.count(b) for b in range(4)]
    z = np.array([float(np.ravel(r["age_xf"])[0]) for r in data])
    np.testing.assert_allclose(z, (np.arange(1, 101) - 50.5) / np.arange(1, 101).std(), rtol=1e-5)
    layer = tft.TFTransformOutput(out).transform_features_layer()
    served = layer({"age": tf.sparse.from_dense(tf.constant([[-5.0], [1000.0], [0.0]])),
                    "y": tf.constant([[b"1"], [b"1"], [b"1"]])})
    assert np.ravel(served["age_bucket_xf"]).tolist()[:2] == [0, 3]
    missing = layer({"age": tf.sparse.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0]), [1, 1]),
                     "y": tf.constant([[b"1"]])})
    assert np.ravel(missing["age_bucket_xf"]).tolist() == [1]
    assert ids[25:50] == [1] * 25  # 26..50
