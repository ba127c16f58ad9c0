"""Command line: `mmoe-pipeline run | compile | check-spec | run-spec | schedule | prepare | download | ...`.

Only click wiring: each command parses its flags and calls the functions of its concern (`pipeline.local`,
`pipeline.kubeflow`, `pipeline.reporting`, `sources`). Nothing heavy (TensorFlow, TFX, Beam) is imported
before click has parsed the command line, so `--help` and a bad flag answer at once. Keras 2 (tf_keras)
must be bound before TensorFlow is first imported: this module sets TF_USE_LEGACY_KERAS first.

Over 400 lines: the click options of twelve commands and their help texts; the commands' work lives in
the modules of its concern.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import logging  # noqa: E402
from typing import Optional, Sequence, Tuple  # noqa: E402

import click  # noqa: E402

import schemas  # noqa: E402
from components.names import DEFAULT_SPAN_FOLDER  # noqa: E402
from components.spec import load_spec  # noqa: E402
from pipeline.graph import settings  # noqa: E402
from pipeline.graph.config import (  # noqa: E402
    DEFAULT_BACKEND_ROOT,
    DEFAULT_CRON,
    DEFAULT_EVAL_STEPS,
    DEFAULT_GPU,
    DEFAULT_PIPELINE_NAME,
    DEFAULT_SEED,
    DEFAULT_TARGET,
    DEFAULT_TRAIN_STEPS,
    Orchestrator,
    Target,
    TrainerWorkers,
    TuningConfig,
)
from pipeline.kubeflow import targets  # noqa: E402
from pipeline.local import logs  # noqa: E402
from sources import census  # noqa: E402
from trainer.config import TrainerConfig, Variant  # noqa: E402


def _user_errors() -> tuple:
    """The errors that are about the user's input or a failed run: one line at the CLI, no traceback."""
    from components.schema import SchemaMismatch
    from components.spec import SpecError
    from pipeline.local.local_runner import ComponentFailed, RunLocked
    from pipeline.local.preflight import PreflightError

    return (SpecError, SchemaMismatch, PreflightError, census.IngestionError, census.ChecksumError,
            RunLocked, ComponentFailed)


