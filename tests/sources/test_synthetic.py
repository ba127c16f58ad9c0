import os

import numpy as np
import pytest

from components.spec import load_spec
from sources import synthetic


def test_task_weights_have_the_requested_cosine():
    for p in (0.0, 0.5, 0.9, -0.3):
        data = synthetic.generate(10, dim=20, correlation=p, c=2.0, seed=1)
        assert np.linalg.norm(data.w1) == pytest.approx(2.0)
        assert np.linalg.norm(data.w2) == pytest.approx(2.0)
        assert data.w1 @ data.w2 / 4.0 == pytest.approx(p, abs=1e-12)


def test_label_correlation_grows_with_p():
    def corr(p):
        d = synthetic.generate(20000, dim=16, correlation=p, seed=2)
        return np.corrcoef(d.y["y1"], d.y["y2"])[0, 1]

    low, mid, high = corr(0.0), corr(0.5), corr(1.0)
    assert low < mid < high
    assert high > 0.99  # p = 1: the same function of x, only the noise differs
    assert abs(low) < 0.1


def test_targets_follow_the_formula():
    d = synthetic.generate(5, dim=4, correlation=0.3, noise_std=0.0, num_sin=0, seed=3)
    np.testing.assert_allclose(d.y["y1"], d.x @ d.w1, rtol=1e-5, atol=1e-5)


def test_invalid_correlation():
    with pytest.raises(ValueError, match=r"Received: correlation=1.5, expected a number in \[-1, 1\]"):
        synthetic.generate(10, correlation=1.5)


def test_written_dataset_is_a_pipeline_source(tmp_path):
    splits, spec_path, schema_path = synthetic.write_dataset(str(tmp_path), n=50, dim=3)
    spec = load_spec(spec_path)
    assert [c.name for c in spec.features] == ["x0", "x1", "x2"]
    assert [t.label_key for t in spec.tasks] == ["task_y1_label", "task_y2_label"]
    counts = {s: sum(1 for _ in open(os.path.join(splits, s, "data.csv"))) - 1 for s in ("train", "eval", "test")}
    assert counts == {"train": 40, "eval": 5, "test": 5}
    with open(schema_path) as f:
        assert f.read().count("feature {") == 5


def test_the_written_dataset_passes_the_pipeline_input_checks(tmp_path):
    """What `mmoe-pipeline synthetic` writes is a pipeline data source: its spec, schema and splits
    agree (the whole pipeline on a non-census dataset with regression tasks and PLE runs in
    tests/pipeline/test_any_csv.py)."""
    from components.spec import load_spec
    from pipeline.local import preflight

    splits, spec_path, schema_path = synthetic.write_dataset(str(tmp_path), n=200, dim=4, correlation=0.5)
    _, summaries = preflight.check_inputs(load_spec(spec_path), schema_path, splits)
    assert {s: r.rows for s, r in summaries.items()} == {"train": 160, "eval": 20, "test": 20}
