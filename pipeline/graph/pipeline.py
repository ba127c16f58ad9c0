"""`create_pipeline(config)`: the TFX component graph, built from small stage builders.

CsvExampleGen (the spec's CSV format, the newest span or spans, split as the spec says) ->
StatisticsGen -> [SchemaGen, without a curated schema] -> SpecSchema (the schema, checked
against and adjusted to the spec) -> ExampleValidator and SpanDrift (against the previous
span) -> Transform -> Trainer (warm-started from the baseline with `warm_start`) ->
Evaluator (against the last blessed model) and ServingCheck (the model serves, the data has
no anomalies and has not drifted) -> Pusher (only with both blessings).
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base import base_node, executor_spec

from components import baseline as serving_baseline
from components import example_gen as spec_example_gen
from components import pusher as idempotent_pusher
from components import tfjob_trainer
from components.drift import SpanDrift
from components.eval_config import build_eval_config
from components.names import (
    DRIFT_COMPONENT,
    EVALUATOR_COMPONENT,
    EXAMPLE_GEN_COMPONENT,
    EXAMPLE_VALIDATOR_COMPONENT,
    HYPERPARAMETERS_IMPORTER,
    PREPROCESSING_FN,
    PUSHER_COMPONENT,
    RUN_FN,
    SCHEMA_COMPONENT,
    SCHEMA_GEN_COMPONENT,
    SERVING_BASELINE_COMPONENT,
    SERVING_CHECK_COMPONENT,
    SPEC_KEY,
    STATISTICS_GEN_COMPONENT,
    TRAINER_COMPONENT,
    TRAINER_CONFIG_KEY,
    TRANSFORM_COMPONENT,
    TRANSFORM_TF_COMPAT_V1,
    TUNER_COMPONENT,
    TUNER_FN,
    TUNING_KEY,
)
from components.schema import SpecSchema
from components.serving_check import ServingCheck
from components.spec import SPLIT_NAMES
from pipeline.graph.config import KFP_GPU_RESOURCE, PipelineConfig, ResourceRequest, WorkerBackend

TRAIN, EVAL, TEST = SPLIT_NAMES


def _spec_config(config: PipelineConfig) -> dict:
    return {SPEC_KEY: config.spec.to_dict()}


class DataStage(NamedTuple):
    """The nodes of `data_stage`; `schema_gen` is None with a curated schema."""

    example_gen: base_node.BaseNode
    statistics_gen: base_node.BaseNode
    schema_gen: Optional[base_node.BaseNode]
    schema: base_node.BaseNode
    example_validator: base_node.BaseNode
    drift: base_node.BaseNode
    transform: base_node.BaseNode

    @property
    def nodes(self) -> List[base_node.BaseNode]:
        return [n for n in self if n is not None]


def data_stage(config: PipelineConfig) -> DataStage:
    """ExampleGen through Transform (SchemaGen only without a curated schema)."""
    spec = config.spec
    example_gen = spec_example_gen.CsvExampleGen(
        input_base=config.data_root,
        input_config=spec_example_gen.input_config(spec, config.span_folder),
        output_config=spec_example_gen.output_config(spec),
        custom_config=spec_example_gen.custom_config(spec, config.span_folder, config.num_spans),
    ).with_id(EXAMPLE_GEN_COMPONENT)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(
        STATISTICS_GEN_COMPONENT)
    inferred = None
    if config.schema_path is None:
        inferred = tfx.components.SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False,
        ).with_id(SCHEMA_GEN_COMPONENT)
    schema_gen = SpecSchema(
        schema_file=config.schema_path or "", spec_json=spec.to_json(),
        **({"inferred": inferred.outputs["schema"], "statistics": statistics_gen.outputs["statistics"]}
           if inferred else {}),
    ).with_id(SCHEMA_COMPONENT)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id(EXAMPLE_VALIDATOR_COMPONENT)
    drift = SpanDrift(
        statistics=statistics_gen.outputs["statistics"], examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"], history_dir=config.drift_history_dir, spec_json=spec.to_json(),
    ).with_id(DRIFT_COMPONENT)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(analyze=[TRAIN], transform=[TRAIN, EVAL]),
        custom_config=_spec_config(config),
        # StatisticsGen and SpecSchema already describe the raw data; the model's own inputs
        # are checked by ServingCheck. Transform's statistics and analyzer cache would add
        # two statistics passes and a cache nobody reads.
        disable_statistics=True,
        disable_analyzer_cache=True,
        force_tf_compat_v1=TRANSFORM_TF_COMPAT_V1,
    ).with_id(TRANSFORM_COMPONENT)
    return DataStage(example_gen, statistics_gen, inferred, schema_gen, example_validator, drift, transform)


BYTES_PER_GIB = 2 ** 30
BYTES_PER_GB = 10 ** 9


def _resource_spec(request: ResourceRequest):
    resources = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        # The backend writes memoryLimit as "<value>G" (10^9 bytes; driver/driver.go initPodSpecPatch):
        # GiB in those units, so that the pod gets what the TFJob's "<MiB>Mi" asks for.
        cpu_limit=request.cpu, memory_limit=request.memory_gib * BYTES_PER_GIB / BYTES_PER_GB
    )
    if request.accelerator_count:
        resources.accelerator.type = request.accelerator_type
        resources.accelerator.count = request.accelerator_count
    return resources


def _trainer_class_and_config(config: PipelineConfig) -> Tuple[type, dict, Optional[executor_spec.ExecutorSpec]]:
    """Which Trainer runs `run_fn`, its custom_config, and its executor (see `TrainerWorkers`)."""
    custom_config = {**_spec_config(config), TRAINER_CONFIG_KEY: config.trainer.to_dict()}
    workers = config.trainer_workers
    if workers.replicas == 1:
        return tfx.components.Trainer, custom_config, None
    if workers.backend is WorkerBackend.TFJOB:
        job = tfjob_trainer.TFJobSpec(
            image=workers.image, replicas=workers.replicas, gpus=workers.gpus,
            gpu_resource=workers.gpu_type or KFP_GPU_RESOURCE, cpu=workers.cpu, memory_gib=workers.memory_gib,
            node_selector=workers.node_selector, namespace=workers.namespace, timeout_s=workers.timeout_s,
        )
        custom_config[tfjob_trainer.TFJOB_CONFIG_KEY] = job.to_dict()
        return tfx.components.Trainer, custom_config, executor_spec.ExecutorClassSpec(tfjob_trainer.Executor)
    vertex = tfx.extensions.google_cloud_ai_platform
    custom_config.update({
        vertex.ENABLE_VERTEX_KEY: True,
        vertex.VERTEX_REGION_KEY: workers.vertex_region,
        vertex.TRAINING_ARGS_KEY: {
            "project": workers.vertex_project, "worker_pool_specs": vertex_worker_pools(workers),
        },
    })
    return vertex.Trainer, custom_config, None


def vertex_worker_pools(workers) -> List[dict]:
    """Vertex AI worker pools: the chief, then `replicas - 1` workers, each with its GPUs."""
    machine = {"machine_type": workers.machine_type}
    if workers.gpus:
        machine.update(accelerator_type=workers.gpu_type, accelerator_count=workers.gpus)
    pool = {"machine_spec": machine, "container_spec": {"image_uri": workers.image}}
    return [{**pool, "replica_count": 1}, {**pool, "replica_count": workers.replicas - 1}]


def tune_stage(config: PipelineConfig, transform, schema_gen) -> Optional[base_node.BaseNode]:
    """Where the Trainer's hyper-parameters come from: the Tuner (KerasTuner random search on the
    train split, scored on eval), a previous Tuner's result (an Importer), or nowhere (None)."""
    if config.tuning is not None:
        return tfx.components.Tuner(
            tuner_fn=TUNER_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(splits=[TRAIN], num_steps=config.train_steps),
            eval_args=tfx.proto.EvalArgs(splits=[EVAL], num_steps=config.eval_steps),
            custom_config={**_spec_config(config), TRAINER_CONFIG_KEY: config.trainer.to_dict(),
                           TUNING_KEY: config.tuning.to_dict()},
        ).with_id(TUNER_COMPONENT)
    if config.hyperparameters_uri:
        return tfx.dsl.Importer(
            source_uri=config.hyperparameters_uri, artifact_type=tfx.types.standard_artifacts.HyperParameters,
        ).with_id(HYPERPARAMETERS_IMPORTER)
    return None


