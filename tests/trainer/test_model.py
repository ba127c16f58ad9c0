import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.spec import DatasetSpec
from trainer.config import TrainerConfig, Variant
from trainer.model import GATED_LAYER, SHARED, build_model, tower_name

SPEC = DatasetSpec.from_dict({
    "name": "toy",
    "columns": [
        {"name": "x1", "kind": "numeric"},
        {"name": "x2", "kind": "numeric"},
        {"name": "color", "kind": "categorical"},
        {"name": "a", "kind": "categorical"},
        {"name": "b", "kind": "categorical"},
    ],
    "tasks": [
        {"name": "task_a", "label_column": "a", "positive_values": ["1"], "learning_rate": 0.1},
        {"name": "task_b", "label_column": "b", "positive_values": ["1"], "learning_rate": 0.01, "loss_weight": 2.0},
    ],
})
VOCAB = {"color": 3}


def _batch(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "x1_xf": rng.normal(size=(n, 1)).astype("float32"),
        "x2_xf": rng.normal(size=(n, 1)).astype("float32"),
        "color_xf": rng.integers(0, 4, size=(n, 1)),
    }
    y = {
        "task_a": (x["x1_xf"] > 0).astype("float32"),
        "task_b": (x["x2_xf"] > 0).astype("float32"),
    }
    return tf.nest.map_structure(tf.constant, x), tf.nest.map_structure(tf.constant, y)


@pytest.mark.parametrize("variant", list(Variant))
def test_every_variant_returns_one_probability_per_task(variant):
    model = build_model(SPEC, TrainerConfig(variant=variant, num_experts=3, expert_units=4), VOCAB)
    x, _ = _batch()
    out = model(x)
    assert sorted(out) == ["task_a", "task_b"]
    for value in out.values():
        assert value.shape == (32, 1)
        assert ((value.numpy() > 0) & (value.numpy() < 1)).all()


def test_variable_groups_are_disjoint_and_cover_the_model():
    model = build_model(SPEC, TrainerConfig(num_experts=3, expert_units=4), VOCAB)
    groups = model.variable_groups()
    assert set(groups) == {SHARED, "task_a", "task_b"}
    refs = [v.ref() for vs in groups.values() for v in vs]
    assert len(refs) == len(set(refs)) == len(model.trainable_variables)
    tower_a = {v.ref() for v in model.get_layer(tower_name("task_a")).trainable_variables}
    assert tower_a <= {v.ref() for v in groups["task_a"]}
    assert any(GATED_LAYER in v.name for v in groups[SHARED])


def test_each_group_moves_by_its_own_learning_rate_times_its_gradient():
    config = TrainerConfig(num_experts=3, expert_units=4, optimizer="sgd", shared_learning_rate=0.5)
    model = build_model(SPEC, config, VOCAB)
    x, y = _batch()
    model(x)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x, training=True))
    grads = {v.ref(): g for v, g in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables))}
    before = {v.ref(): v.numpy().copy() for v in model.trainable_variables}
    model.train_on_batch(x, y)
    rates = {SHARED: 0.5, "task_a": 0.1, "task_b": 0.01}
    for group, variables in model.variable_groups().items():
        for v in variables:
            g = grads[v.ref()]
            if isinstance(g, tf.IndexedSlices):
                g = tf.convert_to_tensor(g)
            np.testing.assert_allclose(v.numpy(), before[v.ref()] - rates[group] * g.numpy(), rtol=1e-4, atol=1e-6)


def test_loss_weights_come_from_the_spec():
    model = build_model(SPEC, TrainerConfig(num_experts=2, expert_units=2), VOCAB)
    x, y = _batch()
    pred = model(x)
    bce = keras.losses.BinaryCrossentropy()
    expected = bce(y["task_a"], pred["task_a"]) + 2.0 * bce(y["task_b"], pred["task_b"])
    np.testing.assert_allclose(model.compute_loss(x, y, pred).numpy(), expected.numpy(), rtol=1e-5)


