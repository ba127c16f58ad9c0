import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer import layers


def test_experts_forward_matches_hand_computation():
    experts = layers.Experts(num_experts=2, units=1, activation="relu")
    experts.build((None, 2))
    # expert 0 reads x0, expert 1 reads x1; biases 0.5 and -1.
    experts.set_weights([np.array([[[1.0], [0.0]], [[0.0], [1.0]]]), np.array([[0.5], [-1.0]])])
    out = experts(tf.constant([[1.0, 2.0], [3.0, 0.5]])).numpy()
    # row 0: relu(1 + .5)=1.5, relu(2 - 1)=1 ; row 1: relu(3 + .5)=3.5, relu(.5 - 1)=0
    np.testing.assert_allclose(out[..., 0], [[1.5, 1.0], [3.5, 0.0]])
    assert out.shape == (2, 2, 1)


def test_experts_are_initialised_independently():
    experts = layers.Experts(num_experts=4, units=3, kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    experts.build((None, 5))
    kernel = experts.kernel.numpy()
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernel[i], kernel[j])
    # Glorot bounds of one [5, 3] expert: sqrt(6 / (5 + 3)) = 0.866.
    assert np.abs(kernel).max() <= np.sqrt(6 / 8) + 1e-6


def test_gate_is_a_softmax_over_experts():
    gate = layers.Gate(num_experts=3)
    x = tf.random.stateless_normal([16, 4], seed=[1, 2])
    weights = gate(x).numpy()
    np.testing.assert_allclose(weights.sum(axis=-1), np.ones(16), rtol=1e-6)
    assert (weights > 0).all()
    gate.set_weights([np.zeros((4, 3))])
    np.testing.assert_allclose(gate(x).numpy(), np.full((16, 3), 1 / 3), rtol=1e-6)


def test_mmoe_mixes_experts_with_each_task_gate():
    mmoe = layers.MMoE(num_experts=2, expert_units=1, num_gates=2, expert_activation="linear")
    x = tf.constant([[1.0, 2.0]])
    mmoe(x)
    mmoe.experts.set_weights([np.array([[[1.0], [0.0]], [[0.0], [1.0]]]), np.zeros((2, 1))])
    # gate 0: logits (0, 0) -> (.5, .5); gate 1: logits (0, ln 3 * x1/2)= (0, ln 3) -> (.25, .75)
    mmoe.gates[0].set_weights([np.zeros((2, 2))])
    mmoe.gates[1].set_weights([np.array([[0.0, 0.0], [0.0, np.log(3.0) / 2]])])
    (task0, task1), (g0, g1) = mmoe(x, return_gates=True)
    np.testing.assert_allclose(g1.numpy(), [[0.25, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(task0.numpy(), [[0.5 * 1 + 0.5 * 2]], rtol=1e-6)
    np.testing.assert_allclose(task1.numpy(), [[0.25 * 1 + 0.75 * 2]], rtol=1e-6)


def test_tower_every_layer_has_the_activation():
    tower = layers.Tower((3, 2), activation="relu")
    out = tower(-tf.ones([4, 5]) * 100)
    assert out.shape == (4, 2)
    assert [layer.activation.__name__ for layer in tower.hidden] == ["relu", "relu"]
    assert (out.numpy() >= 0).all()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.Experts(num_experts=0, units=4), r"Received: num_experts=0, expected a positive integer"),
        (lambda: layers.Experts(num_experts=2, units=2.5), r"Received: units=2.5"),
        (lambda: layers.Gate(num_experts=-1), r"Received: num_experts=-1"),
        (lambda: layers.MMoE(4, 8, num_gates=0), r"Received: num_gates=0"),
        (lambda: layers.Tower((8, 0)), r"Received: units=0"),
        (lambda: layers.Tower((8,), dropout=1.0), r"Received: dropout=1.0, expected a number in \[0, 1\)"),
    ],
)
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer",
    [
        layers.Experts(3, 4, activation="tanh", use_bias=False),
        layers.Gate(5, use_bias=True),
        layers.MMoE(3, 4, num_gates=2),
        layers.Tower((6, 2), dropout=0.1),
    ],
)
def test_get_config_round_trip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    # Registered: Keras can rebuild it by its registered name alone.
    rebuilt = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(rebuilt) is type(layer)