def train_stage(config: PipelineConfig, transform, schema_gen, baseline,
                tuned: Optional[base_node.BaseNode] = None) -> base_node.BaseNode:
    """The Trainer: `trainer.run.run_fn` on the transformed train and eval splits, in its own pod or,
    with several `trainer_workers`, in every replica of a TFJob or of Vertex AI worker pools. With
    `warm_start`, the baseline (the last blessed model) is its ``base_model``; with `tuned` (see
    `tune_stage`), its hyper-parameters come from there."""
    trainer_class, custom_config, custom_executor = _trainer_class_and_config(config)
    warm = {"base_model": baseline_output(baseline)} if config.warm_start else {}
    if tuned is not None:
        warm["hyperparameters"] = tuned.outputs[
            "best_hyperparameters" if config.tuning is not None else "result"]
    trainer = trainer_class(
        run_fn=config.run_fn or RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[TRAIN], num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=[EVAL], num_steps=config.eval_steps),
        custom_config=custom_config,
        **warm,
        **({"custom_executor_spec": custom_executor} if custom_executor else {}),
    ).with_id(TRAINER_COMPONENT)
    # With replicas, the GPUs belong to the replicas; the Trainer's pod only submits and waits.
    if config.trainer_resources != ResourceRequest() and config.trainer_workers.replicas == 1:
        trainer.with_platform_config(_resource_spec(config.trainer_resources))
    return trainer


