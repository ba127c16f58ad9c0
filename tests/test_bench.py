"""Tiny runs of the benchmark scripts, so they cannot rot: the shape of their results, never timings."""

import json

from tests.conftest import load_bench


def test_the_synthetic_experiment_reports_every_variant_and_correlation(tmp_path):
    bench = load_bench("synthetic")
    variants = (bench.Variant.MMOE, bench.Variant.SHARED_BOTTOM)
    result = bench.run_experiment(seeds=2, steps=3, train_rows=200, test_rows=50, dim=8, variants=variants,
                                  correlations=(0.5, 1.0))
    assert len(result["runs"]) == 2 * 2 * 2
    assert set(result["summary"]) == {"0.5", "1.0"}
    for by_variant in result["summary"].values():
        assert set(by_variant) == {"mmoe", "shared_bottom"}
        for cell in by_variant.values():
            assert cell["seeds"] == 2 and cell["mean_mse"] > 0 and cell["std_mse"] >= 0
    run = result["runs"][0]
    assert run["mean"] == (run["task_y1"] + run["task_y2"]) / 2
    assert len(bench.table(result).splitlines()) == 3
    bench.plot(result, str(tmp_path / "synthetic.png"))
    with open(tmp_path / "synthetic.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    json.dumps(result)  # what --json writes


def test_the_drift_noise_benchmark_measures_quiet_and_shifted_samples():
    bench = load_bench("drift_noise")
    (result,) = bench.measure(rows=(400,), age_shift=30)
    assert result["rows"] == 400 and len(result["largest"]) == 5
    values = [value for _, value in result["largest"]]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    assert result["age_shifted"] > 0.1  # thirty years is a drift at the default threshold
