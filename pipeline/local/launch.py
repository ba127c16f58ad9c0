"""`mmoe-pipeline run`'s work, once click has parsed its flags: the data root (prepared census splits or
the given folder), the schema, the preflight checks, the Beam workers, the run itself on this machine,
and the summary, report and decision it leaves.

Errors about a flag are `pipeline.graph.settings.SettingsError` naming the flag; the rest are the
project's user errors (preflight, spec, a failed component), each one line at the command line."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from typing import Callable, Optional, Tuple

from pipeline.graph import settings
from pipeline.graph.config import Orchestrator
from pipeline.local import logs
from sources import census


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """What `run` was asked for (its flags, parsed)."""

    output_dir: str
    census_files: Tuple[Optional[str], Optional[str]] = (None, census.SAMPLE_PATH)  # (data, test) to prepare
    data_root: Optional[str] = None  # --data-root: the data as the spec describes it, instead of census files
    pipeline_root: Optional[str] = None
    serving_model_dir: Optional[str] = None
    orchestrator: Orchestrator = Orchestrator.BEAM
    max_rows: Optional[int] = None
    seed: int = 0
    verify_checksums: bool = True
    warm_start: bool = False
    beam_workers: Optional[int] = None
    # Shared with `compile`; its Beam arguments checked to run here (`beam_options.check_local`).
    settings: settings.RunSettings = settings.RunSettings()


def _data_root(request: LocalRun, spec, output_dir: str) -> str:
    from tfx.dsl.io import fileio

    from components import object_store

    if request.data_root:
        root = request.data_root
        data_root = root if object_store.is_remote(root) else os.path.abspath(root)
        if not fileio.isdir(data_root):
            raise settings.SettingsError(f"{root} is no folder (or holds no objects).", "--data-root")
        return data_root
    data_file, test_file = request.census_files
    return census.prepare(spec, os.path.join(output_dir, "data"), data_path=data_file, test_path=test_file,
                          seed=request.seed, max_rows=request.max_rows, verify=request.verify_checksums).root


def run(request: LocalRun, echo: Callable[[str], None], verbose: bool = False) -> str:
    """Runs the pipeline on this machine as `request` says, telling the user through `echo`; returns the
    decision file's path."""
    from components import example_gen, object_store
    from pipeline.graph import beam_options
    from pipeline.local import local_runner, preflight
    from pipeline.reporting import html_report, report

    shared = request.settings
    spec = shared.spec()
    output_dir = os.path.abspath(request.output_dir)
    for option, uri in (("--data-root", request.data_root), ("--pipeline-root", request.pipeline_root),
                        ("--serving-model-dir", request.serving_model_dir)):
        try:
            object_store.enable([uri])
        except object_store.ObjectStoreError as e:
            raise settings.SettingsError(str(e), option) from None
    log_path = logs.log_to_file(output_dir)
    echo(f"Log:          {log_path}")
    data_root = _data_root(request, spec, output_dir)
    schema_path = shared.schema_path or settings.default_schema(shared.spec_path)
    schema_path = os.path.abspath(schema_path) if schema_path else None
    span_folder = example_gen.detect_span_folder(data_root)
    if shared.num_spans > 1 and not span_folder:
        raise settings.SettingsError(f"{data_root} holds no span-N folders; --num-spans needs spans.", "--num-spans")
    selection, summaries = preflight.check_inputs(spec, schema_path, data_root, span_folder, shared.num_spans)
    counts = {s: summary.rows for s, summary in summaries.items()}
    logging.info("Preflight: spec, schema and data agree; rows per input split %s.", counts)
    workers = request.beam_workers or beam_options.auto_workers(sum(counts.values()))
    beam_args = beam_options.worker_args(workers, shared.beam_args)
    logging.info("Beam components: %d worker process(es)%s; Beam arguments %s.", workers,
                 "" if request.beam_workers else " (--beam-workers default for this data)", list(beam_args))
    hyperparameters = shared.hyperparameters_uri
    config = local_runner.local_config(
        output_dir, data_root, spec, schema_path, pipeline_root=request.pipeline_root,
        serving_model_dir=request.serving_model_dir,
        trainer=shared.trainer(seed=request.seed), train_steps=shared.train_steps, eval_steps=shared.eval_steps,
        span_folder=span_folder,
        num_spans=shared.num_spans, warm_start=request.warm_start, beam_pipeline_args=beam_args,
        **shared.tuning(os.path.abspath(hyperparameters) if hyperparameters else None),
    )
    if not verbose:
        from pipeline.local.progress import ConsoleProgress

        # The console shows `ConsoleProgress` lines only; everything else goes to the log file alone.
        logging.getLogger().addHandler(ConsoleProgress(config, echo, live=sys.stdout.isatty()))
    spans = f"span {selection.span}" + (f" (with {list(selection.spans[1:])})" if len(selection.spans) > 1 else "")
    echo(f"Pipeline {config.pipeline_name}: {spans + ', ' if span_folder else ''}input checked ({counts}), "
         f"{'schema ' + schema_path if schema_path else 'schema inferred from the data (SchemaGen)'}, "
         f"artifacts under {config.pipeline_root}")
    start = time.monotonic()
    decision_path = os.path.join(output_dir, local_runner.DECISION_FILE)
    try:
        decision = local_runner.run(config, request.orchestrator, decision_path)
    except local_runner.ComponentFailed as e:
        raise local_runner.ComponentFailed(f"{e}\nFull log: {log_path}") from None
    seconds = time.monotonic() - start
    if not verbose:
        logging.info("Summary:\n%s", report.summary(config, seconds, decision))
    echo(report.summary(config, seconds, decision, detailed=verbose))
    echo(f"Report:       {html_report.build(output_dir)}")
    echo(f"Decision:     {decision_path}")
    return decision_path