def test_trainer_config_errors():
    with pytest.raises(ValueError, match=r"variant: received 'moe', expected one of \['mmoe'"):
        TrainerConfig(variant="moe")
    with pytest.raises(ValueError, match=r"num_experts: received 0, expected a positive integer"):
        TrainerConfig(num_experts=0)
    with pytest.raises(ValueError, match=r"unknown keys \['experts'\]"):
        TrainerConfig.from_dict({"experts": 3})


def test_config_round_trip():
    config = TrainerConfig(variant="omoe", tower_units=(4, 2), optimizer="sgd")
    assert TrainerConfig.from_dict(config.to_dict()) == config
    assert dataclasses.asdict(config)["tower_units"] == (4, 2)


def test_ple_with_two_levels_builds_and_reports_gates():
    from trainer.model import gate_model

    config = TrainerConfig(variant="ple", ple_levels=2, num_experts=2, task_experts=1, expert_units=4)
    model = build_model(SPEC, config, VOCAB)
    x, _ = _batch()
    assert sorted(model(x)) == ["task_a", "task_b"]
    gates = gate_model(model, SPEC, config.variant)(x)
    for g in gates.values():
        assert g.shape == (32, 1 + 2)
        np.testing.assert_allclose(g.numpy().sum(-1), np.ones(32), rtol=1e-6)


def test_gate_statistics_average_over_the_dataset():
    from trainer.model import gate_statistics

    model = build_model(SPEC, TrainerConfig(num_experts=3, expert_units=4), VOCAB)
    x, y = _batch(40)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    stats = gate_statistics(model, SPEC, "mmoe", dataset, steps=10)
    assert stats["examples"] == 40
    for s in stats["tasks"].values():
        assert len(s["mean_gate_weight"]) == 3
        assert sum(s["mean_gate_weight"]) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= s["mean_entropy"] <= np.log(3) + 1e-6
    shared_bottom = build_model(SPEC, TrainerConfig(variant="shared_bottom"), VOCAB)
    assert gate_statistics(shared_bottom, SPEC, "shared_bottom", dataset, steps=1) is None
    # A gated variant whose gated layer cannot be found is an error, not a silent None.
    with pytest.raises(ValueError, match=r"gate statistics: the mmoe model .* has no layer 'gated_experts'"):
        gate_statistics(shared_bottom, SPEC, "mmoe", dataset, steps=1)


def test_a_task_without_its_tower_is_an_error_not_a_shared_variable():
    model = build_model(SPEC, TrainerConfig(num_experts=2, expert_units=2), VOCAB)
    # A model that does not name a task's tower after the task (hand-built, or renamed).
    model.task_optimizers["task_c"] = model.task_optimizers["task_a"]
    with pytest.raises(ValueError, match=r"task 'task_c' has no layer 'tower_task_c'; layers are \["):
        model.variable_groups()


def test_estimate_as_feature_does_not_train_the_producer_through_the_consumer():
    config = TrainerConfig(num_experts=2, expert_units=4, prediction_inputs={"task_b": "task_a"})
    model = build_model(SPEC, config, VOCAB)
    x, y = _batch()
    producer = model.get_layer(tower_name("task_a")).trainable_variables + model.get_layer("task_a").trainable_variables
    with tf.GradientTape() as tape:
        pred = model(x, training=True)
        consumer_loss = keras.losses.BinaryCrossentropy()(y["task_b"], pred["task_b"])
    grads = tape.gradient(consumer_loss, producer)
    assert all(g is None or np.allclose(g.numpy(), 0.0) for g in grads)
    # ...while the consumer does read the producer's estimate: its tower input is wider by one.
    consumer_kernel = model.get_layer(tower_name("task_b")).hidden[0].kernel
    assert consumer_kernel.shape[0] == 4 + 1


@pytest.mark.parametrize(
    "pairs, message",
    [
        ({"task_b": "task_c"}, r"producer task 'task_c' is not in spec 'toy'"),
        ({"task_a": "task_b", "task_b": "task_a"}, r"has a cycle through"),
    ],
)
def test_prediction_input_errors(pairs, message):
    with pytest.raises(ValueError, match=message):
        build_model(SPEC, TrainerConfig(prediction_inputs=pairs), VOCAB)


