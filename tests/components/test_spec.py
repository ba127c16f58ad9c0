import pytest

import schemas
from components.spec import ColumnKind, DatasetSpec, SpecError, TaskType, load_spec


def _raw(**overrides):
    raw = {
        "name": "toy",
        "columns": [
            {"name": "age", "kind": "numeric"},
            {"name": "color", "kind": "categorical"},
            {"name": "weight", "kind": "ignore"},
            {"name": "label", "kind": "categorical"},
        ],
        "tasks": [{"name": "clicked", "label_column": "label", "positive_values": ["yes"]}],
        "slices": ["color"],
    }
    raw.update(overrides)
    return raw


def test_census_group1_features_exclude_labels_and_instance_weight(census_spec):
    assert len(census_spec.columns) == 42
    features = {c.name for c in census_spec.features}
    # 42 columns - instance weight - income label - marital status label.
    assert len(features) == 39
    assert {"instance_weight", "income", "marital_stat"}.isdisjoint(features)
    assert census_spec.label_columns == ("income", "marital_stat")
    numeric = [c.name for c in census_spec.features if c.kind is ColumnKind.NUMERIC]
    assert numeric == [
        "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
        "num_persons_worked_for_employer", "weeks_worked_in_year",
    ]


def test_census_group2_uses_education_as_label_not_feature():
    spec = load_spec(schemas.path("census", "group2.yaml"))
    assert spec.output_names == ("college", "never_married")
    assert "education" not in {c.name for c in spec.features}
    assert "income" in {c.name for c in spec.features}
    college = spec.task("college")
    assert len(college.positive_values) == 7
    assert "High school graduate" not in college.positive_values


def test_names_derive_from_spec():
    spec = DatasetSpec.from_dict(_raw())
    task = spec.tasks[0]
    assert (task.label_key, task.output_name) == ("clicked_label", "clicked")
    assert [c.transformed_name for c in spec.features] == ["age_xf", "color_xf"]
    assert spec.features[1].vocabulary_name == "color_vocab"
    assert task.type is TaskType.BINARY and task.learning_rate == pytest.approx(1e-3)


def test_round_trip_through_dict():
    spec = DatasetSpec.from_dict(_raw())
    assert DatasetSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"tasks": [{"name": "clicked", "label_column": "nope", "positive_values": ["y"]}]},
         r"label_column: received 'nope', which is not a column"),
        ({"tasks": [{"name": "clicked", "label_column": "label"}]},
         r"a binary task needs positive_values"),
        ({"tasks": [{"name": "clicked", "label_column": "label", "positive_values": ["y"], "learning_rate": 0}]},
         r"learning_rate: received 0, expected a positive number"),
        ({"tasks": [{"name": "clicked", "label_column": "label", "type": "ranking"}]},
         r"type: received 'ranking', expected one of 'binary', 'regression'"),
        ({"slices": ["colour"]}, r"slices: received 'colour', which is not a column"),
        ({"columns": [{"name": "label", "kind": "categorical"}, {"name": "label", "kind": "numeric"}]},
         r"'label' appears twice"),
        ({"columns": [{"name": "age", "kind": "text"}]}, r"kind: received 'text'"),
        ({"colums": []}, r"unknown keys \['colums'\]"),
        ({"tasks": [{"name": "clicked", "label_column": "label", "positive_values": ["y"], "min_auc": 1.5}]},
         r"min_auc: received 1.5, expected a number in \[0, 1\]"),
        ({"tasks": [{"name": "clicked", "label_column": "label", "positive_values": ["y"], "max_mse": 2.0}]},
         r"task 'clicked' max_mse: not a field of a binary task, which takes positive_values: the raw label values "
         r"that mean 1; min_auc, max_auc_drop; remove it or change the task's type\."),
        ({"tasks": [{"name": "amount", "label_column": "age", "type": "regression", "min_auc": 0.7}]},
         r"task 'amount' min_auc: not a field of a regression task, which takes max_mse"),
        ({"tasks": [{"name": "amount", "label_column": "age", "type": "regression", "positive_values": ["1"]}]},
         r"task 'amount' positive_values: not a field of a regression task"),
        ({"tasks": [{"name": "clicked", "label_column": "label", "positive_values": ["y"], "classes": ["y", "n"]}]},
         r"task 'clicked' classes: not a field of a binary task, which takes positive_values"),
        ({"tasks": [{"name": "clicked", "label_column": "label", "positive_values": ["y", " "]}]},
         r"task 'clicked' positive_values: received \['y', ' '\]; an empty value would match every missing label"),
        ({"slices": [{"column": "color", "boundaries": [1, 2]}]}, r"boundaries need a numeric column"),
        ({"slices": [{"column": "age", "boundaries": [30, 20]}]},
         r"boundaries: received \[30, 20\], expected strictly increasing numbers"),
        ({"columns": [{"name": "age", "kind": "numeric"}, {"name": "color", "kind": "categorical"},
                      {"name": "label", "kind": "categorical", "missing": {"constant": "n"}}]},
         r"column 'label': declares missing: constant 'n', but it is the label of task 'clicked', and a label "
         r"is never imputed\. Remove its `missing:` line"),
        ({"columns": [{"name": "age", "kind": "numeric", "missing": "mean"}, {"name": "color", "kind": "categorical"},
                      {"name": "label", "kind": "categorical"}],
          "tasks": [{"name": "years", "label_column": "age", "type": "regression"}]},
         r"column 'age': declares missing: mean, but it is the label of task 'years'"),
    ],
)
def test_spec_errors_name_the_value(overrides, message):
    with pytest.raises(SpecError, match=message):
        DatasetSpec.from_dict(_raw(**overrides))


