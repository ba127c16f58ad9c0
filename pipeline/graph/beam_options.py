"""Beam options of the Beam-powered components (ExampleGen, StatisticsGen, Transform, Evaluator, ...).

Every Beam component runs its own Beam pipeline with the pipeline's ``beam_pipeline_args``:

* **Locally** (`run`), with Beam's in-process runner: ``--beam-workers N`` runs each component's
  bundles in N SDK worker processes (``--direct_running_mode=multi_processing``); ``--beam-args``
  adds any Beam option, e.g. ``--runner=PortableRunner --job_endpoint=localhost:8099
  --environment_type=LOOPBACK`` for a job service. TFX's own executor operator gives a component
  these options through ``BaseBeamExecutor``, which then (1) builds and stages a source package of
  TFX alone for remote workers (``dependency_utils.make_beam_dependency_flags``: seconds per
  component and a package left in the temp folder) and (2) parses the whole process command line
  with absl (``flags.FLAGS(sys.argv + ...)``, b/174174381), where ``mmoe-pipeline -v`` is absl's
  verbosity flag and fails. `local_execution` runs the run's Beam components through
  `LocalBeamExecutorOperator` instead: the same executor, its Beam pipeline made from the options
  alone, through ``BaseBeamExecutor``'s own ``make_beam_pipeline_fn`` hook.
* **Compiled** (`compile --beam-args`): the options go into each Beam task's container arguments,
  where TFX's executor reads them as usual. A remote runner's workers need this project (its DoFns
  and ``preprocessing_fn``): `with_worker_image` points them at the pipeline's own image.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

# Runners that run the bundles on this machine, in this interpreter's environment.
DIRECT_RUNNERS = ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")
PORTABLE_RUNNERS = ("PortableRunner", "FlinkRunner", "SparkRunner")
# The Beam options through which a remote worker gets its code: with one of them TFX does not build
# its own package (tfx.utils.dependency_utils.make_beam_dependency_flags).
DEPENDENCY_FLAGS = ("extra_packages", "setup_file", "requirements_file", "worker_harness_container_image",
                    "sdk_container_image")


class BeamArgsError(ValueError):
    """A Beam argument given on the command line that cannot work."""


def default_workers() -> int:
    """The machine's cores (the scheduler's CPUs for this process where it knows them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# Below this many input rows a local run's Beam components run in-process: each SDK worker process
# imports TensorFlow and TFX again for every component, which on the 20,000-row sample made ExampleGen,
# StatisticsGen and Transform 1.5-3x slower with 2 workers; at 300,000 rows 2 workers took 0.54-0.8x
# their time (docs/BENCHMARKS.md, "Scale").
AUTO_WORKERS_MIN_ROWS = 100_000


def auto_workers(rows: int, cores: Optional[int] = None) -> int:
    """`--beam-workers`' default: every core for `rows` >= `AUTO_WORKERS_MIN_ROWS` input rows, else 1."""
    return (cores or default_workers()) if rows >= AUTO_WORKERS_MIN_ROWS else 1


def parse_beam_args(values: Iterable[str], option: str = "--beam-args") -> Tuple[str, ...]:
    """Beam's ``--name=value`` arguments from `values` (each a shell-quoted string of one or more)."""
    args: List[str] = []
    for value in values:
        try:
            args.extend(shlex.split(value))
        except ValueError as e:
            raise BeamArgsError(f"{option}: cannot split {value!r} like a shell: {e}.") from None
    for arg in args:
        if not arg.startswith("--") or len(arg) < 3:
            raise BeamArgsError(
                f"{option}: received {arg!r}; Beam options are --name=value (e.g. --runner=PortableRunner "
                "--job_endpoint=localhost:8099); quote several as one value: --beam-args \"--a=1 --b=2\".")
    return tuple(args)


def _options(args: Sequence[str]) -> dict:
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(list(args)).get_all_options(drop_default=True)


def _runner(options: dict) -> Optional[str]:
    """The runner `options` name (``--runner``), None for Beam's default (the direct runner)."""
    runner = options.get("runner")
    if runner is None:
        return None
    return runner if isinstance(runner, str) else type(runner).__name__


