"""Multi-task models on the spec's features, one head per task, chosen by `Variant`.

Every variant maps the same input dict (transformed features) to an outputs
dict keyed by task name, and is a `MultiTaskModel`: the shared part and each
task's tower are updated by their own optimizer, at the learning rate the spec
gives the task (``TrainerConfig.shared_learning_rate`` for the shared part).
"""

from __future__ import annotations

from typing import Dict, List, Mapping

import tensorflow as tf
import tf_keras as keras

from components.spec import ColumnKind, DatasetSpec
from trainer import layers
from trainer.config import OptimizerName, TrainerConfig, Variant
from trainer.heads import head_for

SHARED = "shared"


def tower_name(task_name: str) -> str:
    return f"tower_{task_name}"


class MultiTaskModel(keras.Model):
    """A functional Keras model whose variables are updated group by group.

    ``compile(optimizer=..., task_optimizers={task: optimizer}, ...)``: the
    gradient of the (weighted) total loss is computed once per step; each task
    optimizer applies it to that task's tower and output layer, the main
    optimizer to all other (shared) variables.
    """

    def compile(self, optimizer=None, task_optimizers: Mapping[str, keras.optimizers.Optimizer] = None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.task_optimizers = dict(task_optimizers or {})

    def variable_groups(self) -> Dict[str, List[tf.Variable]]:
        """Disjoint trainable variables: one group per task (tower + output), the rest shared."""
        groups: Dict[str, List[tf.Variable]] = {}
        owned = set()
        for task in self.task_optimizers:
            variables = []
            for layer_name in (tower_name(task), task):
                try:
                    variables.extend(self.get_layer(layer_name).trainable_variables)
                except ValueError:
                    continue
            groups[task] = variables
            owned.update(v.ref() for v in variables)
        groups[SHARED] = [v for v in self.trainable_variables if v.ref() not in owned]
        return groups

    def apply_gradients_by_group(self, grads_and_vars) -> None:
        by_ref = {v.ref(): g for g, v in grads_and_vars}
        for group, variables in self.variable_groups().items():
            optimizer = self.optimizer if group == SHARED else self.task_optimizers[group]
            pairs = [(by_ref[v.ref()], v) for v in variables if by_ref.get(v.ref()) is not None]
            if pairs:
                optimizer.apply_gradients(pairs)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        grads = tape.gradient(loss, self.trainable_variables)
        self.apply_gradients_by_group(list(zip(grads, self.trainable_variables)))
        return self.compute_metrics(x, y, y_pred, sample_weight)


def feature_inputs(spec: DatasetSpec) -> Dict[str, keras.Input]:
    """One Keras input per transformed feature, keyed (and named) by its transformed name."""
    return {
        c.transformed_name: keras.Input(
            shape=(1,), name=c.transformed_name, dtype=tf.float32 if c.kind is ColumnKind.NUMERIC else tf.int64
        )
        for c in spec.features
    }


def embed_features(inputs, spec: DatasetSpec, vocab_sizes: Mapping[str, int], embedding_dim: int):
    """Numerics as they are, categoricals through an embedding; concatenated to [batch, d]."""
    parts = []
    for column in spec.features:
        x = inputs[column.transformed_name]
        if column.kind is ColumnKind.NUMERIC:
            parts.append(x)
            continue
        if column.name not in vocab_sizes:
            raise ValueError(
                f"no vocabulary size for categorical feature {column.name!r}; received sizes for "
                f"{sorted(vocab_sizes)}. Was Transform run with this spec?"
            )
        size = vocab_sizes[column.name] + column.num_oov_buckets
        embedded = keras.layers.Embedding(size, embedding_dim, name=f"embed_{column.name}")(x)
        parts.append(keras.layers.Flatten(name=f"flat_{column.name}")(embedded))
    return keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]


def _task_inputs(x, spec: DatasetSpec, config: TrainerConfig) -> List[tf.Tensor]:
    """What each task's tower reads, per variant, in spec task order."""
    n = len(spec.tasks)
    if config.variant in (Variant.MMOE, Variant.OMOE):
        gates = n if config.variant is Variant.MMOE else 1
        mixtures = layers.MMoE(config.num_experts, config.expert_units, num_gates=gates, name="mmoe")(x)
        return mixtures if gates == n else mixtures * n
    if config.variant is Variant.SHARED_BOTTOM:
        bottom = keras.layers.Dense(config.expert_units, activation="relu", name="shared_bottom")(x)
        return [bottom] * n
    if config.variant is Variant.SINGLE_TASK:
        # The bottoms are each task's own: they belong to the task's variable group.
        return [x] * n
    raise ValueError(f"unsupported variant {config.variant!r}")


_OPTIMIZERS = {OptimizerName.ADAM: keras.optimizers.Adam, OptimizerName.SGD: keras.optimizers.SGD}


def make_optimizer(name: OptimizerName, learning_rate: float) -> keras.optimizers.Optimizer:
    return _OPTIMIZERS[OptimizerName(name)](learning_rate=learning_rate)


def build_model(spec: DatasetSpec, config: TrainerConfig, vocab_sizes: Mapping[str, int]) -> MultiTaskModel:
    """The compiled multi-task model of `config.variant` on `spec`."""
    inputs = feature_inputs(spec)
    x = embed_features(inputs, spec, vocab_sizes, config.embedding_dim)
    outputs = {}
    heads = [head_for(task) for task in spec.tasks]
    for head, task_input in zip(heads, _task_inputs(x, spec, config)):
        units = config.tower_units
        if config.variant is Variant.SINGLE_TASK:
            units = (config.expert_units, *units)
        hidden = layers.Tower(units, name=tower_name(head.name))(task_input)
        outputs[head.name] = head.output_layer()(hidden)
    model = MultiTaskModel(inputs=inputs, outputs=outputs, name=f"{config.variant.value}_{spec.name}")
    model.compile(
        optimizer=make_optimizer(config.optimizer, config.shared_learning_rate),
        task_optimizers={t.name: make_optimizer(config.optimizer, t.learning_rate) for t in spec.tasks},
        loss={h.name: h.loss() for h in heads},
        loss_weights={t.output_name: t.loss_weight for t in spec.tasks},
        metrics={h.name: h.metrics() for h in heads},
    )
    return model
