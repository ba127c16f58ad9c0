"""Multi-task models on the spec's features, one head per task, chosen by `Variant`.

Every variant maps the same input dict (transformed features) to an outputs
dict keyed by task name, and is a `MultiTaskModel`: the shared part and each
task's tower are updated by their own optimizer, at the learning rate the spec
gives the task (``TrainerConfig.shared_learning_rate`` for the shared part).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional

import tensorflow as tf
import tf_keras as keras

from components.spec import ColumnKind, DatasetSpec
from heads import head_for
from trainer import layers
from trainer.config import LossWeighting, OptimizerName, TrainerConfig, Variant

SHARED = "shared"
GATED_LAYER = "gated_experts"  # the MMoE layer, or PLE's last CGC level


def tower_name(task_name: str) -> str:
    return f"tower_{task_name}"


@keras.utils.register_keras_serializable(package=layers.PACKAGE)
class MultiTaskModel(keras.Model):
    """A functional Keras model whose variables are updated group by group.

    ``compile(optimizer=..., task_optimizers={task: optimizer}, ...)``: the
    gradient of the total loss is computed once per step; each task optimizer
    applies it to that task's tower and output layer, the main optimizer to all
    other (shared) variables. With ``uncertainty=UncertaintyWeighting(...)``
    the total loss is the uncertainty-weighted sum of the task losses instead
    of the compiled fixed-weight sum.
    """

    def compile(self, optimizer=None, task_optimizers: Mapping[str, keras.optimizers.Optimizer] = None,
                task_losses: Optional[Mapping[str, keras.losses.Loss]] = None,
                uncertainty: Optional[layers.UncertaintyWeighting] = None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.task_optimizers = dict(task_optimizers or {})
        self.task_losses = dict(task_losses or {})
        self.uncertainty = uncertainty
        # With uncertainty weighting the compiled container's "loss" would be the fixed-weight sum,
        # not what the optimiser minimises: this tracker takes its place (`metrics`), so that every
        # reader of "loss"/"val_loss" (the Tuner's objective, the NaN guard, warm start's initial
        # loss, the progress line, the report) sees the optimised total.
        self.total_loss_tracker = keras.metrics.Mean(name="loss") if uncertainty is not None else None

    @property
    def metrics(self):
        metrics = super().metrics
        if getattr(self, "total_loss_tracker", None) is None:
            return metrics
        return [self.total_loss_tracker, *(m for m in metrics if m.name != "loss")]

    def variable_groups(self) -> Dict[str, List[tf.Variable]]:
        """One group per task (its tower and output layer, keyed by the task's output name) and the
        shared rest. Every trainable variable is in exactly one group; a task whose layers are missing,
        or a variable claimed by two tasks, is an error (as TensorFlow Recommenders' CompositeOptimizer)."""
        groups: Dict[str, List[tf.Variable]] = {}
        owner: Dict[object, str] = {}
        names = [layer.name for layer in self.layers]
        for task in self.task_optimizers:
            variables = []
            for layer_name in (tower_name(task), task):
                if layer_name not in names:
                    raise ValueError(
                        f"MultiTaskModel.variable_groups: task {task!r} has no layer {layer_name!r}; layers are "
                        f"{names}. Build the model with trainer.model.build_model, which names each task's "
                        "tower and output after the task."
                    )
                variables.extend(self.get_layer(layer_name).trainable_variables)
            for v in variables:
                if v.ref() in owner:
                    raise ValueError(f"MultiTaskModel.variable_groups: {v.name} belongs to tasks "
                                     f"{owner[v.ref()]!r} and {task!r}; a variable has one optimizer.")
                owner[v.ref()] = task
            groups[task] = variables
        groups[SHARED] = [v for v in self.trainable_variables if v.ref() not in owner]
        return groups

    def apply_gradients_by_group(self, grads_and_vars) -> None:
        by_ref = {v.ref(): g for g, v in grads_and_vars}
        for group, variables in self.variable_groups().items():
            optimizer = self.optimizer if group == SHARED else self.task_optimizers[group]
            pairs = [(by_ref[v.ref()], v) for v in variables if by_ref.get(v.ref()) is not None]
            if pairs:
                optimizer.apply_gradients(pairs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        fixed = super().compute_loss(x, y, y_pred, sample_weight)  # also tracks each task's loss
        if self.uncertainty is None:
            return fixed
        # Per-example losses (reduction NONE: tf.distribute refuses AUTO outside compile), weighted by
        # the sample weights and averaged over this replica's examples, as the compiled losses'
        # SUM_OVER_BATCH_SIZE reduction does.
        per_task = {}
        for name, loss in self.task_losses.items():
            weights = sample_weight.get(name) if isinstance(sample_weight, Mapping) else sample_weight
            per_task[name] = tf.reduce_mean(loss(y[name], y_pred[name], sample_weight=weights))
        total = self.uncertainty(per_task)
        if self.losses:
            total += tf.add_n(self.losses)
        batch = tf.shape(tf.nest.flatten(y_pred)[0])[0]
        self.total_loss_tracker.update_state(total, sample_weight=batch)
        # Each replica's task losses are means over its own share of the batch, and the optimizers
        # sum gradients over replicas: scale so that the update follows the global-batch mean, as
        # the compiled losses do (tf_keras LossesContainer, scale_loss_for_distribution).
        return total / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, total.dtype)

    # tf_keras is not in AutoGraph's list of libraries to leave alone (TensorFlow and `keras`
    # are), so without this every tf_keras function a step calls (losses, metrics, optimizers)
    # is rewritten by AutoGraph when `fit` and `evaluate` trace: about a third of the Trainer's
    # time on the full census file. The steps hold no Python control flow on tensors.
    @layers.no_autograph
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        # The uncertainty log-variances are attributes of the model, hence among its
        # trainable variables, in the shared group.
        grads = tape.gradient(loss, self.trainable_variables)
        self.apply_gradients_by_group(list(zip(grads, self.trainable_variables)))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    @layers.no_autograph
    def call(self, inputs, training=None, mask=None):  # tf_keras's functional call, not rewritten
        return super().call(inputs, training=training, mask=mask)

    @layers.no_autograph
    def test_step(self, data):
        return super().test_step(data)

    @layers.no_autograph
    def predict_step(self, data):
        return super().predict_step(data)


def feature_inputs(spec: DatasetSpec) -> Dict[str, keras.Input]:
    """One Keras input per transformed feature, keyed (and named) by its transformed name."""
    inputs = {}
    for c in spec.features:
        for key in c.feature_keys:
            dtype = tf.float32 if c.kind is ColumnKind.NUMERIC and key == c.transformed_name else tf.int64
            inputs[key] = keras.Input(shape=(1,), name=key, dtype=dtype)
    return inputs


def embedding_layer_name(column) -> str:
    """The Embedding layer of a categorical feature: one row per vocabulary entry, then its OOV buckets.
    (A bucketed numeric column's: `bucket_embedding_layer_name`.)"""
    return f"embed_{column.name}"


def bucket_embedding_layer_name(column) -> str:
    """The Embedding layer of a numeric feature's quantile bucket: one row per bucket."""
    return f"embed_{column.name}_bucket"


def embed_features(inputs, spec: DatasetSpec, vocab_sizes: Mapping[str, int], embedding_dim: int):
    """Numerics as they are (and their quantile bucket through an embedding), categoricals through an
    embedding; concatenated to [batch, d]."""
    parts = []
    for column in spec.features:
        x = inputs[column.transformed_name]
        if column.kind is ColumnKind.NUMERIC:
            parts.append(x)
            if column.buckets is not None:
                embedded = keras.layers.Embedding(column.buckets, embedding_dim,
                                                  name=bucket_embedding_layer_name(column))(inputs[column.bucket_name])
                parts.append(keras.layers.Flatten(name=f"flat_{column.name}_bucket")(embedded))
            continue
        if column.name not in vocab_sizes:
            raise ValueError(
                f"no vocabulary size for categorical feature {column.name!r}; received sizes for "
                f"{sorted(vocab_sizes)}. Was Transform run with this spec?"
            )
        size = vocab_sizes[column.name] + column.num_oov_buckets
        embedded = keras.layers.Embedding(size, embedding_dim, name=embedding_layer_name(column))(x)
        parts.append(keras.layers.Flatten(name=f"flat_{column.name}")(embedded))
    return keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]


def _task_inputs(x, spec: DatasetSpec, config: TrainerConfig) -> List[tf.Tensor]:
    """What each task's tower reads, per variant, in spec task order."""
    n = len(spec.tasks)
    if config.variant in (Variant.MMOE, Variant.OMOE):
        gates = n if config.variant is Variant.MMOE else 1
        mixtures, _ = layers.MMoE(config.num_experts, config.expert_units, num_gates=gates, name=GATED_LAYER)(
            x, return_gates=True
        )
        return mixtures if gates == n else mixtures * n
    if config.variant is Variant.PLE:
        level = x
        for i in range(config.ple_levels):
            last = i == config.ple_levels - 1
            cgc = layers.CGC(n, config.task_experts, config.num_experts, config.expert_units, is_last=last,
                             name=GATED_LAYER if last else f"cgc_{i}")
            level = cgc(level, return_gates=True)[0] if last else cgc(level)
        return level
    if config.variant is Variant.SHARED_BOTTOM:
        bottom = keras.layers.Dense(config.bottom_width, activation="relu", name="shared_bottom")(x)
        return [bottom] * n
    if config.variant is Variant.SINGLE_TASK:
        # Each task's bottom is the first layer of its own tower (its own variable group).
        return [x] * n
    raise ValueError(f"unsupported variant {config.variant!r}")


def build_order(spec: DatasetSpec, prediction_inputs: Mapping[str, str]) -> List[str]:
    """Task names ordered so that every producer of a prediction input comes before its consumer."""
    names = [t.name for t in spec.tasks]
    for consumer, producer in prediction_inputs.items():
        for role, name in (("consumer", consumer), ("producer", producer)):
            if name not in names:
                raise ValueError(
                    f"TrainerConfig.prediction_inputs: {role} task {name!r} is not in spec "
                    f"{spec.name!r}; tasks are {names}."
                )
    order: List[str] = []
    visiting = set()

    def visit(name):
        if name in order:
            return
        if name in visiting:
            raise ValueError(
                f"TrainerConfig.prediction_inputs {dict(prediction_inputs)!r} has a cycle through {name!r}; "
                "a task cannot depend on its own prediction."
            )
        visiting.add(name)
        if name in prediction_inputs:
            visit(prediction_inputs[name])
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(name)
    return order


_OPTIMIZERS = {OptimizerName.ADAM: keras.optimizers.Adam, OptimizerName.SGD: keras.optimizers.SGD}


def make_optimizer(name: OptimizerName, learning_rate: float) -> keras.optimizers.Optimizer:
    return _OPTIMIZERS[OptimizerName(name)](learning_rate=learning_rate)


def _per_example(loss: keras.losses.Loss) -> keras.losses.Loss:
    loss.reduction = keras.losses.Reduction.NONE
    return loss


def build_model(spec: DatasetSpec, config: TrainerConfig, vocab_sizes: Mapping[str, int]) -> MultiTaskModel:
    """The compiled multi-task model of `config.variant` on `spec`."""
    inputs = feature_inputs(spec)
    x = embed_features(inputs, spec, vocab_sizes, config.embedding_dim)
    heads = {t.name: head_for(t) for t in spec.tasks}
    task_inputs = dict(zip((t.name for t in spec.tasks), _task_inputs(x, spec, config)))
    producers = dict(config.prediction_inputs)
    outputs = {}
    for name in build_order(spec, producers):
        hidden = task_inputs[name]
        if name in producers:
            estimate = layers.StopGradient(name=f"estimate_of_{producers[name]}_for_{name}")(outputs[producers[name]])
            hidden = keras.layers.Concatenate(name=f"with_estimate_{name}")([hidden, estimate])
        units = config.tower_units
        if config.variant is Variant.SINGLE_TASK:
            units = (config.bottom_width, *units)
        hidden = layers.Tower(units, name=tower_name(name))(hidden)
        outputs[name] = heads[name].output_layer()(hidden)
    model = MultiTaskModel(inputs=inputs, outputs={t.output_name: outputs[t.name] for t in spec.tasks},
                           name=f"{config.variant.value}_{spec.name}")
    uncertainty = None
    if config.loss_weighting is LossWeighting.UNCERTAINTY:
        uncertainty = layers.UncertaintyWeighting(
            [t.name for t in spec.tasks], [heads[t.name].gaussian for t in spec.tasks], name="uncertainty"
        )
    # One key per task everywhere: its output name (the layer names, optimizers, losses and metrics).
    model.compile(
        optimizer=make_optimizer(config.optimizer, config.shared_learning_rate),
        task_optimizers={t.output_name: make_optimizer(config.optimizer, t.learning_rate) for t in spec.tasks},
        task_losses={t.output_name: _per_example(heads[t.name].loss()) for t in spec.tasks},
        uncertainty=uncertainty,
        loss={t.output_name: heads[t.name].loss() for t in spec.tasks},
        loss_weights={t.output_name: t.loss_weight for t in spec.tasks},
        metrics={t.output_name: heads[t.name].metrics() for t in spec.tasks},
    )
    # Metric results (the logged loss included) are already aggregated over replicas and workers;
    # tf_keras's default 'auto' sums them again across MultiWorkerMirrored workers.
    model.distribute_reduction_method = "first"
    return model


GATED_VARIANTS = (Variant.MMOE, Variant.OMOE, Variant.PLE)


def gate_model(model: keras.Model, spec: DatasetSpec, variant: Variant) -> Optional[keras.Model]:
    """A model from the same inputs to each task's gate weights ``[batch, experts]``, or None
    for variants without gates. OMoE's single gate is reported for every task."""
    if Variant(variant) not in GATED_VARIANTS:
        return None
    names = [layer.name for layer in model.layers]
    if GATED_LAYER not in names:
        raise ValueError(f"gate statistics: the {Variant(variant).value} model {model.name!r} has no layer "
                         f"{GATED_LAYER!r}; layers are {names}. Build it with trainer.model.build_model.")
    gates = model.get_layer(GATED_LAYER).output[1]
    if len(gates) == 1:
        gates = gates * len(spec.tasks)
    return keras.Model(model.inputs, {t.name: g for t, g in zip(spec.tasks, gates)})


def gate_statistics(model: keras.Model, spec: DatasetSpec, variant: Variant, dataset: tf.data.Dataset,
                    steps: int) -> Optional[dict]:
    """Mean gate weight per task per expert, and mean gate entropy (nats), over `steps` batches;
    None for variants without gates."""
    gates = gate_model(model, spec, variant)
    if gates is None:
        return None

    @tf.function(autograph=False)  # one graph for every batch: eager calls cost ~40 ms a batch
    def batch_sums(features):
        weights = gates(features, training=False)
        return {task: (tf.reduce_sum(w, axis=0), -tf.reduce_sum(w * tf.math.log(tf.maximum(w, 1e-12))),
                       tf.shape(w)[0]) for task, w in weights.items()}

    sums, entropy, count = {}, {}, 0
    for features, _ in dataset.take(steps):
        batch = batch_sums(features)
        for task, (weight_sum, entropy_sum, _) in batch.items():
            sums[task] = sums.get(task, 0.0) + weight_sum.numpy()
            entropy[task] = entropy.get(task, 0.0) + float(entropy_sum)
        count += int(next(iter(batch.values()))[2])
    if not count:
        return None
    return {
        "examples": count,
        "tasks": {
            task: {"mean_gate_weight": (sums[task] / count).tolist(), "mean_entropy": entropy[task] / count}
            for task in sums
        },
    }


class LogUncertaintyWeights(keras.callbacks.Callback):
    """Logs the learned loss weight of each task at the end of every epoch."""

    def on_epoch_end(self, epoch, logs=None):
        uncertainty = getattr(self.model, "uncertainty", None)
        if uncertainty is not None:
            weights = uncertainty.weights_by_task()
            logging.info("Epoch %d learned loss weights: %s", epoch + 1, weights)
            if logs is not None:
                logs.update({f"loss_weight_{k}": v for k, v in weights.items()})
