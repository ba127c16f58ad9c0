"""Tiny runs of the benchmark scripts, so they cannot rot: the shape of their results, never timings."""

import json
import os
import subprocess
import sys

import click
import pytest

from tests.conftest import ROOT, load_bench


def test_the_synthetic_experiment_grid_searches_the_rate_and_pairs_models_by_seed(tmp_path):
    """Shape of a tiny run: the grid seed tries every rate, the kept rate is the one of lowest validation
    loss, the other seed runs at it alone; curves every 2 steps; the paired difference is the mean of the
    per-seed differences of the kept runs."""
    bench = load_bench("synthetic")
    variants = (bench.Variant.MMOE, bench.Variant.SHARED_BOTTOM)
    rates = (1e-3, 1e-2)
    result = bench.run_experiment(seeds=2, grid_seeds=1, steps=4, every=2, train_rows=200, test_rows=50, dim=8,
                                  bottom_units=5, variants=variants, correlations=(0.5,), learning_rates=rates)
    assert len(result["runs"]) == 1 * 2 * 2 + 1 * 2
    for correlation in ("0.5",):
        for variant in ("mmoe", "shared_bottom"):
            grid = {r["learning_rate"]: r["validation"] for r in result["runs"]
                    if str(r["correlation"]) == correlation and r["variant"] == variant and r["seed"] == 0}
            assert result["best_rate"][correlation][variant] == min(grid, key=grid.get)
            kept = [r for r in result["runs"] if str(r["correlation"]) == correlation and r["variant"] == variant
                    and r["best"]]
            assert [r["seed"] for r in kept] == [0, 1] and {r["learning_rate"] for r in kept} == {min(grid, key=grid.get)}
            assert all(r["steps"] == [2, 4] and r["test"] == r["test_curve"][-1] for r in kept)
        tests = {(r["variant"], r["seed"]): r["test"] for r in result["runs"]
                 if str(r["correlation"]) == correlation and r["best"]}
        diff = result["summary"][correlation]["mmoe"]["minus_shared_bottom"]
        expected = [tests["mmoe", s] - tests["shared_bottom", s] for s in (0, 1)]
        assert diff["mean"] == pytest.approx(sum(expected) / 2) and diff["n"] == 2
        assert diff["better_share"] == sum(d < 0 for d in expected) / 2
    assert len(bench.table(result).splitlines()) == 2 + 2
    # Two processes' results (one per correlation) combine into one table; other settings do not.
    other = bench.run_experiment(seeds=1, grid_seeds=1, steps=4, every=2, train_rows=200, test_rows=50, dim=8,
                                 bottom_units=5, variants=variants, correlations=(1.0,), learning_rates=rates)
    with pytest.raises(ValueError, match="cannot combine runs made with different settings"):
        bench.combine([result, other])
    other_same = bench.run_experiment(seeds=2, grid_seeds=1, steps=4, every=2, train_rows=200, test_rows=50, dim=8,
                                      bottom_units=5, variants=variants, correlations=(1.0,), learning_rates=rates)
    both = bench.combine([json.loads(json.dumps(result)), json.loads(json.dumps(other_same))])  # as read from --json
    assert list(both["summary"]) == ["0.5", "1.0"] and len(both["runs"]) == 12
    assert both["summary"]["0.5"] == result["summary"]["0.5"]
    result = both
    bench.plot(result, str(tmp_path / "synthetic.png"))
    with open(tmp_path / "synthetic.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_synthetic_loss_is_the_mse_over_the_label_variance():
    """A model whose weights are all zero predicts 0: its normalised loss is mean(y^2) / var(y) per task,
    averaged, computed here by hand."""
    import numpy as np

    bench = load_bench("synthetic")
    spec = bench._spec(3, 1e-3)
    model = bench.build_model(spec, bench.model_config(bench.Variant.SHARED_BOTTOM, 1e-3, 0, 4, 8), vocab_sizes={})
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    x = np.ones((4, 3), "float32")
    y = np.array([[1, 2], [3, 2], [1, 6], [3, 6]], "float32")  # variances 1 and 4; mean squares 5 and 20
    variance = y.var(axis=0)
    assert bench.normalised_losses(model, spec, x, y, variance) == pytest.approx((5 / 1 + 20 / 4) / 2)


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


def test_the_scale_benchmark_makes_deterministic_data_and_measures_a_tiny_run(tmp_path):
    """Data roots of N rows (whole shuffled copies, then a part), the same for the same seed; one
    tiny pipeline run measured: its components' seconds and the process tree's peak memory."""
    bench = load_bench("scale")
    source = tmp_path / "source.csv"
    source.write_text("".join(f"{i}, row\n" for i in range(7)) + "\n")
    root = bench.make_data_root(str(source), 17, str(tmp_path / "a"), seed=3)
    lines = open(os.path.join(root, bench.DATA_NAME)).read().splitlines()
    assert len(lines) == 17
    assert sorted(lines[:7]) == sorted(lines[7:14]) == [f"{i}, row" for i in range(7)]
    assert len(set(lines[14:])) == 3
    again = bench.make_data_root(str(source), 17, str(tmp_path / "b"), seed=3)
    assert open(os.path.join(again, bench.DATA_NAME)).read().splitlines() == lines

    measured = bench.run_measured(
        [sys.executable, "-c", "import time; b = bytearray(300_000_000); b[::4096] = b'x' * len(b[::4096]); "
         "time.sleep(1.5)"], dict(os.environ), str(tmp_path), str(tmp_path / "m.log"), sample_s=0.1)
    assert measured["exit"] == 0 and measured["peak_gb"] >= 0.3
    # Per component: the peak while its console lines say it runs (A holds 300 MB, B after A freed them).
    script = ("import sys, time\n"
              "def say(s): print(s, flush=True)\n"
              "say('  A  started'); b = bytearray(300_000_000); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.0)\n"
              "say('  A  complete  1.0 s'); del b; say('  B  started'); time.sleep(1.0); say('  B  complete  1.0 s')\n")
    phases = bench.run_measured([sys.executable, "-c", script], dict(os.environ), str(tmp_path), str(tmp_path / "p.log"),
                                sample_s=0.1)
    assert phases["component_peak_gb"]["A"] >= 0.3 > phases["component_peak_gb"]["B"]
    # Above --max-memory-gb the tree is stopped, naming what ran: A is, B never starts.
    stopped = bench.run_measured([sys.executable, "-c", script + "say('  C  started')\n"], dict(os.environ),
                                 str(tmp_path), str(tmp_path / "s.log"), sample_s=0.1, max_memory_gb=0.2)
    assert stopped["over_memory"] == ["A"] and stopped["exit"] != 0 and "B" not in stopped["component_peak_gb"]


    from components import names
    from sources.census import SAMPLE_PATH

    data = bench.make_data_root(SAMPLE_PATH, 600, str(tmp_path / "data-600"))
    run = bench.run_pipeline(ROOT, data, str(tmp_path / "out-600"), ["--train-steps", "5", "--eval-steps", "2"])
    assert {names.EXAMPLE_GEN_COMPONENT, "StatisticsGen", "Transform", "Trainer", "Evaluator"} <= set(run["components"])
    assert run["peak_gb"] > 0.2 and run["pipeline_s"] > 0
    text = bench.table({"new": {600: run}}, [600])
    assert text.splitlines()[0] == "| component | new 600 |" and "| peak memory (GB) |" in text
    assert set(run["component_peak_gb"]) >= {"Transform", "Trainer", "Evaluator"}
    assert max(run["component_peak_gb"].values()) <= run["peak_gb"]
    assert "| peak GB during Trainer |" in text


def test_the_backup_benchmark_times_the_three_set_ups_and_derives_a_backups_cost():
    bench = load_bench("backup")
    result = bench.measure(steps=4, repeats=1, min_steps=2)
    assert result["trainer_interval"] == 2 and result["parameters"] > 10_000  # the census model, not a toy
    assert list(result["seconds"]) == [bench.NONE, bench.EVERY_STEP, bench.TRAINER]
    median = {name: values[0] for name, values in result["seconds"].items()}
    assert result["median_s"] == median
    assert result["backup_ms"] == pytest.approx(1000 * (median[bench.EVERY_STEP] - median[bench.NONE]) / 3)
    assert result["trainer_overhead"] == pytest.approx(median[bench.TRAINER] / median[bench.NONE] - 1)
    lines = bench.table(result).splitlines()
    assert len(lines) == 2 + 3 and lines[4].startswith("| the Trainer's interval (2 steps) |")