def test_uncertainty_weighted_training_learns_log_variances():
    config = TrainerConfig(num_experts=2, expert_units=4, loss_weighting="uncertainty", shared_learning_rate=0.05)
    model = build_model(SPEC, config, VOCAB)
    x, y = _batch()
    before = model.uncertainty.weights_by_task()
    assert before == {"task_a": 1.0, "task_b": 1.0}
    pred = model(x)
    bce = keras.losses.BinaryCrossentropy()
    np.testing.assert_allclose(
        model.compute_loss(x, y, pred).numpy(),
        (bce(y["task_a"], pred["task_a"]) + bce(y["task_b"], pred["task_b"])).numpy(),
        rtol=1e-5,
    )
    # d/ds [exp(-s) L + s/2] = -exp(-s) L + 1/2 at s = 0: negative where the task's loss L exceeds 1/2, so
    # Adam's first step (the shared rate times the gradient's sign) raises s to 0.05 and the weight to exp(-0.05).
    losses = {t: float(bce(y[t], pred[t])) for t in ("task_a", "task_b")}
    assert min(losses.values()) > 0.5, losses
    model.train_on_batch(x, y)
    assert model.uncertainty.weights_by_task() == pytest.approx({"task_a": np.exp(-0.05), "task_b": np.exp(-0.05)},
                                                                rel=1e-4)


def test_save_and_load_give_the_same_predictions(tmp_path):
    model = build_model(SPEC, TrainerConfig(variant="ple", num_experts=2, task_experts=1, expert_units=4), VOCAB)
    x, y = _batch()
    model.train_on_batch(x, y)
    model.save(str(tmp_path / "m"), save_format="tf")
    loaded = keras.models.load_model(str(tmp_path / "m"), compile=False)
    for task, value in model(x).items():
        np.testing.assert_allclose(loaded(x)[task].numpy(), value.numpy(), rtol=1e-6)



