import logging

import pytest
import tensorflow as tf

from tests.trainer.test_model import SPEC, VOCAB, _batch
from trainer.callbacks import LogProgress, RaiseOnNaN
from trainer.config import TrainerConfig
from trainer.model import build_model


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

    from trainer.warm_start import remap_embedding

    old = np.array([[1.0], [2.0], [3.0], [9.0]])  # vocabulary a, b, c; one OOV bucket
    fresh = np.zeros((5, 1))  # vocabulary c, a, d, e; one OOV bucket
    rows, kept = remap_embedding(old, fresh, [b"a", b"b", b"c"], [b"c", b"a", b"d", b"e"])
    np.testing.assert_array_equal(rows, [[3.0], [1.0], [0.0], [0.0], [9.0]])
    assert kept == 2
    with pytest.raises(ValueError, match=r"embedding width \(1,\) in the base model, \(2,\) now"):
        remap_embedding(old, np.zeros((5, 2)), [b"a"], [b"a"])


def test_training_curves_are_written_where_tensorboard_and_the_report_read_them(tmp_path):
    from pipeline.reporting.html_report import training_curves
    from trainer.callbacks import TrainingCurves

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


def test_epochs_are_passes_over_the_train_rows_and_steps_otherwise():
    from trainer.run import schedule

    assert schedule(TrainerConfig(epochs=4), 2000, None, 256) == (4, 500)
    # 80,000 rows of batches of 256: 312 full batches per pass.
    assert schedule(TrainerConfig(train_epochs=3), 2000, 80_000, 256) == (3, 312)
    assert schedule(TrainerConfig(train_epochs=2), 2000, 100, 256) == (2, 1)
    with pytest.raises(ValueError, match="train_epochs=3: the train split has no rows"):
        schedule(TrainerConfig(train_epochs=3), 2000, 0, 256)
    with pytest.raises(ValueError, match=r"TrainerConfig.early_stopping_patience: received -1, expected an integer"):
        TrainerConfig(early_stopping_patience=-1)


def test_the_training_record_names_the_best_epoch_and_whether_it_stopped_early():
    from trainer.run import training_record

    history = {"loss": [0.5, 0.4, 0.35, 0.33], "val_loss": [0.45, 0.41, 0.42, 0.43]}
    record = training_record(history, epochs=10, steps_per_epoch=312, train_rows=80_000, patience=2)
    assert record["epochs_run"] == 4 and record["steps_run"] == 1248
    assert record["best_epoch"] == 2 and record["best_eval_loss"] == pytest.approx(0.41)
    assert record["stopped_early"] is True
    full = training_record(history, epochs=4, steps_per_epoch=312, train_rows=80_000, patience=2)
    assert full["stopped_early"] is False and full["best_epoch"] == 2


def test_early_stopping_keeps_the_best_epoch_of_a_real_fit():
    """A model that fits noise: the eval loss (other noise) is best early, and Keras's EarlyStopping as the
    Trainer sets it stops `patience` epochs later with the best epoch's weights back."""
    import numpy as np
    import tf_keras as keras

    from trainer.run import training_record

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 32)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    xv, yv = rng.normal(size=(64, 32)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=50, batch_size=64, validation_data=(xv, yv), callbacks=[stop], verbose=0)
    record = training_record(history.history, 50, 1, 64, 2)
    assert record["stopped_early"] and record["epochs_run"] == record["best_epoch"] + 2 < 50
    assert float(model.evaluate(xv, yv, verbose=0)) == pytest.approx(record["best_eval_loss"], rel=1e-5)


def test_count_records_reads_every_gzip_file_of_the_split(tmp_path):
    from trainer.input_data import count_records

    for name, n in (("a.gz", 3), ("b.gz", 70_000)):
        with tf.io.TFRecordWriter(str(tmp_path / name), options="GZIP") as w:
            for i in range(n):
                w.write(b"x%d" % i)
    assert count_records([str(tmp_path / "*.gz")]) == 70_003
    with pytest.raises(ValueError, match="no files match"):
        count_records([str(tmp_path / "none-*")])
