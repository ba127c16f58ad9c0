"""Names shared by the pipeline, its components and the trainer: one place for each.

Nothing here imports TensorFlow or Keras, so building or compiling the pipeline
(which reads these names) does not load the model code.
"""

from __future__ import annotations

from typing import Any, Mapping

from components.spec import DatasetSpec

# custom_config keys of Transform and Trainer.
SPEC_KEY = "spec"  # the DatasetSpec as a dict
TRAINER_CONFIG_KEY = "trainer"  # the TrainerConfig as a dict
TUNING_KEY = "tuning"  # the Tuner's search budget: {"budget_s": ..., "max_trials": ...}

# Import paths of the user functions TFX loads in its executors.
PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "trainer.run.run_fn"
TUNER_FN = "trainer.tuning.tuner_fn"
# Transform traces PREPROCESSING_FN into a TF1 graph (tf.compat.v1), not TF2 tf.functions: the same
# transformed data and vocabularies, and on the full census test file Transform took 18 s instead of 28 s,
# the Trainer and ServingCheck (which load the transform graph) less too (docs/BENCHMARKS.md). The tests'
# own tf.Transform runs use the same mode.
TRANSFORM_TF_COMPAT_V1 = True

# The exported SavedModel.
SERVING_SIGNATURE = "serving_default"  # serialized raw tf.Examples -> one output per task
TRANSFORM_SIGNATURE = "transform_features"  # serialized raw tf.Examples with labels -> transformed
EXAMPLES_INPUT = "examples"  # the input name of both signatures

# Files the Trainer writes beside its TensorBoard logs (model-run folder).
GATE_STATS_FILE = "gate_stats.json"
WARM_START_FILE = "warm_start.json"  # base model, weights loaded and re-initialised, initial losses
TRAINER_CONFIG_FILE = "trainer_config.json"  # the spec's tasks and the TrainerConfig the Trainer used (tuned)

# The Trainer's progress log record (epoch, step, steps, loss, examples/s): the CLI's progress
# line reads its arguments.
TRAINING_PROGRESS = "epoch %d step %d/%d loss=%.4f (%.0f examples/s)"

# How long a multi-worker Trainer's TFJob may take, Pending included (--tfjob-timeout-s).
DEFAULT_TFJOB_TIMEOUT_S = 24 * 3600.0

# Span folders of a data root: one folder per span, its number where {SPAN} is.
SPAN_TOKEN = "{SPAN}"
DEFAULT_SPAN_FOLDER = "span-{SPAN}"

# Custom property of the Examples, the InfraBlessing and the PushedModel: the data spans read,
# newest first, comma-separated.
SPANS_PROPERTY = "spans"


def encode_spans(spans) -> str:
    """`SPANS_PROPERTY`'s value for `spans` (newest first)."""
    return ",".join(str(int(s)) for s in spans)


def decode_spans(value: str) -> list:
    """The spans an `encode_spans` value holds."""
    return [int(s) for s in value.split(",") if s]

# Artifact file names TFX's components write, which several of ours read.
STATISTICS_FILE = "FeatureStats.pb"  # StatisticsGen's (and SpanDrift's history) under each Split-<name>/
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's (and SpanDrift's) under each Split-<name>/
SCHEMA_FILE = "schema.pbtxt"  # SchemaGen's and ImportSchemaGen's; the curated schema beside a spec

# Component ids that code outside the pipeline module looks up (reports, launchers).
EXAMPLE_GEN_COMPONENT = "CsvExampleGen"  # components.example_gen.CsvExampleGen, named after its class
SCHEMA_GEN_COMPONENT = "SchemaGen"  # only without a curated schema: the schema inferred from the data
DRIFT_COMPONENT = "SpanDrift"  # this span's statistics against the previous span's
TUNER_COMPONENT = "Tuner"  # with tuning: KerasTuner over the model's hyper-parameters
HYPERPARAMETERS_IMPORTER = "HyperparametersImporter"  # a previous Tuner's best hyper-parameters, reused
SCHEMA_COMPONENT = "SpecSchema"  # the curated schema, checked against and adjusted to the spec
SERVING_BASELINE_COMPONENT = "ServingBaseline"  # the model in serving: the Evaluator's baseline, warm start's base
STATISTICS_GEN_COMPONENT = "StatisticsGen"  # TFX's, on every split
EXAMPLE_VALIDATOR_COMPONENT = "ExampleValidator"  # TFX's: every split's statistics against the schema
TRANSFORM_COMPONENT = "Transform"  # TFX's, with components.preprocessing's preprocessing_fn
TRAINER_COMPONENT = "Trainer"  # TFX's, with trainer.run's run_fn (or the TFJob executor)
EVALUATOR_COMPONENT = "Evaluator"  # TFX's TFMA evaluation against the serving baseline
SERVING_CHECK_COMPONENT = "ServingCheck"  # components.serving_check: raw examples through serving_default
PUSHER_COMPONENT = "Pusher"  # TFX's, with components.pusher's executor


def spec_from_custom_config(custom_config: Mapping[str, Any], component: str) -> DatasetSpec:
    """The DatasetSpec the pipeline put in a component's custom_config."""
    if not custom_config or SPEC_KEY not in custom_config:
        raise ValueError(
            f"{component}: custom_config has no {SPEC_KEY!r} entry (received keys "
            f"{sorted(custom_config or {})}); build the pipeline with pipeline.create_pipeline, "
            "which passes the dataset spec to Transform and Trainer."
        )
    return DatasetSpec.from_dict(custom_config[SPEC_KEY], where=f"{component} custom_config")