def test_uncertainty_weighting_of_a_binary_and_a_regression_task_in_one_model():
    spec = DatasetSpec.from_dict({
        "name": "mixed",
        "columns": [{"name": "x1", "kind": "numeric"}, {"name": "x2", "kind": "numeric"},
                    {"name": "color", "kind": "categorical"}, {"name": "a", "kind": "categorical"},
                    {"name": "b", "kind": "numeric"}],
        "tasks": [{"name": "task_a", "label_column": "a", "positive_values": ["1"]},
                  {"name": "task_b", "label_column": "b", "type": "regression"}],
    })
    config = TrainerConfig(num_experts=2, expert_units=4, loss_weighting="uncertainty", shared_learning_rate=0.05)
    model = build_model(spec, config, VOCAB)
    x, y = _batch()
    y = dict(y, task_b=3.0 * x["x2_xf"] + 1.0)  # a real-valued target
    model.uncertainty.log_vars["task_a"].assign(0.3)
    model.uncertainty.log_vars["task_b"].assign(-0.2)
    pred = model(x)
    bce = keras.losses.BinaryCrossentropy()(y["task_a"], pred["task_a"]).numpy()
    mse = keras.losses.MeanSquaredError()(y["task_b"], pred["task_b"]).numpy()
    # Kendall et al.: exp(-s) L + s/2 (classification), exp(-s) L / 2 + s/2 (regression).
    expected = np.exp(-0.3) * bce + 0.15 + 0.5 * np.exp(0.2) * mse - 0.1
    np.testing.assert_allclose(model.compute_loss(x, y, pred).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert model.uncertainty.weights_by_task() == pytest.approx({"task_a": np.exp(-0.3), "task_b": 0.5 * np.exp(0.2)})
    # One Adam step moves each log variance by about the shared rate (less a little for a tiny gradient:
    # Adam's epsilon) against its gradient's sign:
    # classification -exp(-s) L + 1/2, regression -exp(-s) L / 2 + 1/2 (by hand, at the values above).
    step = 0.05
    grad_a, grad_b = -np.exp(-0.3) * bce + 0.5, -0.5 * np.exp(0.2) * mse + 0.5
    model.train_on_batch(x, y)
    assert float(model.uncertainty.log_vars["task_a"].numpy()) == pytest.approx(0.3 - step * np.sign(grad_a), abs=1e-3)
    assert float(model.uncertainty.log_vars["task_b"].numpy()) == pytest.approx(-0.2 - step * np.sign(grad_b), abs=1e-3)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_reported_loss_is_the_uncertainty_weighted_loss_that_is_optimised(weighted):
    config = TrainerConfig(num_experts=2, expert_units=4, loss_weighting="uncertainty", shared_learning_rate=0.05)
    model = build_model(SPEC, config, VOCAB)
    x, y = _batch()
    model.uncertainty.log_vars["task_a"].assign(1.5)
    model.uncertainty.log_vars["task_b"].assign(1.0)
    weights = tf.constant(np.linspace(0.0, 2.0, 32, dtype="float32")) if weighted else None
    pred = model(x)
    bce = keras.losses.BinaryCrossentropy()
    # Kendall et al. for two classification tasks: exp(-s) L + s/2, L the (weighted) batch mean.
    expected = sum(np.exp(-s) * bce(y[t], pred[t], sample_weight=weights).numpy() + s / 2
                   for t, s in (("task_a", 1.5), ("task_b", 1.0)))
    fixed = sum(bce(y[t], pred[t], sample_weight=weights).numpy() for t in ("task_a", "task_b"))
    assert abs(expected - fixed) > 0.05  # the two totals differ enough to tell them apart
    logged = model.evaluate(x, y, sample_weight=weights, batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logged["loss"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.compute_loss(x, y, pred, weights).numpy(), expected, rtol=1e-5, atol=1e-6)
    trained = model.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    np.testing.assert_allclose(trained["loss"], expected, rtol=1e-5, atol=1e-6)  # before the step's update


def test_a_bucketed_numeric_feature_is_embedded_beside_its_z_score():
    """x1 with 5 buckets: an input `x1_bucket_xf` and a 5 x embedding_dim table whose row is the bucket id's;
    two rows that differ only in their bucket get different outputs."""
    from trainer.model import bucket_embedding_layer_name

    columns = [dict(c, buckets=5) if c["name"] == "x1" else c for c in SPEC.to_dict()["columns"]]
    spec = DatasetSpec.from_dict({**SPEC.to_dict(), "columns": columns})
    model = build_model(spec, TrainerConfig(num_experts=2, expert_units=4, embedding_dim=3), VOCAB)
    table = model.get_layer(bucket_embedding_layer_name(spec.features[0]))
    assert table.get_weights()[0].shape == (5, 3)
    assert sorted(model.input) == ["color_xf", "x1_bucket_xf", "x1_xf", "x2_xf"]
    x, _ = _batch(n=2)
    x = dict(x, x1_xf=tf.zeros([2, 1]), x2_xf=tf.zeros([2, 1]), color_xf=tf.zeros([2, 1], tf.int64),
             x1_bucket_xf=tf.constant([[0], [4]], tf.int64))
    out = model(x)["task_a"].numpy().ravel()
    assert abs(out[0] - out[1]) > 1e-6


def test_bottom_units_set_the_shared_bottom_width_apart_from_the_experts():
    """The paper's synthetic setting (section 5.1): a 113-unit shared bottom on 100 inputs holds
    100 x 113 + 113 = 11,413 weights, whatever `expert_units`; 0 falls back to `expert_units`."""
    spec = DatasetSpec.from_dict({"name": "wide", "columns": [{"name": f"x{i}", "kind": "numeric"} for i in range(100)]
                                  + [{"name": "y", "kind": "numeric"}],
                                  "tasks": [{"name": "t", "label_column": "y", "type": "regression"}]})
    wide = build_model(spec, TrainerConfig(variant="shared_bottom", expert_units=16, bottom_units=113), {})
    assert wide.get_layer("shared_bottom").count_params() == 11_413
    narrow = build_model(spec, TrainerConfig(variant="shared_bottom", expert_units=16), {})
    assert narrow.get_layer("shared_bottom").count_params() == 100 * 16 + 16
    with pytest.raises(ValueError, match=r"TrainerConfig.bottom_units: received -1, expected an integer >= 0"):
        TrainerConfig(bottom_units=-1)