class _Cli(click.Group):
    """Turns the user-facing errors of every command into `Error: <message>` and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except settings.SettingsError as e:
            if e.option:
                raise click.BadParameter(str(e), param_hint=e.option) from None
            raise click.UsageError(str(e)) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise  # --help, a bad flag: no need to import the modules `_user_errors` names
        except Exception as e:
            if isinstance(e, _user_errors()):
                raise click.ClickException(str(e)) from None
            raise
        finally:
            logs.release_loaded_models()


def _census_files(paths: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    try:
        return census.classify_inputs(paths)
    except census.IngestionError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None


@click.group(cls=_Cli)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.pass_context
def main(ctx, verbose: bool) -> None:
    """MMoE multi-task TFX pipeline on UCI Census-Income (KDD)."""
    from absl import logging as absl_logging

    ctx.obj = {"verbose": verbose}
    if ctx.invoked_subcommand == "run" and not verbose:
        # TensorFlow's C++ start-up lines (oneDNN, CUDA probing, "Unable to register cuDNN factory") bypass
        # Python logging and cannot reach the log file: the quiet console drops them. TensorFlow is not
        # imported yet (this module imports nothing heavy), so the setting holds.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # Until `run` knows its log file, every record (and warnings.warn) waits in memory.
        logs.hold_records()
    else:
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Through absl's verbosity flag, not its logger's level: TensorFlow saves a SavedModel with absl's
    # verbosity raised to FATAL and then restores the *flag*, which would silence TFX's INFO lines.
    absl_logging.set_verbosity(absl_logging.INFO)


def _beam_args_option(f):
    return click.option(
        "--beam-args", "beam_args", multiple=True, metavar="'--NAME=VALUE ...'",
        help="Beam options of every Beam component (ExampleGen, StatisticsGen, Transform, Evaluator, ...), "
             "shell-quoted, repeatable, e.g. '--runner=PortableRunner --job_endpoint=HOST:PORT "
             "--environment_type=LOOPBACK'.")(f)


def _beam_args(values: Sequence[str], local: bool = False) -> Tuple[str, ...]:
    """The Beam arguments of --beam-args; for a local run, checked to work here (`check_local`)."""
    from pipeline.graph import beam_options

    try:
        args = beam_options.parse_beam_args(values)
        if local:
            beam_options.check_local(args)
        return args
    except beam_options.BeamArgsError as e:
        raise click.BadParameter(str(e), param_hint="--beam-args") from None


def _span_options(f):
    return click.option("--num-spans", type=click.IntRange(min=1), default=1, show_default=True,
                        help="Read the newest N spans of the data root into one run.")(f)


def _run_settings(beam_args, num_spans, variant, trainer_config_path, train_steps, train_epochs,
                  early_stopping_patience, eval_steps, spec_path, schema_path, allow_anomalies, tune, tune_budget_s,
                  tune_trials, hyperparameters_uri) -> settings.RunSettings:
    """The settings of `_trainer_options`, `_span_options` and --beam-args, as `run` and `compile` share them."""
    return settings.RunSettings(
        spec_path=spec_path, schema_path=schema_path, allow_anomalies=tuple(allow_anomalies),
        trainer_config_path=trainer_config_path,
        trainer_flags={"variant": variant, "train_epochs": train_epochs,
                       "early_stopping_patience": early_stopping_patience},
        train_steps=train_steps, eval_steps=eval_steps, tune=tune, tune_budget_s=tune_budget_s,
        tune_trials=tune_trials, hyperparameters_uri=hyperparameters_uri, num_spans=num_spans, beam_args=beam_args)


def _trainer_options(f):
    options = [
        click.option("--variant", type=click.Choice([v.value for v in Variant]), default=None,
                     help="Model architecture [default: the --trainer-config file's, else "
                          f"{TrainerConfig.variant.value}]."),
        click.option("--trainer-config", "trainer_config_path", type=click.Path(exists=True, dir_okay=False),
                     default=None, help="YAML of TrainerConfig fields (experts, units, learning rate, "
                                        "loss_weighting, prediction_inputs, distribution, ...); flags override it."),
        click.option("--train-steps", type=click.IntRange(min=1), default=DEFAULT_TRAIN_STEPS, show_default=True),
        click.option("--train-epochs", type=click.IntRange(min=1), default=None,
                     help="Train this many passes over the train split instead of --train-steps (steps per epoch: "
                          "its rows // the batch) [default: the --trainer-config file's train_epochs, else "
                          "--train-steps]."),
        click.option("--early-stopping-patience", type=click.IntRange(min=1), default=None, metavar="EPOCHS",
                     help="Stop once the eval split's loss has not improved for this many epochs and keep the best "
                          "epoch's weights (recorded in the decision) [default: the --trainer-config file's, else "
                          "never]."),
        click.option("--eval-steps", type=click.IntRange(min=1), default=DEFAULT_EVAL_STEPS, show_default=True),
        click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Dataset spec YAML [default: census group 1]."),
        click.option("--schema", "schema_path", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Curated schema.pbtxt [default: the census schema for the default spec, else the "
                          "schema.pbtxt beside the spec file, else inferred from the data by SchemaGen]."),
        click.option("--allow-anomaly", "allow_anomalies", multiple=True, metavar="TYPE",
                     help="A TFDV anomaly type that does not stop the push (added to the spec's "
                          "allowed_anomalies), e.g. ENUM_TYPE_UNEXPECTED_STRING_VALUES; repeatable."),
        click.option("--tune", is_flag=True,
                     help="Run the Tuner (KerasTuner random search, scored on the eval split) before the Trainer, "
                          "which takes its best hyper-parameters."),
        click.option("--tune-budget-s", type=click.FloatRange(min=1), default=TuningConfig.budget_s,
                     show_default=True, help="--tune: start no trial after this many seconds."),
        click.option("--tune-trials", type=click.IntRange(min=1), default=TuningConfig.max_trials,
                     show_default=True, help="--tune: at most this many trials."),
        click.option("--hyperparameters", "hyperparameters_uri", default=None, metavar="DIR",
                     help="Reuse a previous Tuner's best_hyperparameters folder instead of tuning (scheduled runs)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.option("--data", "data_paths", multiple=True, type=click.Path(),
              help="census-income.data and/or census-income.test (plain or .gz), or a folder holding them. "
                   "Default: the embedded 20,000-row sample.")
@click.option("--output-dir", default="mmoe_output", show_default=True, type=click.Path(file_okay=False),
              help="Splits, artifacts, metadata and pushed models go here.")
@click.option("--splits-dir", "--data-root", "splits_dir", default=None,
              help="The data as the spec describes it, instead of --data: train/, eval/, test/ folders (default), "
                   "the files to split (spec `split: {ratios: ...}`), or span-1/, span-2/, ... folders of either "
                   "(the newest span is read). A local folder, or an s3:// or gs:// URI.")
@click.option("--pipeline-root", default=None,
              help="Where the artifacts go [default: OUTPUT/pipeline_root]; an s3:// or gs:// URI puts them in "
                   "object storage (ML Metadata, logs, the decision and the report stay in OUTPUT).")
@click.option("--serving-model-dir", default=None,
              help="Where pushed models go [default: OUTPUT/serving_model]; may be an s3:// or gs:// URI.")
@click.option("--orchestrator", type=click.Choice([o.value for o in Orchestrator]), default=Orchestrator.BEAM.value,
              show_default=True)
@click.option("--max-rows", type=click.IntRange(min=3), default=None, help="Read only the first N rows of each file.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seeds the data split and the model.")
@click.option("--skip-checksum", is_flag=True, help="Do not verify the UCI checksums (data changed on purpose).")
@click.option("--warm-start/--no-warm-start", default=False, show_default=True,
              help="Start the Trainer from the weights of the last blessed model (weights whose shape changed, "
                   "e.g. a grown vocabulary, start fresh).")
@click.option("--beam-workers", type=click.IntRange(min=1), default=None,
              help="SDK worker processes of each Beam component (Beam's multi_processing direct running) "
                   "[default: every core from 100,000 input rows on, else 1]; 1 runs the bundles in this "
                   "process.")
@_beam_args_option
@_span_options
@_trainer_options
@click.pass_context
def run(ctx, data_paths, splits_dir, pipeline_root, serving_model_dir, output_dir, orchestrator, max_rows, seed,
        skip_checksum, warm_start, beam_workers, beam_args, num_spans, variant, trainer_config_path, train_steps,
        train_epochs, early_stopping_patience, eval_steps, spec_path, schema_path, allow_anomalies, tune,
        tune_budget_s, tune_trials, hyperparameters_uri) -> None:
    """Prepare the data and run the whole pipeline on this machine.

    The console shows one line per component as it starts and ends, the Trainer's progress and
    the decision; the full log (absl, Beam, TensorFlow) is in OUTPUT/logs/run-<time>.log, and on
    the console too with -v."""
    from pipeline.local import launch

    if splits_dir and data_paths:
        raise click.UsageError("give --data or --splits-dir, not both.")
    request = launch.LocalRun(
        output_dir=output_dir,
        census_files=_census_files(data_paths) if data_paths else (None, census.SAMPLE_PATH),
        data_root=splits_dir, pipeline_root=pipeline_root, serving_model_dir=serving_model_dir,
        orchestrator=Orchestrator(orchestrator), max_rows=max_rows, seed=seed, verify_checksums=not skip_checksum,
        warm_start=warm_start, beam_workers=beam_workers,
        settings=_run_settings(_beam_args(beam_args, local=True),  # checked before anything is written
                               num_spans, variant, trainer_config_path, train_steps, train_epochs,
                               early_stopping_patience, eval_steps, spec_path, schema_path, allow_anomalies, tune,
                               tune_budget_s, tune_trials, hyperparameters_uri),
    )
    launch.run(request, click.echo, verbose=(ctx.obj or {}).get("verbose", False))


@main.command(name="schema")
@click.option("--spec", "spec_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(exists=True),
              help="A CSV file with a header row, or a folder of them (e.g. a train/ split).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the inferred schema.pbtxt.")
def schema_command(spec_path, data_path, out_path) -> None:
    """Infer a schema from CSV data with TFDV, for you to review, curate and pass as --schema."""
    from pipeline.local.preflight import infer_schema

    spec = load_spec(spec_path)
    features, rows = infer_schema(spec, data_path, out_path)
    click.echo(f"Wrote {out_path}: {features} features inferred from {rows} rows. Review it before use: every "
               "column seen in all rows is required, and string domains list only the values seen.")


@main.command(name="report")
@click.argument("output_dir", default="mmoe_output", type=click.Path(file_okay=False, exists=True))
def report_command(output_dir) -> None:
    """Write OUTPUT_DIR/report.html: decision, AUC per slice, calibration, gates, training curves, data, lineage."""
    from pipeline.reporting import html_report

    try:
        click.echo(f"Wrote {html_report.build(os.path.abspath(output_dir))}")
    except html_report.ReportError as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.option("--test", "test_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The official census-income.test (plain or .gz).")
@click.option("--rows", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--output", default=census.SAMPLE_PATH, show_default=True, type=click.Path(dir_okay=False))
def sample(test_path, rows, output) -> None:
    """Rebuild the embedded sample from the official test file."""
    census.verify_checksum(test_path)
    digest = census.write_sample(test_path, output, rows)
    click.echo(f"Wrote {rows} rows to {output}; SHA-256 of its content: {digest}")


@main.command()
@click.option("--dest", default="data", show_default=True, type=click.Path(file_okay=False))
@click.option("--base-url", default=census.UCI_BASE_URL, show_default=True)
def download(dest, base_url) -> None:
    """Download the official UCI files and verify their checksums."""
    for path in census.download(dest, base_url):
        click.echo(f"verified {path}")


def _parse_selector(ctx, param, values) -> dict:
    selector = {}
    for value in values:
        key, sep, label = value.partition("=")
        if not sep or not key or not label:
            raise click.BadParameter(f"received {value!r}; expected KEY=VALUE, e.g. "
                                     "cloud.google.com/gke-accelerator=nvidia-tesla-t4.")
        selector[key] = label
    return selector


def _kubeflow_options(f):
    options = [
        click.option("--target", type=click.Choice([t.value for t in Target]), default=DEFAULT_TARGET.value,
                     show_default=True,
                     help="; ".join(f"{p.target.value}: {p.summary} ({p.suffixes[0]})" for p in targets.PROFILES.values())
                     + "."),
        click.option("--pipeline-root", required=True, help="Artifact root, e.g. gs://bucket/mmoe/root."),
        click.option("--data-root", required=True,
                     help="The data as the spec describes it: train/, eval/, test/ folders, or the files to split "
                          "(see `prepare`); with --span-folder, one such folder per span."),
        click.option("--span-folder", default=None, metavar="PATTERN",
                     help=f"The data root's span folders, e.g. {DEFAULT_SPAN_FOLDER!r}: each run "
                          "reads the newest span (resolved by ExampleGen's executor, on every target)."),
        click.option("--warm-start/--no-warm-start", default=True, show_default=True,
                     help="Start each scheduled Trainer from the last blessed model's weights."),
        click.option("--serving-model-dir", required=True, help="Where the Pusher writes blessed models."),
        click.option("--image", required=True, help="Container image with this project installed (see Dockerfile)."),
        click.option("--output", default=None, type=click.Path(dir_okay=False),
                     help="Compiled file [default: "
                          + ", ".join(f"{p.default_output} for {p.target.value}" for p in targets.PROFILES.values())
                          + "]."),
        click.option("--gpus", type=click.IntRange(min=0), default=DEFAULT_GPU.accelerator_count, show_default=True,
                     help="GPUs requested by the Trainer (0 for none)."),
        click.option("--gpu-type", default=None,
                     help="Accelerator type [default: " + ", ".join(
                         f"{p.gpu_type} ({p.gpu_type_meaning}) for {p.target.value}" for p in targets.PROFILES.values())
                     + "]."),
        click.option("--gpu-node-selector", multiple=True, callback=_parse_selector, metavar="KEY=VALUE",
                     help="kfp: node label the Trainer's pods need (the GPU model), repeatable."),
        click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Trainer replicas (chief + workers), each with --gpus GPUs: a TFJob on kfp, "
                          "Vertex AI worker pools on vertex; 1 trains in the Trainer's own pod."),
        click.option("--namespace", default=None,
                     help="Kubernetes namespace of the runs: on multi-user Kubeflow the profile namespace where "
                          "`schedule` creates the pipeline and experiment; with --workers > 1 the TFJob's "
                          f"[default: single-user; TFJobs in {TrainerWorkers.namespace}]."),
        click.option("--vertex-project", default="", help="vertex, --workers > 1: Google Cloud project."),
        click.option("--vertex-region", default=TrainerWorkers.vertex_region, show_default=True),
        click.option("--machine-type", default=TrainerWorkers.machine_type, show_default=True,
                     help="vertex, --workers > 1: machine type of every replica."),
        click.option("--tfjob-timeout-s", type=click.FloatRange(min=0), default=TrainerWorkers.timeout_s,
                     show_default=True,
                     help="kfp, --workers > 1: the TFJob may take this long, Pending included (0: no limit); "
                          "then it is deleted and the Trainer fails."),
        click.option("--s3-endpoint", default="", metavar="URL",
                     help="kfp, s3:// roots: the store's endpoint in every task (S3_ENDPOINT, AWS_ENDPOINT_URL), "
                          "e.g. http://minio-service.kubeflow:9000 for Kubeflow's MinIO."),
        click.option("--s3-secret", default="", metavar="NAME",
                     help="kfp, s3:// roots: Kubernetes secret whose accesskey/secretkey become AWS_ACCESS_KEY_ID/"
                          "AWS_SECRET_ACCESS_KEY in every task, e.g. mlpipeline-minio-artifact."),
        _beam_args_option,
        _span_options,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _compile(target, pipeline_root, data_root, span_folder, warm_start, serving_model_dir, image, output, gpus,
             gpu_type, gpu_node_selector, workers, namespace, vertex_project, vertex_region, machine_type,
             tfjob_timeout_s, s3_endpoint, s3_secret, beam_args, num_spans, variant, trainer_config_path, train_steps,
             train_epochs, early_stopping_patience, eval_steps, spec_path, schema_path, allow_anomalies, tune,
             tune_budget_s, tune_trials, hyperparameters_uri) -> str:
    from pipeline.kubeflow import compile as kfp_compile

    request = kfp_compile.CompileRequest(
        target=Target(target), pipeline_root=pipeline_root, data_root=data_root, serving_model_dir=serving_model_dir,
        image=image, output=output, span_folder=span_folder, warm_start=warm_start, gpus=gpus,
        gpu_type=gpu_type, gpu_node_selector=gpu_node_selector, workers=workers, namespace=namespace,
        vertex_project=vertex_project, vertex_region=vertex_region, machine_type=machine_type,
        tfjob_timeout_s=tfjob_timeout_s, s3_endpoint=s3_endpoint, s3_secret=s3_secret,
        settings=_run_settings(_beam_args(beam_args), num_spans, variant, trainer_config_path, train_steps,
                               train_epochs, early_stopping_patience, eval_steps, spec_path, schema_path,
                               allow_anomalies, tune, tune_budget_s, tune_trials, hyperparameters_uri),
    )
    try:
        return kfp_compile.compile_package(request)
    except kfp_compile.CompileError as e:
        raise click.ClickException(str(e)) from None


@main.command(name="compile")
@_kubeflow_options
@_trainer_options
def compile_command(**kwargs) -> None:
    """Compile the pipeline for Kubeflow Pipelines (--target kfp) or Vertex AI (--target vertex)."""
    click.echo(f"Wrote {_compile(**kwargs)}")


@main.command(name="check-spec")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
def check_spec(package) -> None:
    """Check a compiled package against what open-source Kubeflow Pipelines supports."""
    from pipeline.kubeflow import spec_check

    try:
        spec, violations = spec_check.load_package(package)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    violations += spec_check.check(spec)
    if violations:
        raise click.ClickException(str(spec_check.SpecConformanceError(package, violations)))
    click.echo(f"{package}: {len(spec.root.dag.tasks)} tasks conform to open-source Kubeflow Pipelines "
               f"({len(spec_check.RULES)} rules).")


@main.command(name="run-spec")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option("--pipeline-root", default=None,
              help="The run's pipeline root (its runtime config) [default: the package's defaultPipelineRoot, "
                   "as `schedule` submits it]; outputs go under PIPELINE_ROOT/PIPELINE/RUN_ID/<task>/<uuid>/.")
@click.option("--work-dir", default="run-spec", show_default=True, type=click.Path(file_okay=False),
              help="Local folder: each task's pod folder and log, and the ML Metadata records (cache) kept "
                   "from run to run.")
@click.option("--run-id", default=None, help="The run's id [default: run-<time>-<random>].")
@click.option("--publish-logs/--no-publish-logs", default=True, show_default=True,
              help="The driver's log publishing (an executor-logs output in every task), on by default in KFP.")
@click.option("--launcher-default-root", default=None,
              help="The namespace's kfp-launcher defaultPipelineRoot, used when the run has no root "
                   f"[default: none, so {DEFAULT_BACKEND_ROOT}].")
@click.option("--decision", "decision_path", default=None, type=click.Path(dir_okay=False),
              help="Where to write the push decision JSON [default: WORK_DIR/RUN_ID/decision.json].")
def run_spec_command(package, pipeline_root, work_dir, run_id, publish_logs, launcher_default_root,
                     decision_path) -> None:
    """Run a compiled --target kfp package here as open-source Kubeflow Pipelines runs it, task by task,
    through each task's own container command."""
    import json

    from components import object_store
    from pipeline.kubeflow import spec_check, spec_runner
    from pipeline.reporting import report

    try:
        object_store.enable([pipeline_root or "", launcher_default_root or ""])
        runner = spec_runner.run_spec(package, work_dir, pipeline_root=pipeline_root, run_id=run_id,
                                      publish_logs=publish_logs, launcher_default_root=launcher_default_root)
    except (spec_check.SpecConformanceError, spec_runner.TaskFailed, object_store.ObjectStoreError) as e:
        raise click.ClickException(str(e)) from None
    for result in runner.results.values():
        click.echo(f"  {result.name:<20} {'cached' if result.cached else f'{result.seconds:7.1f} s'}")
    decision = spec_runner.decision(runner)
    decision_path = decision_path or os.path.join(runner.work_dir, "decision.json")
    with open(decision_path, "w") as f:
        json.dump(decision, f, indent=2, sort_keys=True)
    click.echo("\n".join(report.format_decision(decision)))
    click.echo(f"Decision:     {decision_path}")


