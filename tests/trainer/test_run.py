import logging

import pytest
import tensorflow as tf

from trainer.config import TrainerConfig
from trainer.model import build_model
from trainer.run import LogProgress, RaiseOnNaN
from tests.trainer.test_model import SPEC, VOCAB, _batch


def test_nan_loss_stops_training_with_a_clear_error():
    model = build_model(SPEC, TrainerConfig(num_experts=2, expert_units=2), VOCAB)
    x, y = _batch()
    y = dict(y, task_a=tf.fill([32, 1], float("nan")))  # a NaN label makes the loss NaN
    with pytest.raises(FloatingPointError, match=r"training loss is nan at batch 0: lower the learning rates"):
        model.fit(x, y, batch_size=32, epochs=1, callbacks=[RaiseOnNaN()], verbose=0)


def test_progress_is_logged_ten_times_per_epoch(caplog):
    model = build_model(SPEC, TrainerConfig(num_experts=2, expert_units=2), VOCAB)
    x, y = _batch(n=160)
    with caplog.at_level(logging.INFO):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[LogProgress(steps=20, batch_size=8)], verbose=0)
    steps = [r.getMessage().split()[3] for r in caplog.records if "examples/s" in r.getMessage()]
    assert steps == [f"{s}/20" for s in range(2, 21, 2)]
