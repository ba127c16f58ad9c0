"""Run as a subprocess (the rest of the suite keeps one CPU device): one SGD step of the toy model
under MirroredStrategy over 2 logical CPU devices, against the same step computed by hand on the
whole global batch. Prints, per variable group, the largest |moved - lr * grad| and the largest
|lr * grad| (so that the caller can tell a tolerance from a step that did not happen).

    python -m tests.trainer.mirrored_check fixed|uncertainty
"""

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

from tests.trainer.test_model import SPEC, VOCAB, _batch  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.model import SHARED, build_model  # noqa: E402

RATES = {SHARED: 0.5, "task_a": 0.1, "task_b": 0.01}


def main(loss_weighting: str) -> dict:
    config = TrainerConfig(num_experts=3, expert_units=4, optimizer="sgd", shared_learning_rate=RATES[SHARED],
                           loss_weighting=loss_weighting)
    x, y = _batch(n=32)
    keras.utils.set_random_seed(0)
    reference = build_model(SPEC, config, VOCAB)  # default strategy: the gradient of the global mean
    reference(x)
    with tf.GradientTape() as tape:
        loss = reference.compute_loss(x, y, reference(x, training=True))
    grads = tape.gradient(loss, reference.trainable_variables)
    expected = [tf.convert_to_tensor(g).numpy() for g in grads]  # built alike: same variable order

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_model(SPEC, config, VOCAB)
        model(x)
    model.set_weights(reference.get_weights())
    index = {v.ref(): i for i, v in enumerate(model.trainable_variables)}
    before = [v.numpy().copy() for v in model.trainable_variables]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # one global batch, 16 per replica
    model.fit(dataset, epochs=1, verbose=0)
    result = {"replicas": strategy.num_replicas_in_sync, "groups": {}}
    for group, variables in model.variable_groups().items():
        errors, steps = [], []
        for v in variables:
            step = RATES[group] * expected[index[v.ref()]]
            errors.append(float(np.max(np.abs((before[index[v.ref()]] - v.numpy()) - step))))
            steps.append(float(np.max(np.abs(step))))
        result["groups"][group] = {"max_error": max(errors), "max_step": max(steps)}
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