def worker_args(workers: int, args: Sequence[str] = ()) -> Tuple[str, ...]:
    """`args` with the direct runner's options for `workers` SDK worker processes: nothing for one
    (Beam's in-memory mode), ``multi_processing`` for more. With another runner in `args`, or direct
    running options already there, `args` unchanged (``--beam-args`` wins)."""
    if workers < 1:
        raise BeamArgsError(f"--beam-workers: received {workers}; expected 1 or more processes.")
    options = _options(args)
    if workers == 1 or _runner(options) not in (None, *DIRECT_RUNNERS) \
            or {"direct_running_mode", "direct_num_workers"} & set(options):
        return tuple(args)
    return (*args, "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


def check_local(args: Sequence[str]) -> None:
    """Refuses, for a local run, a remote runner whose workers would not have this project: a local
    run does not package it (see the module docstring)."""
    options = _options(args)
    runner = _runner(options)
    if runner in (None, *DIRECT_RUNNERS):
        return
    if options.get("environment_type") in ("LOOPBACK", "EXTERNAL", "PROCESS") or options.get("environment_config") \
            or any(options.get(flag) for flag in DEPENDENCY_FLAGS):
        return
    raise BeamArgsError(
        f"--beam-args: runner {runner} without a worker environment that has this project; its workers would "
        "not find the pipeline's DoFns. Add --environment_type=LOOPBACK (a job service on this machine), "
        "--sdk_container_image=IMAGE (Dataflow) or --environment_type=DOCKER --environment_config=IMAGE (the image "
        "built from this project's Dockerfile).")


def with_worker_image(args: Sequence[str], image: str) -> Tuple[str, ...]:
    """`args` for a compiled pipeline: a remote runner's workers run `image` (the pipeline's own, with
    this project installed) unless the options already say how they get their code.

    ``--sdk_container_image`` is Dataflow's worker image, and with it TFX does not stage a package
    of TFX alone (which lacks this project); a portable runner (Flink, Spark) with a Docker
    environment takes the image as ``--environment_config``."""
    options = _options(args)
    runner = _runner(options)
    if runner in (None, *DIRECT_RUNNERS):
        return tuple(args)
    added: List[str] = []
    if not any(options.get(flag) for flag in DEPENDENCY_FLAGS):
        added.append(f"--sdk_container_image={image}")
    if runner in PORTABLE_RUNNERS and options.get("environment_type", "DOCKER") == "DOCKER" \
            and not options.get("environment_config"):
        added += ["--environment_type=DOCKER", f"--environment_config={image}"]
    if added:
        logging.info("Beam runner %s: workers run the pipeline's image (%s).", runner, " ".join(added))
    return (*args, *added)


def _local_operator():
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx.orchestration.portable import beam_executor_operator

    class LocalBeamExecutorOperator(beam_executor_operator.BeamExecutorOperator):
        """TFX's BeamExecutorOperator for a local run: the executor gets no ``beam_pipeline_args``
        (so ``BaseBeamExecutor`` neither packages TFX nor parses ``sys.argv`` with absl) and makes its
        Beam pipeline from them through ``make_beam_pipeline_fn``, as ``BaseBeamExecutor`` would."""

        def run_executor(self, execution_info, make_beam_pipeline_fn=None):
            from tfx.dsl.compiler import placeholder_utils

            context = placeholder_utils.ResolutionContext(
                exec_info=execution_info, executor_spec=self._executor_spec, platform_config=self._platform_config)
            args = [placeholder_utils.resolve_placeholder_expression(arg, context) for arg in self.beam_pipeline_args]
            self.beam_pipeline_args = []
            make = make_beam_pipeline_fn or (lambda: beam.Pipeline(options=PipelineOptions(args)))
            return super().run_executor(execution_info, make_beam_pipeline_fn=make)

    return LocalBeamExecutorOperator


@contextlib.contextmanager
def local_execution() -> Iterator[None]:
    """Within it, TFX's launchers (BeamDagRunner's and LocalDagRunner's, which take their executor
    operators from ``launcher.DEFAULT_EXECUTOR_OPERATORS`` and offer no other way to change them)
    run Beam components through `LocalBeamExecutorOperator`."""
    from tfx.orchestration.portable import launcher
    from tfx.proto.orchestration import executable_spec_pb2

    key = executable_spec_pb2.BeamExecutableSpec
    previous = launcher.DEFAULT_EXECUTOR_OPERATORS[key]
    launcher.DEFAULT_EXECUTOR_OPERATORS[key] = _local_operator()
    try:
        yield
    finally:
        launcher.DEFAULT_EXECUTOR_OPERATORS[key] = previous
