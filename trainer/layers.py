"""Keras layers of the Multi-gate Mixture-of-Experts model.

Ma, Zhao, Yi, Chen, Hong, Chi. "Modeling Task Relationships in Multi-task
Learning with Multi-gate Mixture-of-Experts", KDD 2018.

For task k the MMoE output is ``f^k(x) = sum_i g^k(x)_i f_i(x)`` with experts
``f_i`` and gates ``g^k(x) = softmax(W_gk x)``; a tower ``h^k`` turns it into
the task's prediction.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

PACKAGE = "mmoe_pipeline"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"Received: {name}={value!r}, expected a positive integer.")
    return value


def _nth_initializer(initializer, n: int):
    """A fresh copy of `initializer` for the n-th expert: seed + n when seeded.

    A Keras initializer instance returns the same values on every call, so
    reusing one instance would give every expert the same starting weights.
    """
    config = initializer.get_config()
    if config.get("seed") is not None:
        config["seed"] = config["seed"] + n
    return initializer.__class__.from_config(config)


@keras.utils.register_keras_serializable(package=PACKAGE)
class Experts(keras.layers.Layer):
    """A bank of feed-forward experts computed as one batched einsum.

    Each expert ``i`` is ``activation(x @ kernel[i] + bias[i])``. All experts
    share one ``[num_experts, input_dim, units]`` kernel, and each expert's
    slice is initialised independently (its own draw of the initializer).

    Args:
      num_experts: number of experts (positive int).
      units: output width of each expert (positive int).
      activation: activation of the experts' outputs.
      use_bias: whether each expert has a bias.
      kernel_initializer, bias_initializer, kernel_regularizer: as in Dense.

    Input shape: ``[batch, input_dim]``.
    Output shape: ``[batch, num_experts, units]``.

    Example:
      >>> experts = Experts(num_experts=8, units=16)
      >>> experts(tf.zeros([4, 10])).shape
      TensorShape([4, 8, 16])
    """

    def __init__(
        self,
        num_experts: int,
        units: int,
        activation="relu",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_experts = _positive_int("num_experts", num_experts)
        self.units = _positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        input_dim = int(input_shape[-1])

        def independent(shape, dtype=None):
            # One initializer per expert, so each expert is its own draw and fan-in/fan-out
            # are those of a single [input_dim, units] expert, not of the stacked kernel.
            return tf.stack(
                [_nth_initializer(self.kernel_initializer, i)([input_dim, self.units], dtype=dtype)
                 for i in range(self.num_experts)]
            )

        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_experts, input_dim, self.units),
            initializer=independent,
            regularizer=self.kernel_regularizer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.num_experts, self.units), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        super().build(input_shape)

    def call(self, inputs, training=None):
        outputs = tf.einsum("bd,edu->beu", inputs, self.kernel)
        if self.use_bias:
            outputs += self.bias
        return self.activation(outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }


@keras.utils.register_keras_serializable(package=PACKAGE)
class Gate(keras.layers.Layer):
    """A task's gating network, ``softmax(W x)`` over the experts (MMoE eq. 5).

    Args:
      num_experts: number of experts to weigh (positive int).
      use_bias: the paper's gate has no bias; set True to add one.
      kernel_initializer: initializer of ``W``.

    Input shape: ``[batch, input_dim]``.
    Output shape: ``[batch, num_experts]``, each row summing to 1.
    """

    def __init__(self, num_experts: int, use_bias: bool = False, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_experts = _positive_int("num_experts", num_experts)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dense = keras.layers.Dense(
            num_experts, use_bias=use_bias, kernel_initializer=self.kernel_initializer, name="logits"
        )

    def call(self, inputs, training=None):
        return tf.nn.softmax(self.dense(inputs), axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def mix(expert_outputs, gate_weights):
    """Gate-weighted sum of expert outputs: ``[b, e, u] x [b, e] -> [b, u]``."""
    return tf.einsum("beu,be->bu", expert_outputs, gate_weights)


@keras.utils.register_keras_serializable(package=PACKAGE)
class MMoE(keras.layers.Layer):
    """Multi-gate Mixture-of-Experts: shared experts, one softmax gate per task.

    With ``num_gates=1`` this is the one-gate MoE (OMoE) baseline of the paper.

    Args:
      num_experts: number of shared experts.
      expert_units: width of each expert.
      num_gates: number of gates (one per task for MMoE, 1 for OMoE).
      expert_activation: activation of the experts.

    Input shape: ``[batch, input_dim]``.
    Output: a list of ``num_gates`` tensors ``[batch, expert_units]``; with
    ``return_gates=True`` in ``call``, also the list of ``[batch, num_experts]``
    gate weights.
    """

    def __init__(self, num_experts: int, expert_units: int, num_gates: int, expert_activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.num_experts = _positive_int("num_experts", num_experts)
        self.expert_units = _positive_int("expert_units", expert_units)
        self.num_gates = _positive_int("num_gates", num_gates)
        self.expert_activation = expert_activation
        self.experts = Experts(num_experts, expert_units, activation=expert_activation, name="experts")
        self.gates = [Gate(num_experts, name=f"gate_{i}") for i in range(num_gates)]

    def call(self, inputs, training=None, return_gates=False):
        expert_outputs = self.experts(inputs)
        gate_weights = [gate(inputs) for gate in self.gates]
        mixtures = [mix(expert_outputs, g) for g in gate_weights]
        return (mixtures, gate_weights) if return_gates else mixtures

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "expert_units": self.expert_units,
            "num_gates": self.num_gates,
            "expert_activation": self.expert_activation,
        }


@keras.utils.register_keras_serializable(package=PACKAGE)
class Tower(keras.layers.Layer):
    """A task tower: a stack of Dense layers, every one with `activation`.

    Args:
      units: widths of the hidden layers, e.g. ``(8,)``; empty for no hidden
        layer (the head's output layer follows the tower).
      activation: activation of every hidden layer (never silently linear).
      dropout: dropout rate after each hidden layer, in [0, 1).

    Input shape: ``[batch, d]``. Output shape: ``[batch, units[-1]]`` (or the
    input when ``units`` is empty).
    """

    def __init__(self, units: Sequence[int], activation="relu", dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(_positive_int("units", u) for u in units)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Received: dropout={dropout!r}, expected a number in [0, 1).")
        self.activation = activation
        self.dropout = dropout
        self.hidden = [keras.layers.Dense(u, activation=activation, name=f"dense_{i}") for i, u in enumerate(self.units)]
        self.drops = [keras.layers.Dropout(dropout) for _ in self.units] if dropout else []

    def call(self, inputs, training=None):
        x = inputs
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if self.drops:
                x = self.drops[i](x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "units": list(self.units), "activation": self.activation, "dropout": self.dropout}
