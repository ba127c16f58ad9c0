import logging

import tensorflow as tf

from components.serving_check import check_serving
from components.spec import DatasetSpec

SPEC = DatasetSpec.from_dict({
    "name": "s",
    "columns": [{"name": "x", "kind": "numeric"}, {"name": "a", "kind": "categorical"},
                {"name": "b", "kind": "numeric"}],
    "tasks": [{"name": "clicked", "label_column": "a", "positive_values": ["1"]},
              {"name": "amount", "label_column": "b", "type": "regression"}],
})


class _Fixed(tf.Module):
    def __init__(self, clicked, amount, drop=None):
        super().__init__()
        self.clicked, self.amount, self.drop = clicked, amount, drop

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        n = tf.shape(examples)[0]
        out = {"clicked": tf.fill([n, 1], self.clicked), "amount": tf.fill([n, 1], self.amount)}
        if self.drop:
            out.pop(self.drop)
        return out


def _save(tmp_path, module):
    path = str(tmp_path / "m")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def test_finite_probabilities_pass(tmp_path):
    result = check_serving(_save(tmp_path, _Fixed(0.3, 12.0)), [b""] * 4, SPEC)
    assert result.ok and result.to_dict() == {"ok": True, "num_examples": 4, "failures": {}, "anomalies": [],
                                          "drift": [], "spans": []}


def test_a_probability_out_of_range_fails_only_that_task(tmp_path):
    result = check_serving(_save(tmp_path, _Fixed(1.5, 12.0)), [b""] * 3, SPEC)
    assert not result.ok
    assert result.failures == {"clicked": "3 of 3 examples did not get a probability in [0, 1] (first bad value: [1.5])"}


def test_regression_needs_only_finite_values(tmp_path):
    result = check_serving(_save(tmp_path, _Fixed(0.5, float("inf"))), [b""] * 2, SPEC)
    assert list(result.failures) == ["amount"]
    assert result.failures["amount"].startswith("2 of 2 examples did not get a finite value")


def test_a_missing_output_and_an_unloadable_model_fail(tmp_path, caplog):
    assert check_serving(_save(tmp_path, _Fixed(0.5, 1.0, drop="amount")), [b""], SPEC).failures == {
        "amount": "no output 'amount' (outputs: ['clicked'])"}
    with caplog.at_level(logging.ERROR):
        broken = check_serving(str(tmp_path / "nothing"), [b""], SPEC)
    assert set(broken.failures) == {"clicked", "amount"}
    assert all(v.startswith("serving failed: OSError: SavedModel file does not exist")
               for v in broken.failures.values()), broken.failures
    # The cause keeps its traceback in the log.
    (record,) = [r for r in caplog.records if "failed to load or serve" in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is OSError
    assert str(tmp_path / "nothing") in record.getMessage()


def test_no_examples_is_not_a_pass(tmp_path):
    assert not check_serving(_save(tmp_path, _Fixed(0.5, 1.0)), [], SPEC).ok