def test_age_bands_are_named_from_the_boundaries():
    spec = DatasetSpec.from_dict(_raw(slices=["color", {"column": "age", "boundaries": [25, 45, 65]}]))
    band = spec.slices[1]
    assert (band.key, band.band_labels) == ("age_band", ("<25", "25-44", "45-64", ">=65"))
    assert spec.slices[0].key == "color" and spec.slices[0].band_labels == ()


@pytest.mark.parametrize("boundaries, labels", [
    ([0.5, 1.0], ("<0.5", "0.5-<1", ">=1")),  # was '0.5-0'
    ([1, 2.5, 4], ("<1", "1-<2.5", "2.5-<4", ">=4")),
    ([18.0, 65.0], ("<18", "18-64", ">=65")),
])
def test_float_band_labels_name_their_interval(boundaries, labels):
    spec = DatasetSpec.from_dict(_raw(slices=[{"column": "age", "boundaries": boundaries}]))
    assert spec.slices[0].band_labels == labels


def test_no_features_left_is_an_error():
    raw = _raw(columns=[{"name": "label", "kind": "categorical"}, {"name": "w", "kind": "ignore"}], slices=[])
    with pytest.raises(SpecError, match="no features left"):
        DatasetSpec.from_dict(raw)


def test_missing_spec_file_says_so(tmp_path):
    with pytest.raises(SpecError, match=r"does not exist"):
        load_spec(str(tmp_path / "missing.yaml"))



def test_buckets_are_checked_and_kept_through_custom_config(census_spec):
    import dataclasses

    from components.spec import Column, DatasetSpec, SpecError

    with pytest.raises(SpecError, match=r"column 'c': buckets are quantile buckets of a numeric column; this "
                                        r"column is categorical"):
        Column("c", "categorical", buckets=8)
    with pytest.raises(SpecError, match=r"column 'age' buckets: received 1, expected an integer >= 2"):
        Column("age", "numeric", buckets=1)
    with pytest.raises(SpecError, match=r"feature keys .*'age_bucket_xf' appears twice"):
        DatasetSpec.from_dict({"name": "clash", "columns": [
            {"name": "age", "kind": "numeric", "buckets": 4}, {"name": "age_bucket", "kind": "numeric"},
            {"name": "y", "kind": "categorical"}], "tasks": [{"name": "t", "label_column": "y", "positive_values": ["1"]}]})
    columns = tuple(dataclasses.replace(c, buckets=16) if c.name == "age" else dataclasses.replace(c, buckets=None)
                    for c in census_spec.columns)
    again = DatasetSpec.from_dict(dataclasses.replace(census_spec, columns=columns).to_dict())
    assert [k for k in again.feature_keys if "bucket" in k] == ["age_bucket_xf"]
    assert next(c for c in again.columns if c.name == "age").buckets == 16


def test_vocabulary_bounds_are_checked_and_kept_through_custom_config(census_spec):
    import dataclasses

    from components.spec import Column, DatasetSpec, SpecError

    with pytest.raises(SpecError, match=r"column 'age': max_vocabulary and min_frequency bound a categorical "
                                        r"column's vocabulary; this column is numeric"):
        Column("age", "numeric", min_frequency=5)
    with pytest.raises(SpecError, match=r"column 'c' max_vocabulary: received 0, expected an integer >= 1 or "
                                        r"nothing"):
        Column("c", "categorical", max_vocabulary=0)
    with pytest.raises(SpecError, match=r"column 'c' min_frequency: received 'often', expected an integer >= 1"):
        Column("c", "categorical", min_frequency="often")
    columns = tuple(dataclasses.replace(c, max_vocabulary=20, min_frequency=3) if c.name == "education" else c
                    for c in census_spec.columns)
    bounded = dataclasses.replace(census_spec, columns=columns)
    again = DatasetSpec.from_dict(bounded.to_dict())
    education = next(c for c in again.columns if c.name == "education")
    assert (education.max_vocabulary, education.min_frequency) == (20, 3)
    assert "max_vocabulary" not in next(c for c in bounded.to_dict()["columns"] if c["name"] == "age")


def test_census_group2_education_has_a_multiclass_task_over_every_education_value():
    """The education_level task's classes are the curated schema's domain of the education column, each
    once: a value outside them would be label -1, which the loss rejects."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    spec = load_spec(schemas.path("census", "group2-education.yaml"))
    level = spec.task("education_level")
    assert level.type is TaskType.MULTICLASS and level.label_column == "education"
    assert spec.output_names == ("education_level", "never_married")
    assert "education" not in {c.name for c in spec.features}
    schema = io_utils.SchemaReader().read(schemas.path("census", "schema.pbtxt"))
    (domain,) = [d for d in schema.string_domain if d.name == "education"]
    assert isinstance(schema, schema_pb2.Schema) and len(level.classes) == 17
    assert sorted(level.classes) == sorted(domain.value)
