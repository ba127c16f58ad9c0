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

# Every `call` here is plain graph code (no Python control flow on tensors). Keras runs the
# `call` of a subclassed layer through AutoGraph, which re-parses and rewrites its source at
# every trace: seconds per model build, export and fit (docs/BENCHMARKS.md, the pipeline profile).
no_autograph = tf.autograph.experimental.do_not_convert


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

    @no_autograph
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

    @no_autograph
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

    @no_autograph
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

    @no_autograph
    def call(self, inputs, training=None):
        x = inputs
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if self.drops:
                x = self.drops[i](x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "units": list(self.units), "activation": self.activation, "dropout": self.dropout}


@keras.utils.register_keras_serializable(package=PACKAGE)
class CGC(keras.layers.Layer):
    """Customized Gate Control: one extraction level of PLE.

    Tang, Liu, Zhao, Gong. "Progressive Layered Extraction (PLE): A Novel
    Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys 2020.

    Each task has its own experts; all tasks share `num_shared_experts`. Task
    k's gate mixes its own and the shared experts; unless this is the last
    level, a shared gate mixes every expert into the shared path of the next
    level.

    Args:
      num_tasks: number of tasks.
      num_task_experts: experts owned by each task.
      num_shared_experts: experts shared by all tasks.
      expert_units: width of every expert.
      is_last: the last level returns only the task outputs.

    Input: one tensor ``[batch, d]`` (first level) or a list of ``num_tasks + 1``
    tensors (each task's input, then the shared input).
    Output: a list of ``num_tasks`` tensors ``[batch, expert_units]``, plus the
    shared one unless ``is_last``; with ``return_gates=True`` also the task gates.
    """

    def __init__(self, num_tasks: int, num_task_experts: int, num_shared_experts: int, expert_units: int,
                 is_last: bool = True, expert_activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.num_tasks = _positive_int("num_tasks", num_tasks)
        self.num_task_experts = _positive_int("num_task_experts", num_task_experts)
        self.num_shared_experts = _positive_int("num_shared_experts", num_shared_experts)
        self.expert_units = _positive_int("expert_units", expert_units)
        self.is_last = is_last
        self.expert_activation = expert_activation
        self.task_experts = [
            Experts(num_task_experts, expert_units, activation=expert_activation, name=f"task_experts_{k}")
            for k in range(num_tasks)
        ]
        self.shared_experts = Experts(num_shared_experts, expert_units, activation=expert_activation,
                                      name="shared_experts")
        self.task_gates = [Gate(num_task_experts + num_shared_experts, name=f"task_gate_{k}") for k in range(num_tasks)]
        self.shared_gate = None if is_last else Gate(num_tasks * num_task_experts + num_shared_experts,
                                                     name="shared_gate")

    @no_autograph
    def call(self, inputs, training=None, return_gates=False):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != self.num_tasks + 1:
                raise ValueError(
                    f"CGC received {len(inputs)} inputs, expected num_tasks + 1 = {self.num_tasks + 1} "
                    "(one per task, then the shared one)."
                )
            task_inputs, shared_input = list(inputs[:-1]), inputs[-1]
        else:
            task_inputs, shared_input = [inputs] * self.num_tasks, inputs
        shared = self.shared_experts(shared_input)
        owned = [experts(x) for experts, x in zip(self.task_experts, task_inputs)]
        gates = [gate(x) for gate, x in zip(self.task_gates, task_inputs)]
        outputs = [mix(tf.concat([own, shared], axis=1), g) for own, g in zip(owned, gates)]
        if not self.is_last:
            outputs.append(mix(tf.concat(owned + [shared], axis=1), self.shared_gate(shared_input)))
        return (outputs, gates) if return_gates else outputs

    def get_config(self):
        return {
            **super().get_config(),
            "num_tasks": self.num_tasks,
            "num_task_experts": self.num_task_experts,
            "num_shared_experts": self.num_shared_experts,
            "expert_units": self.expert_units,
            "is_last": self.is_last,
            "expert_activation": self.expert_activation,
        }


@keras.utils.register_keras_serializable(package=PACKAGE)
class StopGradient(keras.layers.Layer):
    """Identity forward, no gradient backward: lets a task read another's estimate
    as a feature without training the other task through it."""

    @no_autograph
    def call(self, inputs, training=None):
        return tf.stop_gradient(inputs)


@keras.utils.register_keras_serializable(package=PACKAGE)
class UncertaintyWeighting(keras.layers.Layer):
    """Homoscedastic-uncertainty loss weighting (Kendall, Gal, Cipolla, CVPR 2018).

    Learns ``s_k = log sigma_k^2`` per task and combines task losses ``L_k`` as
    ``exp(-s_k) L_k + s_k / 2`` for classification tasks and
    ``exp(-s_k) L_k / 2 + s_k / 2`` for regression tasks (their eq. 7 and 10,
    written with ``s = log sigma^2`` for numerical stability).

    Args:
      task_names: tasks in order.
      regression: for each task, whether it is a regression task.

    Input: a dict ``{task: scalar loss}``. Output: the scalar total loss.
    """

    def __init__(self, task_names, regression, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.regression = [bool(r) for r in regression]
        if len(self.task_names) != len(self.regression) or not self.task_names:
            raise ValueError(
                f"Received: task_names={self.task_names!r}, regression={self.regression!r}; "
                "expected one regression flag per task and at least one task."
            )
        self.log_vars = {
            name: self.add_weight(name=f"log_var_{name}", shape=(), initializer="zeros")
            for name in self.task_names
        }

    def weights_by_task(self):
        """The current weight ``exp(-s_k)`` (halved for regression) of each task's loss."""
        return {
            name: float(tf.exp(-self.log_vars[name]) * (0.5 if reg else 1.0))
            for name, reg in zip(self.task_names, self.regression)
        }

    @no_autograph
    def call(self, losses, training=None):
        total = 0.0
        for name, reg in zip(self.task_names, self.regression):
            s = self.log_vars[name]
            scale = 0.5 if reg else 1.0
            total += scale * tf.exp(-s) * losses[name] + 0.5 * s
        return total

    def get_config(self):
        return {**super().get_config(), "task_names": self.task_names, "regression": self.regression}
