import json
import os

from click.testing import CliRunner

from pipeline import cli
from sources import census


def _uci(path, n):
    # 42 fields as in census-income: age, 40 placeholders, the label with its trailing '.'.
    with open(path, "w") as f:
        for i in range(n):
            f.write(", ".join([str(20 + i)] + ["x"] * 40 + ["50000+." if i % 2 else "- 50000."]) + "\n")
    return str(path)


def test_classify_inputs_takes_files_or_a_folder(tmp_path):
    data = _uci(tmp_path / "census-income.data", 1)
    test = _uci(tmp_path / "census-income.test", 1)
    assert census.classify_inputs([str(tmp_path)]) == (data, test)
    assert census.classify_inputs([test]) == (None, test)


def test_a_folder_without_census_files_is_refused(tmp_path):
    result = CliRunner().invoke(cli.main, ["prepare", "--data", str(tmp_path), "--output-dir", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "holds no census-income.data or census-income.test" in result.output
    assert "make data" in result.output


def test_prepare_writes_splits_and_refuses_a_bad_checksum(tmp_path):
    test = _uci(tmp_path / "census-income.test", 30)
    bad = CliRunner().invoke(cli.main, ["prepare", "--data", test, "--output-dir", str(tmp_path / "o")])
    assert bad.exit_code == 1 and bad.output.startswith("Error: ") and "SHA-256 of its content" in bad.output
    assert "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1
    ok = CliRunner().invoke(
        cli.main, ["prepare", "--data", test, "--output-dir", str(tmp_path / "o"), "--skip-checksum"]
    )
    assert ok.exit_code == 0, ok.output
    assert "{'train': 24, 'eval': 3, 'test': 3}" in ok.output
    with open(tmp_path / "o" / "train" / "data.csv") as f:
        header = f.readline().strip().split(",")
    assert header[0] == "age" and header[24] == "instance_weight" and header[-1] == "income"


def test_synthetic_prints_the_run_command(tmp_path):
    result = CliRunner().invoke(cli.main, ["synthetic", "--output-dir", str(tmp_path), "--rows", "20", "--dim", "3"])
    assert result.exit_code == 0, result.output
    assert f"--splits-dir {os.path.join(str(tmp_path), 'splits')}" in result.output
    assert os.path.exists(tmp_path / "spec.yaml") and os.path.exists(tmp_path / "schema.pbtxt")


def test_schedule_rejects_a_bad_cron_before_compiling(tmp_path):
    args = ["schedule", "--host", "http://kfp", "--cron", "0 3 * * *", "--pipeline-root", "gs://b/r",
            "--data-root", "gs://b/d", "--serving-model-dir", "gs://b/s", "--image", "img",
            "--output", str(tmp_path / "p.yaml")]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2
    assert "Invalid value for --cron: cron: received '0 3 * * *' (5 fields)" in result.output
    assert not os.path.exists(tmp_path / "p.yaml")


# Every TrainerConfig field, each with a value other than its default.
EVERY_FIELD = {
    "variant": "ple", "num_experts": 3, "task_experts": 1, "ple_levels": 2, "expert_units": 12, "bottom_units": 5,
    "tower_units": [6, 4], "embedding_dim": 7, "shared_learning_rate": 0.02, "optimizer": "sgd", "batch_size": 128,
    "epochs": 2, "train_epochs": 3, "early_stopping_patience": 2, "in_memory_max_mb": 64,
    "loss_weighting": "uncertainty", "prediction_inputs": {"income": "never_married"}, "seed": 7,
    "distribution": "mirrored", "devices": ["/cpu:0"],
}


def test_trainer_config_file_reaches_every_field_and_flags_override_it(tmp_path):
    import dataclasses

    import yaml

    from trainer.config import TrainerConfig

    assert set(EVERY_FIELD) == {f.name for f in dataclasses.fields(TrainerConfig)}  # a new field joins the test
    defaults = TrainerConfig().to_dict()
    assert [k for k, v in EVERY_FIELD.items() if v == defaults[k]] == []
    config = tmp_path / "trainer.yaml"
    config.write_text(yaml.safe_dump(EVERY_FIELD))
    output = tmp_path / "p.yaml"
    result = CliRunner().invoke(cli.main, [
        "compile", "--pipeline-root", "gs://b/r", "--data-root", "gs://b/d", "--serving-model-dir", "gs://b/s",
        "--image", "img", "--output", str(output), "--trainer-config", str(config), "--variant", "mmoe",
        "--train-epochs", "5"])
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(output.read_text().split("\n---\n")[0])
    custom = json.loads(spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"]
                        ["runtimeValue"]["constant"])
    assert custom["trainer"] == {**EVERY_FIELD, "variant": "mmoe", "train_epochs": 5}


def test_trainer_config_file_errors_name_the_file_and_the_key(tmp_path):
    config = tmp_path / "trainer.yaml"
    config.write_text("num_expert: 4\n")
    result = CliRunner().invoke(cli.main, [
        "compile", "--pipeline-root", "gs://b/r", "--data-root", "gs://b/d", "--serving-model-dir", "gs://b/s",
        "--image", "img", "--trainer-config", str(config)])
    assert result.exit_code == 2
    assert f"{config}: TrainerConfig: unknown keys ['num_expert']" in result.output


def test_prepare_span_failing_midway_leaves_no_span_and_a_retry_writes_it(tmp_path, monkeypatch):
    """A span is complete or absent: a failure while its splits are written (here the second file write)
    leaves neither span-2/ nor its staging folder, span-1/ as it was, and the retry writes span-2/."""
    test = _uci(tmp_path / "census-income.test", 30)
    args = ["prepare", "--data", test, "--output-dir", str(tmp_path / "root"), "--skip-checksum", "--span"]
    assert CliRunner().invoke(cli.main, args).exit_code == 0
    before = sorted(os.listdir(tmp_path / "root" / "span-1"))
    real_write, calls = census._write_csv, []

    def fails_second_time(path, header, rows):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", path)
        return real_write(path, header, rows)

    monkeypatch.setattr(census, "_write_csv", fails_second_time)
    failed = CliRunner().invoke(cli.main, args)
    assert isinstance(failed.exception, OSError) and len(calls) == 2
    assert os.path.isfile(calls[0]) is False  # the first split was written, then removed with its staging folder
    assert sorted(os.listdir(tmp_path / "root")) == ["span-1"]
    assert sorted(os.listdir(tmp_path / "root" / "span-1")) == before
    monkeypatch.setattr(census, "_write_csv", real_write)
    retry = CliRunner().invoke(cli.main, args)
    assert retry.exit_code == 0, retry.output
    assert f"to {tmp_path / 'root' / 'span-2'}" in retry.output
    assert sorted(os.listdir(tmp_path / "root")) == ["span-1", "span-2"]
    with open(tmp_path / "root" / "span-2" / "train" / "data.csv") as f:
        assert sum(1 for _ in f) == 1 + 24  # header and the 24 train rows


def test_help_imports_nothing_heavy():
    """`SUBCOMMAND --help` answers before TensorFlow, TFX or Beam is imported (no start-up noise)."""
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom pipeline import cli\n"
            "for command in ('run', 'compile', 'run-spec', 'schedule', 'prepare', 'report'):\n"
            "    result = CliRunner().invoke(cli.main, [command, '--help'])\n"
            "    assert result.exit_code == 0 and result.output.startswith('Usage: '), result.output\n"
            "print(sorted(m for m in ('tensorflow', 'tfx', 'apache_beam', 'tensorflow_transform', "
            "'tensorflow_model_analysis', 'kfp', 'numpy') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""
