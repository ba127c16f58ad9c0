"""A killed Trainer resumes from its backup: the model's weights and every optimizer's state come back, so
the resumed training ends where an uninterrupted one does."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.trainer.test_model import SPEC, VOCAB, _batch
from trainer.checkpoints import BACKUP_MIN_STEPS, backup_callback, backup_dir, backup_steps, remove_backup
from trainer.config import TrainerConfig
from trainer.model import build_model

STEPS = 8
EVERY_2 = dict(steps_per_epoch=20, min_steps=1)  # a backup every 2 steps


class _Killed(Exception):
    pass


class _KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.step:
            raise _Killed(f"killed after step {self.step}")


class _Count(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def _model():
    keras.utils.set_random_seed(7)
    return build_model(SPEC, TrainerConfig(num_experts=2, expert_units=4, shared_learning_rate=0.05), VOCAB)


def _data():
    # The same batch every step: the order in which a resumed fit reads the data cannot matter.
    x, y = _batch()
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def test_a_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    whole = _model()
    whole.fit(_data(), epochs=1, steps_per_epoch=STEPS, verbose=0)

    directory = str(tmp_path / "Trainer" / ".backup" / "key")
    killed = _model()
    with pytest.raises(_Killed):
        killed.fit(_data(), epochs=1, steps_per_epoch=STEPS, verbose=0,
                   callbacks=[backup_callback(directory, **EVERY_2), _KillAt(4)])
    assert tf.io.gfile.exists(directory)

    resumed, count = _model(), _Count()  # a new process: fresh weights and optimizers
    resumed.fit(_data(), epochs=1, steps_per_epoch=STEPS, verbose=0,
                callbacks=[backup_callback(directory, **EVERY_2), count])
    assert count.batches == STEPS - 4  # from the backed-up step on
    for expected, got in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6, err_msg=expected.name)
    assert tf.io.gfile.listdir(directory) == []  # Keras deleted the checkpoints once training ended
    remove_backup(directory)
    assert not tf.io.gfile.exists(directory)

    # Without the optimizers' state (Adam's moments and step count), the same weights alone end elsewhere.
    fresh_optimizers = _model()
    fresh_optimizers.fit(_data(), epochs=1, steps_per_epoch=4, verbose=0)
    restarted = _model()
    restarted.set_weights(fresh_optimizers.get_weights())
    restarted.fit(_data(), epochs=1, steps_per_epoch=STEPS - 4, verbose=0)
    assert max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(whole.weights, restarted.weights)) > 1e-4


def test_the_backup_folder_is_keyed_by_what_the_training_reads():
    args = (["/r/Transform/transformed_examples/5/Split-train/*"], "/r/Transform/transform_graph/5", {"spec": 1}, 100)
    first = backup_dir("/r/Trainer/model_run/7", *args)
    assert first.startswith("/r/Trainer/.backup/") and len(first.rsplit("/", 1)[-1]) == 16
    assert backup_dir("/r/Trainer/model_run/9", *args) == first  # the retried execution finds it
    assert backup_dir("/r/Trainer/model_run/9", *args[:3], 200) != first  # other steps: another training
    assert backup_dir("/r/Trainer/model_run/9", *args, {"num_experts": 4}) != first


def test_the_backup_restores_every_optimizer_state_into_a_fresh_model(tmp_path):
    directory = str(tmp_path / "Trainer" / ".backup" / "key")
    killed = _model()
    with pytest.raises(_Killed):
        killed.fit(_data(), epochs=1, steps_per_epoch=STEPS, verbose=0,
                   callbacks=[backup_callback(directory, **EVERY_2), _KillAt(4)])  # last backup: step 4
    optimizers = {"shared": killed.optimizer, **killed.task_optimizers}
    assert len(optimizers) == 1 + len(SPEC.tasks)

    fresh = _model()
    fresh.fit(_data(), epochs=1, steps_per_epoch=1, verbose=0)  # creates every optimizer's slots, then overwritten
    # The objects Keras's BackupAndRestore checkpoints (tf_keras WorkerTrainingState).
    checkpoint = tf.train.Checkpoint(model=fresh, ckpt_saved_epoch=tf.Variable(-1, dtype=tf.int64),
                                     ckpt_saved_batch=tf.Variable(-1, dtype=tf.int64),
                                     train_counter=fresh._train_counter)
    status = checkpoint.restore(tf.train.latest_checkpoint(f"{directory}/chief"))
    status.assert_consumed()  # every value in the backup found its variable: nothing is left behind
    fresh_optimizers = {"shared": fresh.optimizer, **fresh.task_optimizers}
    for name, optimizer in optimizers.items():
        restored = fresh_optimizers[name]
        assert int(restored.iterations.numpy()) == 4, name  # the step of the last backup, not fresh's 1
        assert len(restored.variables) == len(optimizer.variables) > 1, name  # the step count and Adam's moments
        for expected, got in zip(optimizer.variables, restored.variables):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7,
                                       err_msg=f"{name} {expected.name}")


def test_backups_come_every_tenth_of_an_epoch_but_never_more_often_than_the_floor():
    assert backup_steps(20, min_steps=1) == 2
    assert backup_steps(5, min_steps=1) == 1
    assert backup_steps(2000) == BACKUP_MIN_STEPS == 1000  # the default 2,000-step run: one backup, at 1,000
    assert backup_steps(50_000) == 5_000