@main.command()
@_kubeflow_options
@_trainer_options
@click.option("--host", required=True, help="Kubeflow Pipelines API endpoint, e.g. http://localhost:8080.")
@click.option("--cron", default=DEFAULT_CRON, show_default=True, help="6-field cron (seconds first).")
@click.option("--experiment", default=DEFAULT_PIPELINE_NAME, show_default=True)
@click.option("--job-name", default=f"{DEFAULT_PIPELINE_NAME}-daily", show_default=True)
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="File holding the bearer token (e.g. a projected service-account token); default: "
                   "$KF_PIPELINES_TOKEN if set, else no token.")
@click.option("--insecure", is_flag=True, help="Allow plain http:// to a host other than localhost.")
def schedule(host, cron, experiment, job_name, token_file, insecure, **kwargs) -> None:
    """Compile for open-source Kubeflow Pipelines, upload, and create a recurring run."""
    from pipeline.kubeflow import kubeflow_v2_runner as kfp_runner
    from pipeline.kubeflow import schedule as kfp_schedule

    if Target(kwargs["target"]) is not Target.KFP:
        raise click.UsageError("schedule uploads to open-source Kubeflow Pipelines: use --target kfp.")
    try:
        kfp_runner.validate_cron(cron)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--cron") from None
    try:
        kfp_schedule.check_transport(host, insecure)
    except kfp_schedule.SchedulingError as e:
        raise click.BadParameter(str(e), param_hint="--host") from None
    package = _compile(**kwargs)
    try:
        client = kfp_schedule.connect(host, kwargs["namespace"], token_file, insecure)
        scheduled = kfp_schedule.schedule(client, host, package, cron, experiment, job_name,
                                          namespace=kwargs["namespace"])
    except kfp_schedule.SchedulingError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Scheduled {job_name} ({cron}) on {host}: recurring run {scheduled.recurring_run_id}, "
               f"pipeline {scheduled.pipeline_id} version {scheduled.version_id}"
               + (f"; replaced recurring run(s) {', '.join(scheduled.replaced)} of the same name"
                  if scheduled.replaced else ""))