def baseline_stage(config: PipelineConfig) -> base_node.BaseNode:
    """The model to beat and to warm-start from, on every target: the model now in serving
    (`components.baseline.ServingBaseline`), not the newest model the Evaluator blessed, which
    ServingCheck may have refused (drift, anomalies) and which then never served."""
    served = ""
    if config.baseline_cache_key:
        newest = serving_baseline.newest_version(config.serving_model_dir)
        served = newest or serving_baseline.NO_MODEL
    return serving_baseline.ServingBaseline(serving_model_dir=config.serving_model_dir,
                                            served_version=served).with_id(SERVING_BASELINE_COMPONENT)


def baseline_output(baseline: base_node.BaseNode):
    return baseline.outputs["baseline"]


def evaluate_and_push_stage(config: PipelineConfig, example_gen, example_validator, drift, trainer,
                            baseline) -> Tuple[base_node.BaseNode, ...]:
    """Evaluator on the held-out test split against the last blessed model, a serving
    check on raw eval examples that also reads the data anomalies of every split and the
    drift since the previous span, and a Pusher that needs both blessings."""
    # TFX's Evaluator, except that a ServingBaseline with no model yet counts as no baseline.
    evaluator = serving_baseline.Evaluator(
        examples=example_gen.outputs["examples"],
        example_splits=[TEST],
        model=trainer.outputs["model"],
        baseline_model=baseline_output(baseline),
        eval_config=build_eval_config(config.spec),
    ).with_id(EVALUATOR_COMPONENT)
    serving_check = ServingCheck(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        anomalies=example_validator.outputs["anomalies"],
        drift=drift.outputs["drift"],
        spec_json=config.spec.to_json(),
        split=EVAL,
    ).with_id(SERVING_CHECK_COMPONENT)
    pusher = tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(idempotent_pusher.Executor),
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_model_dir)
        ),
    ).with_id(PUSHER_COMPONENT)
    return evaluator, serving_check, pusher


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    """The whole chain for `config`."""
    data = data_stage(config)
    baseline = baseline_stage(config)
    tuned = tune_stage(config, data.transform, data.schema)
    trainer = train_stage(config, data.transform, data.schema, baseline, tuned)
    evaluate_and_push = evaluate_and_push_stage(config, data.example_gen, data.example_validator, data.drift,
                                                trainer, baseline)
    components: List[base_node.BaseNode] = [*data.nodes, *([tuned] if tuned else []), trainer, baseline,
                                            *evaluate_and_push]
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
            if config.metadata_path
            else None
        ),
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
