"""The Evaluator's baseline, and warm start's base, on every target: the model now in serving.

`ServingBaseline` hands the Evaluator the newest version in the Pusher's serving
directory as a ``Model`` artifact. That is the model the change threshold
(``max_auc_drop``) is meant to protect and the one warm start continues from, on
the local runners, open-source Kubeflow Pipelines and Vertex AI alike. (TFX's
``LatestBlessedModelStrategy`` Resolver gives instead the newest model the
*Evaluator* blessed, even one that ServingCheck then refused and that never
served; open-source KFP cannot run Resolvers at all: its Argo compiler rejects
them, ``backend/src/v2/compiler/argocompiler/dag.go``.) On a first run the
directory is empty: the artifact is marked with ``has_model = 0`` and the
`Executor` below (TFX's Evaluator executor) drops it, so the Evaluator runs
without a baseline and TFX ignores the change thresholds.
"""

import logging
import os
from typing import Optional

from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import io_utils, path_utils

HAS_MODEL_PROPERTY = "has_model"  # 1: the artifact holds the serving model; 0: no baseline yet
SOURCE_PROPERTY = "source_version"  # the serving version folder it was copied from
NO_MODEL = "none"  # `served_version` when the serving directory holds no model


def newest_version(serving_model_dir: str) -> Optional[str]:
    """The newest version folder of `serving_model_dir` holding a SavedModel, or None.

    Versions are the Pusher's integer folder names (a timestamp); other entries
    are ignored with a warning, since TensorFlow Serving ignores them too.
    """
    if not fileio.isdir(serving_model_dir):
        return None
    versions = []
    for entry in fileio.listdir(serving_model_dir):
        name = entry.rstrip("/")
        path = os.path.join(serving_model_dir, name)
        if not name.isdigit():
            logging.warning("ServingBaseline: ignoring %s: not an integer version folder.", path)
        elif fileio.exists(os.path.join(path, "saved_model.pb")):
            versions.append((int(name), path))
        else:
            logging.warning("ServingBaseline: ignoring %s: no saved_model.pb inside.", path)
    return max(versions)[1] if versions else None


@component
def ServingBaseline(  # noqa: N802 (TFX component names are classes)
    baseline: OutputArtifact[standard_artifacts.Model],
    serving_model_dir: Parameter[str],
    served_version: Parameter[str] = "",
) -> None:
    """Copies the newest served model into `baseline` (the Evaluator's baseline_model).

    `served_version` is what the local runner saw when it built the pipeline (a cache key: the
    node re-runs exactly when the served model changed); empty on Kubeflow and Vertex, where the
    task is never cached. The directory is read again here either way."""
    source = newest_version(serving_model_dir)
    if served_version and served_version != (source or NO_MODEL):
        logging.warning("ServingBaseline: %s changed since the pipeline was built (%s, now %s); using the newest.",
                        serving_model_dir, served_version, source or NO_MODEL)
    if source is None:
        baseline.set_int_custom_property(HAS_MODEL_PROPERTY, 0)
        logging.info("ServingBaseline: no model in %s yet; the Evaluator runs without a baseline.",
                     serving_model_dir)
        return
    io_utils.copy_dir(source, path_utils.serving_model_dir(baseline.uri))
    baseline.set_int_custom_property(HAS_MODEL_PROPERTY, 1)
    baseline.set_string_custom_property(SOURCE_PROPERTY, source)
    logging.info("ServingBaseline: baseline is the served model %s.", source)


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator, which treats a `ServingBaseline` with no model as no baseline."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        key = standard_component_specs.BASELINE_MODEL_KEY
        baselines = input_dict.get(key) or []
        empty = [a for a in baselines
                 if a.has_custom_property(HAS_MODEL_PROPERTY) and not a.get_int_custom_property(HAS_MODEL_PROPERTY)]
        if empty:
            logging.info("Evaluator: no baseline yet (first run); change thresholds are not applied.")
            input_dict = {k: v for k, v in input_dict.items() if k != key}
        super().Do(input_dict, output_dict, exec_properties)


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator with `Executor` as its executor. TFX's ``Evaluator.__init__`` takes no
    ``custom_executor_spec``; a subclass names its own (``EXECUTOR_SPEC``, as TFX's components do)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