@main.command()
@click.option("--data", "data_paths", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--skip-checksum", is_flag=True)
@click.option("--span", "as_span", is_flag=True,
              help="Write a new span of --output-dir (span-N/, N one more than the newest), complete or not at all.")
def prepare(data_paths, output_dir, spec_path, seed, skip_checksum, as_span) -> None:
    """Write the data as the pipeline reads it: the train/eval/test splits of the UCI census files or,
    for a spec that splits in the pipeline (`split: {ratios: ...}`), the files as they are."""
    import contextlib

    from components import example_gen

    spec = load_spec(spec_path or schemas.path(*settings.DEFAULT_SPEC))
    if not spec.split.in_pipeline:
        _census_files(data_paths)  # a bad --data fails before a span is staged
    with (example_gen.staged_span(output_dir) if as_span else contextlib.nullcontext((output_dir, output_dir))) as (
            folder, target):
        summary = census.write_inputs(spec, folder, data_paths, seed=seed, verify=not skip_checksum)
    click.echo(f"Wrote {summary} to {target}")


@main.command()
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--rows", type=click.IntRange(min=10), default=20000, show_default=True)
@click.option("--dim", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--correlation", type=click.FloatRange(-1, 1), default=0.5, show_default=True,
              help="Cosine p between the two tasks' weight vectors (MMoE paper, section 3.2).")
@click.option("--seed", type=int, default=0, show_default=True)
def synthetic(output_dir, rows, dim, correlation, seed) -> None:
    """Write the MMoE paper's synthetic two-task data as a pipeline data source."""
    from sources import synthetic as synthetic_data

    splits, spec_path, schema_path = synthetic_data.write_dataset(output_dir, rows, dim, correlation, seed)
    click.echo(f"mmoe-pipeline run --spec {spec_path} --schema {schema_path} --splits-dir {splits}")


def entrypoint() -> None:
    """The console script: `main`, then an exit that survives tensorflow-io's shutdown bug once s3://
    was used (`components.object_store.exit_now`)."""
    from components import object_store

    try:
        main()
    except SystemExit as e:
        object_store.exit_now(e.code if isinstance(e.code, int) else (0 if e.code is None else 1))


if __name__ == "__main__":
    entrypoint()
