"""Tiny runs of the benchmark scripts, so they cannot rot: the shape of their results, never timings."""

import json
import os
import subprocess

import click
import pytest

from tests.conftest import ROOT, load_bench


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


def test_the_pipeline_time_benchmark_checks_out_each_commit_and_removes_it():
    bench = load_bench("pipeline_time")
    git = ["git", "-C", ROOT]
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    script = subprocess.run(git + ["show", "HEAD:bench/pipeline_time.py"], capture_output=True, text=True, check=True)
    listed_before = subprocess.run(git + ["worktree", "list"], capture_output=True, text=True, check=True).stdout
    with bench.worktrees({"new": "HEAD"}, repo=ROOT) as versions:
        [(name, (tag, folder))] = versions.items()
        assert (name, tag) == (f"HEAD ({head.stdout.strip()})", "new")
        with open(os.path.join(folder, "bench", "pipeline_time.py")) as f:
            assert f.read() == script.stdout
    assert not os.path.exists(folder)
    with pytest.raises(click.BadParameter, match=r"'no-such-revision' is not a commit of"):
        with bench.worktrees({"base": "no-such-revision"}, repo=ROOT):
            pass
    with pytest.raises(click.BadParameter, match=r"'HEAD' is the same commit \(\w+\) as the other one"):
        with bench.worktrees({"base": head.stdout.strip(), "new": "HEAD"}, repo=ROOT):
            pass
    listed = subprocess.run(git + ["worktree", "list"], capture_output=True, text=True, check=True).stdout
    assert listed == listed_before  # every worktree it made is gone
