"""Beam arguments of a local run: parsed and checked, and given to a Beam executor through TFX's
launcher registry without TFX packaging itself or absl parsing the command line."""

import sys

import apache_beam as beam
import pytest
from click.testing import CliRunner
from tfx.dsl.components.base import base_beam_executor
from tfx.orchestration.portable import beam_executor_operator, data_types, launcher
from tfx.proto.orchestration import executable_spec_pb2

from pipeline import cli
from pipeline.graph import beam_options

MULTI = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


class SumExecutor(base_beam_executor.BaseBeamExecutor):
    """Sums 1..10 in its Beam pipeline and records what that pipeline was made with."""

    seen = {}

    def Do(self, input_dict, output_dict, exec_properties):
        with self._make_beam_pipeline() as p:
            SumExecutor.seen["options"] = p.options.get_all_options(drop_default=True)
            _ = (p | beam.Create(range(1, 11)) | beam.CombineGlobally(sum)
                 | beam.io.WriteToText(exec_properties["total"], shard_name_template=""))
        SumExecutor.seen["args"] = list(self._beam_pipeline_args)


def _run(operator_cls, tmp_path, args):
    spec = executable_spec_pb2.BeamExecutableSpec()
    for arg in args:  # as TFX's compiler writes them into the pipeline IR (and the legacy field beside)
        spec.beam_pipeline_args_placeholders.add().value.string_value = arg
        spec.beam_pipeline_args.append(arg)
    spec.python_executor_spec.class_path = f"{SumExecutor.__module__}.SumExecutor"
    info = data_types.ExecutionInfo(input_dict={}, output_dict={}, exec_properties={"total": str(tmp_path / "total")},
                                    tmp_dir=str(tmp_path),
                                    execution_output_uri=str(tmp_path / "output.pb"),
                                    stateful_working_dir=str(tmp_path), execution_id=1)
    SumExecutor.seen.clear()
    return operator_cls(spec).run_executor(info)


def test_tfxs_own_operator_parses_the_cli_flags_with_absl(tmp_path, monkeypatch):
    """Why `local_execution` exists: with any Beam argument, BaseBeamExecutor hands sys.argv to absl."""
    monkeypatch.setattr(sys, "argv", ["mmoe-pipeline", "-v", "run"])
    with pytest.raises(Exception, match=r"(?i)verbosity|'run'"):
        _run(beam_executor_operator.BeamExecutorOperator, tmp_path, MULTI)


def test_the_local_operator_makes_the_pipeline_from_the_args_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["mmoe-pipeline", "-v", "run"])
    with beam_options.local_execution():
        operator = launcher.DEFAULT_EXECUTOR_OPERATORS[executable_spec_pb2.BeamExecutableSpec]
        _run(operator, tmp_path, MULTI)
    assert launcher.DEFAULT_EXECUTOR_OPERATORS[executable_spec_pb2.BeamExecutableSpec] is \
        beam_executor_operator.BeamExecutorOperator  # restored
    assert (tmp_path / "total").read_text() == "55\n"  # written by the worker processes
    assert SumExecutor.seen["options"]["direct_running_mode"] == "multi_processing"
    assert SumExecutor.seen["options"]["direct_num_workers"] == 2
    assert SumExecutor.seen["args"] == []  # nothing for BaseBeamExecutor to package (no --extra_packages)


def test_worker_args_and_the_local_check():
    assert beam_options.worker_args(1) == ()
    assert beam_options.worker_args(3, ("--pickle_library=cloudpickle",)) == (
        "--pickle_library=cloudpickle", "--direct_running_mode=multi_processing", "--direct_num_workers=3")
    given = ("--direct_running_mode=multi_threading",)
    assert beam_options.worker_args(2, given) == given  # --beam-args wins
    portable = ("--runner=PortableRunner", "--job_endpoint=localhost:8099")
    assert beam_options.worker_args(2, portable) == portable
    beam_options.check_local((*portable, "--environment_type=LOOPBACK"))
    with pytest.raises(beam_options.BeamArgsError, match=r"runner PortableRunner without a worker environment that "
                                                         r"has this project.*--environment_type=LOOPBACK"):
        beam_options.check_local(portable)


def test_run_refuses_bad_beam_args_before_anything_runs(tmp_path):
    result = CliRunner().invoke(cli.main, ["run", "--output-dir", str(tmp_path / "out"),
                                           "--beam-args", "--runner=DataflowRunner --project=p"])
    assert result.exit_code == 2
    assert "runner DataflowRunner without a worker environment" in result.output
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(cli.main, ["run", "--output-dir", str(tmp_path / "out"), "--beam-args", "'--a=1"])
    assert result.exit_code == 2 and "cannot split \"'--a=1\" like a shell" in result.output


def test_the_default_worker_count_uses_every_core_on_large_data_only():
    assert beam_options.auto_workers(99_999, cores=8) == 1
    assert beam_options.auto_workers(100_000, cores=8) == 8
    assert beam_options.auto_workers(10 ** 6, cores=1) == 1
