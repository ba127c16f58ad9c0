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


def test_a_later_nan_is_caught_at_the_next_check():
    model = build_model(SPEC, TrainerConfig(num_experts=2, expert_units=2), VOCAB)
    x, y = _batch(n=160)  # 20 batches of 8
    nan_from_batch_7 = tf.concat([y["task_a"][:56], tf.fill([104, 1], float("nan"))], axis=0)
    with pytest.raises(FloatingPointError, match=r"training loss is nan at batch 10: .* checked every 5 batches"):
        model.fit(x, dict(y, task_a=nan_from_batch_7), batch_size=8, epochs=1, shuffle=False,
                  callbacks=[RaiseOnNaN(every=5)], verbose=0)


def test_progress_is_logged_ten_times_per_epoch(caplog):
    model = build_model(SPEC, TrainerConfig(num_experts=2, expert_units=2), VOCAB)
    x, y = _batch(n=160)
    with caplog.at_level(logging.INFO):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[LogProgress(steps=20, batch_size=8)], verbose=0)
    steps = [r.getMessage().split()[3] for r in caplog.records if "examples/s" in r.getMessage()]
    assert steps == [f"{s}/20" for s in range(2, 21, 2)]


def test_an_embedding_is_warm_started_token_by_token():
    import numpy as np

    from trainer.run import remap_embedding

    old = np.array([[1.0], [2.0], [3.0], [9.0]])  # vocabulary a, b, c; one OOV bucket
    fresh = np.zeros((5, 1))  # vocabulary c, a, d, e; one OOV bucket
    rows, kept = remap_embedding(old, fresh, [b"a", b"b", b"c"], [b"c", b"a", b"d", b"e"])
    np.testing.assert_array_equal(rows, [[3.0], [1.0], [0.0], [0.0], [9.0]])
    assert kept == 2
    with pytest.raises(ValueError, match=r"embedding width \(1,\) in the base model, \(2,\) now"):
        remap_embedding(old, np.zeros((5, 2)), [b"a"], [b"a"])


def test_training_curves_are_written_where_tensorboard_and_the_report_read_them(tmp_path):
    from pipeline.html_report import training_curves
    from trainer.run import TrainingCurves

    model = build_model(SPEC, TrainerConfig(num_experts=2, expert_units=2), VOCAB)
    x, y = _batch(n=160)
    model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
              callbacks=[TrainingCurves(str(tmp_path), every=5)])
    curves = training_curves(str(tmp_path), ["task_a"])  # 20 steps an epoch, a point every 5
    assert [step for step, _ in curves["task_a"]] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all(loss > 0 for _, loss in curves["task_a"])
    tags = {}
    for kind in ("train", "validation"):
        for path in (tmp_path / kind).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    tags.setdefault(kind, set()).add(value.tag)
    assert {"batch_loss", "epoch_loss", "epoch_task_a_loss"} <= tags["train"]
    assert "epoch_loss" in tags["validation"] and not any(t.startswith("epoch_val_") for t in tags["validation"])
