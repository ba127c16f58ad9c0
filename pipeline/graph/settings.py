"""What a command's flags and files make of the pipeline's settings: the spec (with allowed anomalies),
the schema to validate with, the TrainerConfig (a YAML file, flags on top) and the Tuner's settings.

Errors are `SettingsError`: the message names the value, where it came from and the fix; ``option`` is the
command-line option it belongs to."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence, Tuple

import yaml

import schemas
from components.names import SCHEMA_FILE
from components.spec import DatasetSpec, load_spec
from pipeline.graph.config import TuningConfig
from trainer.config import TrainerConfig

DEFAULT_SPEC = ("census", "group1.yaml")
DEFAULT_SCHEMA = ("census", SCHEMA_FILE)


class SettingsError(ValueError):
    """A flag or settings file the pipeline cannot use; `option` names the flag."""

    def __init__(self, message: str, option: Optional[str] = None):
        super().__init__(message)
        self.option = option


def spec_with(spec_path: Optional[str], allow_anomalies: Sequence[str] = ()) -> DatasetSpec:
    """The spec at `spec_path` (default: census group 1), with `--allow-anomaly` types added."""
    spec = load_spec(spec_path or schemas.path(*DEFAULT_SPEC))
    if allow_anomalies:
        spec = dataclasses.replace(spec, allowed_anomalies=tuple(dict.fromkeys(
            (*spec.allowed_anomalies, *allow_anomalies))))
    return spec


def default_schema(spec_path: Optional[str]) -> Optional[str]:
    """The schema when --schema is not given: the census schema for the default spec, the
    ``schema.pbtxt`` beside the spec file if there is one, else None (SchemaGen infers it)."""
    if spec_path is None:
        return schemas.path(*DEFAULT_SCHEMA)
    beside = os.path.join(os.path.dirname(os.path.abspath(spec_path)), DEFAULT_SCHEMA[-1])
    return beside if os.path.isfile(beside) else None


def tuning_settings(tune: bool, tune_budget_s: float, tune_trials: int, hyperparameters_uri: Optional[str]) -> dict:
    """PipelineConfig's `tuning` and `hyperparameters_uri` from the flags."""
    if tune and hyperparameters_uri:
        raise SettingsError("give --tune or --hyperparameters, not both.")
    return {"tuning": TuningConfig(budget_s=tune_budget_s, max_trials=tune_trials) if tune else None,
            "hyperparameters_uri": hyperparameters_uri}


def trainer_config(path: Optional[str], **flags) -> TrainerConfig:
    """TrainerConfig from the YAML file at `path` (if any), with the flags that were given on top."""
    raw = {}
    if path:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: expected a mapping of TrainerConfig fields, received {raw!r}.",
                                "--trainer-config")
    raw.update({k: v for k, v in flags.items() if v is not None})
    try:
        return TrainerConfig.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{path or 'flags'}: {e}", "--trainer-config") from None


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The settings `run` and `compile` share, as their flags give them: the spec and schema, the Trainer
    (a TrainerConfig file and flags on top), the steps, the Tuner, the spans and the Beam arguments."""

    spec_path: Optional[str] = None
    schema_path: Optional[str] = None
    allow_anomalies: Sequence[str] = ()
    trainer_config_path: Optional[str] = None
    trainer_flags: dict = dataclasses.field(default_factory=dict)  # TrainerConfig fields given as flags
    train_steps: int = 0
    eval_steps: int = 0
    tune: bool = False
    tune_budget_s: float = TuningConfig.budget_s
    tune_trials: int = TuningConfig.max_trials
    hyperparameters_uri: Optional[str] = None
    num_spans: int = 1
    beam_args: Tuple[str, ...] = ()  # parsed (`beam_options.parse_beam_args`)

    def spec(self) -> DatasetSpec:
        return spec_with(self.spec_path, self.allow_anomalies)

    def trainer(self, **more) -> TrainerConfig:
        return trainer_config(self.trainer_config_path, **self.trainer_flags, **more)

    def tuning(self, hyperparameters_uri: Optional[str] = None) -> dict:
        """`tuning_settings`; `hyperparameters_uri` in place of the flag's (e.g. made absolute)."""
        return tuning_settings(self.tune, self.tune_budget_s, self.tune_trials,
                               hyperparameters_uri or self.hyperparameters_uri)