def test_cgc_mixes_own_and_shared_experts_and_feeds_the_next_level():
    first = layers.CGC(num_tasks=2, num_task_experts=2, num_shared_experts=3, expert_units=4, is_last=False)
    x = tf.random.stateless_normal([5, 6], seed=[3, 4])
    outputs, gates = first(x, return_gates=True)
    assert [o.shape for o in outputs] == [(5, 4)] * 3  # two tasks + the shared path
    for g in gates:
        assert g.shape == (5, 2 + 3)
        np.testing.assert_allclose(g.numpy().sum(-1), np.ones(5), rtol=1e-6)
    last = layers.CGC(num_tasks=2, num_task_experts=2, num_shared_experts=3, expert_units=4, is_last=True)
    assert [o.shape for o in last(outputs)] == [(5, 4)] * 2
    with pytest.raises(ValueError, match=r"CGC received 2 inputs, expected num_tasks \+ 1 = 3"):
        last(outputs[:2])


def test_cgc_task_output_is_the_gate_weighted_sum_of_own_then_shared_experts():
    cgc = layers.CGC(num_tasks=1, num_task_experts=1, num_shared_experts=1, expert_units=1,
                     expert_activation="linear")
    x = tf.constant([[2.0]])
    cgc(x)
    cgc.task_experts[0].set_weights([np.array([[[3.0]]]), np.zeros((1, 1))])  # own expert: 3x = 6
    cgc.shared_experts.set_weights([np.array([[[-1.0]]]), np.zeros((1, 1))])  # shared: -x = -2
    cgc.task_gates[0].set_weights([np.array([[0.0, np.log(3.0) / 2]])])  # softmax(0, ln 3) = (.25, .75)
    (out,) = cgc(x)
    # The sum is 0: float32 rounding of the gate weights leaves up to +-1.2e-7 (an atol, not only an rtol).
    np.testing.assert_allclose(out.numpy(), [[0.25 * 6 + 0.75 * -2]], rtol=1e-6, atol=1e-6)


def test_uncertainty_weighting_formula():
    weighting = layers.UncertaintyWeighting(["a", "b"], regression=[False, True])
    weighting.log_vars["b"].assign(np.log(2.0))
    total = weighting({"a": tf.constant(0.5), "b": tf.constant(2.0)})
    # a (classification, s=0): e^0 * 0.5 + 0 ; b (regression, s=ln 2): 0.5 * 2 / 2 + 0.5 ln 2
    np.testing.assert_allclose(total.numpy(), 0.5 + 0.5 + 0.5 * np.log(2.0), rtol=1e-6)
    assert weighting.weights_by_task() == pytest.approx({"a": 1.0, "b": 0.25})
    # The optimum of e^-s L + s/2 is s = ln(2L): the gradient vanishes there.
    with tf.GradientTape() as tape:
        weighting.log_vars["a"].assign(np.log(2 * 0.5))
        loss = weighting({"a": tf.constant(0.5), "b": tf.constant(2.0)})
    grad_a = tape.gradient(loss, weighting.log_vars["a"])
    assert abs(float(grad_a)) < 1e-6


def test_stop_gradient_is_identity_forward_and_blocks_gradient():
    x = tf.Variable([[1.0, -2.0]])
    with tf.GradientTape() as tape:
        y = layers.StopGradient()(x)
        loss = tf.reduce_sum(y * 3.0)
    np.testing.assert_allclose(y.numpy(), x.numpy())
    assert tape.gradient(loss, x) is None
