"""The dataset spec: the one source of truth for every column, feature, task and name.

A spec is a YAML file that says which CSV columns exist (in file order), which of
them are model features and of what kind, which are never features, and which
tasks the model learns. Every name the pipeline uses downstream (transformed
feature keys, label keys, model output names, TFMA label keys and output names,
slice keys, vocabulary files) is derived here and nowhere else.

Example::

    name: census_group1
    columns: columns.yaml          # or an inline list of {name, kind}
    tasks:
      - name: income
        label_column: income
        positive_values: ["50000+"]
        type: binary
        loss_weight: 1.0
        learning_rate: 0.001
        min_auc: 0.70          # gate: AUC on the overall test slice (binary tasks)
        max_auc_drop: 0.01     # gate: largest AUC drop against the last blessed model
    slices: [sex, {column: age, boundaries: [25, 45, 65]}]
    allowed_anomalies: []      # TFDV anomaly types that do not stop the push (default: none)

A column may say what a missing value means (``missing:``): ``mean``,
``median``, ``{constant: V}`` or ``error`` for numeric columns, ``{constant: V}``
or ``error`` for categorical ones. Transform imputes inside its graph, so a
serving request without the feature gets the value training saw. A declared
policy other than ``error`` also lets the column be absent in the schema the
pipeline derives (see ``components.schema``); an undeclared one keeps the curated
schema's presence, so missing values are reported as anomalies and stop the
push, while Transform still imputes the default (``mean`` for numeric columns,
the empty string for categorical ones) instead of crashing.

The files' format and the split are declared too (defaults: a header line, commas,
ready ``train/ eval/ test/`` folders)::

    format: {header: false, separator: ",", strip: " .", missing_values: ["?"]}
    split: {ratios: {train: 8, eval: 1, test: 1}, key: household_id}   # or: folders
    drift_threshold: 0.1       # Jensen-Shannon divergence against the previous span
    # and per column: {name: age, kind: numeric, drift: 0.05}

Regression tasks are gated with ``max_mse`` instead. A model is blessed only
when every threshold of every task passes; a spec with no threshold at all
never blesses (TFMA reports missing thresholds).

Over 400 lines: one dataclass per section of the spec YAML, each with the validation of its fields beside
it, so that every error names the field it is about; split, the cross-field checks would be apart from
the fields.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from typing import Any, Mapping, Optional, Sequence, Tuple

import yaml


class SpecError(ValueError):
    """A dataset spec is malformed. The message names the value and the fix."""


class ColumnKind(str, enum.Enum):
    """What a CSV column is to the model."""

    NUMERIC = "numeric"  # z-scored float feature
    CATEGORICAL = "categorical"  # vocabulary + OOV buckets -> embedding
    IGNORE = "ignore"  # never a feature (e.g. an instance weight)


class TaskType(str, enum.Enum):
    """The kind of prediction a task head makes; each has its head in `heads/` (`heads.head_for`)."""

    BINARY = "binary"
    REGRESSION = "regression"
    MULTICLASS = "multiclass"


@dataclasses.dataclass(frozen=True)
class TaskFields:
    """The type-specific fields of a task: those it needs, those it may have (`Task` checks them)."""

    required: Tuple[str, ...] = ()
    optional: Tuple[str, ...] = ()
    # What the fields mean for this type, for the error that names a field the type does not take.
    hint: str = ""


TYPE_SPECIFIC_FIELDS = ("positive_values", "classes", "min_auc", "max_auc_drop", "max_mse")
TASK_FIELDS = {
    TaskType.BINARY: TaskFields(("positive_values",), ("min_auc", "max_auc_drop"),
                                "positive_values: the raw label values that mean 1; min_auc, max_auc_drop"),
    TaskType.REGRESSION: TaskFields((), ("max_mse",), "max_mse: an upper bound on the MSE"),
    TaskType.MULTICLASS: TaskFields(("classes",), ("min_auc", "max_auc_drop"),
                                    "classes: the label values, in class-id order; min_auc, max_auc_drop: on the "
                                    "micro-averaged one-vs-rest AUC"),
}


_FEATURE_SUFFIX = "_xf"
_BUCKET_SUFFIX = "_bucket"
_LABEL_SUFFIX = "_label"
_VOCAB_SUFFIX = "_vocab"


def _plain(value: Any) -> Any:
    """A field's value as YAML and JSON hold it: enums by value, tuples as lists."""
    if isinstance(value, enum.Enum):
        return value.value
    return list(value) if isinstance(value, tuple) else value


def _enum_value(enum_cls, value: Any, where: str):
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_cls)
        raise SpecError(
            f"{where}: received {value!r}, expected one of {allowed}."
        ) from None


class MissingPolicy(str, enum.Enum):
    """What a missing value of a column becomes."""

    MEAN = "mean"  # numeric: the train split's mean of the present values
    MEDIAN = "median"  # numeric: the train split's (approximate) median
    CONSTANT = "constant"  # the declared value
    ERROR = "error"  # stop: `run` names the file, row and column before the pipeline starts


@dataclasses.dataclass(frozen=True)
class Missing:
    """A column's missing-value policy. `declared` is False for the default."""

    policy: MissingPolicy
    value: Any = None
    declared: bool = True

    @classmethod
    def parse(cls, raw: Any, kind: "ColumnKind", where: str) -> "Missing":
        if raw is None:
            default = MissingPolicy.MEAN if kind is ColumnKind.NUMERIC else MissingPolicy.CONSTANT
            return cls(default, None if kind is ColumnKind.NUMERIC else "", declared=False)
        if isinstance(raw, Mapping):
            if set(raw) != {"constant"}:
                raise SpecError(f"{where}: received {dict(raw)!r}, expected {{constant: VALUE}}.")
            value = raw["constant"]
            if kind is ColumnKind.NUMERIC and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise SpecError(f"{where}: constant {value!r} of a numeric column must be a number.")
            return cls(MissingPolicy.CONSTANT, value if kind is ColumnKind.NUMERIC else str(value))
        if raw == "drop_row":
            raise SpecError(
                f"{where}: drop_row is not supported: tf.Transform maps every input row to one output row, and "
                "a serving request cannot be dropped. Filter such rows out of the CSV files before the pipeline, "
                "or impute (mean, median, {constant: V})."
            )
        named = {MissingPolicy.MEAN, MissingPolicy.MEDIAN, MissingPolicy.ERROR} if kind is ColumnKind.NUMERIC else {
            MissingPolicy.ERROR}
        if raw not in {p.value for p in named}:
            allowed = [p.value for p in MissingPolicy if p in named] + ["{constant: V}"]
            raise SpecError(f"{where}: received {raw!r}, expected one of {', '.join(allowed)} "
                            f"for a {kind.value} column.")
        return cls(MissingPolicy(raw))

    @property
    def allows_absence(self) -> bool:
        """Whether the derived schema lets the column be absent (a declared, non-error policy)."""
        return self.declared and self.policy is not MissingPolicy.ERROR

    def to_raw(self):
        if not self.declared:
            return None
        return {"constant": self.value} if self.policy is MissingPolicy.CONSTANT else self.policy.value


def _positive_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SpecError(f"{where}: received {value!r}, expected a positive number.")
    return float(value)


def _divergence(value: Any, where: str) -> float:
    """A Jensen-Shannon divergence threshold: in (0, 1] (TFDV's divergence uses log base 2)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SpecError(f"{where}: received {value!r}, expected a Jensen-Shannon divergence threshold in (0, 1].")
    return float(value)


# Drift threshold of every column without its own `drift:` (measured by bench/drift_noise.py):
# between disjoint random samples of 1,600 to 8,000 census rows, categorical columns and bounded
# numeric ones (age, weeks worked) differ by at most ~0.02, while ages moved by 30 years give
# 0.34-0.36. TFDV measures numeric columns on equal-width histograms, so mostly-zero, heavy-tailed
# columns (dividends, capital gains, wage per hour) vary by up to ~0.35-0.5 between such samples:
# give them `drift: off` or their own threshold.
DEFAULT_DRIFT_THRESHOLD = 0.1
DRIFT_OFF = "off"  # a column's `drift:` that excludes it from the drift check


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """How the CSV files are written (spec key ``format``).

    Attributes:
      header: the first line of every file names the columns; without it the spec's columns
        are the file's columns, in order.
      separator: the one character between fields.
      strip: characters removed from both ends of every value (``" ."`` for the UCI census
        files: a space after each comma, a "." after each label).
      missing_values: values that mean "missing" (read as an empty cell), e.g. ``["?"]``.
      skip_rows: lines at the top of every file that are no data (a banner, a licence), before the
        header if there is one.
      comment: a line whose first field starts with this character is skipped (e.g. ``"#"``).
    """

    header: bool = True
    separator: str = ","
    strip: str = ""
    missing_values: Tuple[str, ...] = ()
    skip_rows: int = 0
    comment: str = ""

    def __post_init__(self):
        if not isinstance(self.header, bool):
            raise SpecError(f"format header: received {self.header!r}, expected true or false.")
        if not isinstance(self.separator, str) or len(self.separator) != 1 or self.separator in "\"\r\n":
            raise SpecError(
                f"format separator: received {self.separator!r}, expected one character such as ',' ';' or "
                "'\\t' (not a quote or a newline); put spaces around values in `strip`."
            )
        if not isinstance(self.strip, str):
            raise SpecError(f"format strip: received {self.strip!r}, expected a string of characters, e.g. ' .'.")
        values = self.missing_values
        if isinstance(values, str) or not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
            raise SpecError(f"format missing_values: received {values!r}, expected a list of strings, e.g. ['?'].")
        object.__setattr__(self, "missing_values", tuple(values))
        if isinstance(self.skip_rows, bool) or not isinstance(self.skip_rows, int) or self.skip_rows < 0:
            raise SpecError(f"format skip_rows: received {self.skip_rows!r}, expected a number of lines >= 0.")
        if not isinstance(self.comment, str) or len(self.comment) > 1 or (self.comment and (
                self.comment == self.separator or self.comment in "\"\r\n")):
            raise SpecError(f"format comment: received {self.comment!r}, expected one character that starts a "
                            "comment line, such as '#' (not the separator, a quote or a newline), or none.")

    def clean(self, value: str) -> str:
        """`value` as the pipeline reads it: stripped, and empty when it is a missing-value marker."""
        value = value.strip(self.strip) if self.strip else value
        return "" if value in self.missing_values else value

    def to_dict(self) -> dict:
        return {"header": self.header, "separator": self.separator, "strip": self.strip,
                "missing_values": list(self.missing_values), "skip_rows": self.skip_rows, "comment": self.comment}


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """Where the train, eval and test splits come from (spec key ``split``).

    ``folders`` (the default): the data root (or each span) holds ``train/``, ``eval/`` and
    ``test/`` folders. ``{ratios: {train: 8, eval: 1, test: 1}, key: COLUMN}``: the files sit
    directly in the data root (or span) and ExampleGen splits them by hash buckets in those
    proportions; with ``key`` the hash of that column's value decides (rows sharing a key stay
    together), otherwise the hash of the whole row. The split is deterministic: the same row
    always lands in the same split, on every runner.
    """

    ratios: Tuple[Tuple[str, int], ...] = ()
    key: Optional[str] = None

    def __post_init__(self):
        raw = self.ratios
        pairs = tuple(raw.items()) if isinstance(raw, Mapping) else tuple(tuple(p) for p in raw)
        if pairs:
            names = [n for n, _ in pairs]
            if sorted(names) != sorted(SPLIT_NAMES):
                raise SpecError(f"split ratios: received splits {names}, expected exactly {list(SPLIT_NAMES)}.")
            for name, weight in pairs:
                if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                    raise SpecError(
                        f"split ratios {name}: received {weight!r}, expected a positive integer "
                        "(hash buckets: {train: 8, eval: 1, test: 1} is 80/10/10)."
                    )
            pairs = tuple(sorted(pairs, key=lambda p: SPLIT_NAMES.index(p[0])))
        elif self.key is not None:
            raise SpecError(f"split key: received {self.key!r} without ratios; declare ratios to split by a key.")
        object.__setattr__(self, "ratios", pairs)

    @property
    def in_pipeline(self) -> bool:
        return bool(self.ratios)

    @classmethod
    def parse(cls, raw: Any, where: str) -> "SplitPlan":
        if raw is None or raw == "folders":
            return cls()
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: received {raw!r}, expected 'folders' or {{ratios: {{...}}, key: COLUMN}}.")
        return build_dataclass(cls, raw, where)

    def to_raw(self):
        if not self.ratios:
            return "folders"
        return {"ratios": dict(self.ratios), **({"key": self.key} if self.key else {})}


SPLIT_NAMES = ("train", "eval", "test")


@dataclasses.dataclass(frozen=True)
class Column:
    """One CSV column, in file order."""

    name: str
    kind: ColumnKind
    num_oov_buckets: int = 1
    missing: Any = None  # raw: None, "mean", "median", "error" or {constant: V}; see `Missing`
    drift: Any = None  # Jensen-Shannon divergence threshold against the previous span; None: the spec's; "off"
    # Categorical: the vocabulary keeps the `max_vocabulary` most frequent train tokens (None: all) seen at
    # least `min_frequency` times; every other token goes to the OOV buckets.
    max_vocabulary: Optional[int] = None
    min_frequency: int = 1
    # Numeric: also its quantile bucket (`buckets` buckets of the train split's values) as an embedded
    # feature beside the z-score; None: the z-score alone.
    buckets: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(
                f"column name: received {self.name!r}, expected a non-empty identifier "
                "(letters, digits and '_', not starting with a digit)."
            )
        object.__setattr__(self, "kind", _enum_value(ColumnKind, self.kind, f"column {self.name!r} kind"))
        if isinstance(self.num_oov_buckets, bool) or not isinstance(self.num_oov_buckets, int) or self.num_oov_buckets < 1:
            raise SpecError(
                f"column {self.name!r} num_oov_buckets: received {self.num_oov_buckets!r}, "
                "expected an integer >= 1."
            )
        for name, value, low in (("max_vocabulary", self.max_vocabulary, 1), ("min_frequency", self.min_frequency, 1)):
            if value is None and name == "max_vocabulary":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SpecError(f"column {self.name!r} {name}: received {value!r}, expected an integer >= {low}"
                                + (" or nothing (every token)." if name == "max_vocabulary" else "."))
        if self.kind is not ColumnKind.CATEGORICAL and (self.max_vocabulary is not None or self.min_frequency != 1):
            raise SpecError(f"column {self.name!r}: max_vocabulary and min_frequency bound a categorical column's "
                            f"vocabulary; this column is {self.kind.value}. Remove them or make it categorical.")
        if self.buckets is not None:
            if isinstance(self.buckets, bool) or not isinstance(self.buckets, int) or self.buckets < 2:
                raise SpecError(f"column {self.name!r} buckets: received {self.buckets!r}, expected an integer >= 2 "
                                "(quantile buckets of the train split) or nothing (the z-score alone).")
            if self.kind is not ColumnKind.NUMERIC:
                raise SpecError(f"column {self.name!r}: buckets are quantile buckets of a numeric column; this column "
                                f"is {self.kind.value}. Remove `buckets` or make it numeric.")
        if not isinstance(self.missing, Missing):
            object.__setattr__(self, "missing", Missing.parse(self.missing, self.kind, f"column {self.name!r} missing"))
        if self.drift is False or self.drift == DRIFT_OFF:
            object.__setattr__(self, "drift", DRIFT_OFF)
        elif self.drift is not None:
            object.__setattr__(self, "drift", _divergence(self.drift, f"column {self.name!r} drift"))

    @property
    def transformed_name(self) -> str:
        """Key of this feature in the Transform output and the model's inputs."""
        return self.name + _FEATURE_SUFFIX

    @property
    def bucket_name(self) -> Optional[str]:
        """Key of this numeric feature's quantile bucket id in the Transform output and the model's
        inputs; None without `buckets`."""
        return None if self.buckets is None else self.name + _BUCKET_SUFFIX + _FEATURE_SUFFIX

    @property
    def feature_keys(self) -> Tuple[str, ...]:
        """Every Transform output key the model reads for this column."""
        return (self.transformed_name,) + ((self.bucket_name,) if self.buckets is not None else ())

    @property
    def vocabulary_name(self) -> str:
        """tf.Transform vocabulary file name of a categorical feature."""
        return self.name + _VOCAB_SUFFIX


@dataclasses.dataclass(frozen=True)
class Task:
    """One prediction task: a head of the multi-task model."""

    name: str
    label_column: str
    type: TaskType = TaskType.BINARY
    positive_values: Tuple[str, ...] = ()
    classes: Tuple[str, ...] = ()  # a classification over a vocabulary: the label values, in class-id order
    loss_weight: float = 1.0
    learning_rate: float = 1e-3
    min_auc: Optional[float] = None
    max_auc_drop: Optional[float] = None
    max_mse: Optional[float] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(
                f"task name: received {self.name!r}, expected a non-empty identifier."
            )
        where = f"task {self.name!r}"
        object.__setattr__(self, "type", _enum_value(TaskType, self.type, f"{where} type"))
        for field in ("positive_values", "classes"):
            values = tuple(str(v) for v in getattr(self, field))
            object.__setattr__(self, field, values)
            if any(not v.strip() for v in values):
                raise SpecError(
                    f"{where} {field}: received {list(values)!r}; an empty value would match every missing label; "
                    "list non-empty raw values of the label column."
                )
        if len(set(self.classes)) != len(self.classes):
            raise SpecError(f"{where} classes: received {list(self.classes)!r}; each label value once.")
        fields = TASK_FIELDS[self.type]
        for field in TYPE_SPECIFIC_FIELDS:
            given = getattr(self, field) not in (None, ())
            if field in fields.required and not given:
                raise SpecError(
                    f"{where}: a {self.type.value} task needs {field} (of the label column {self.label_column!r}: "
                    f"{fields.hint}); received none."
                )
            if given and field not in fields.required + fields.optional:
                raise SpecError(
                    f"{where} {field}: not a field of a {self.type.value} task, which takes {fields.hint}; "
                    "remove it or change the task's type."
                )
        object.__setattr__(self, "loss_weight", _positive_number(self.loss_weight, f"{where} loss_weight"))
        object.__setattr__(self, "learning_rate", _positive_number(self.learning_rate, f"{where} learning_rate"))
        for field in ("min_auc", "max_auc_drop"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 <= value <= 1):
                raise SpecError(f"{where} {field}: received {value!r}, expected a number in [0, 1].")
        if self.max_mse is not None:
            _positive_number(self.max_mse, f"{where} max_mse")

    @property
    def label_key(self) -> str:
        """Key of this task's label in the Transform output (and TFMA label_keys)."""
        return self.name + _LABEL_SUFFIX

    @property
    def output_name(self) -> str:
        """Name of this task's model output (and TFMA output_names, serving outputs)."""
        return self.name


_BAND_SUFFIX = "_band"


@dataclasses.dataclass(frozen=True)
class Slice:
    """A TFMA slice: a column's values, or bands of a numeric column.

    ``{column: age, boundaries: [25, 45, 65]}`` slices on the bands
    ``<25``, ``25-44``, ``45-64``, ``>=65`` (a transformed feature ``age_band``).
    """

    column: str
    boundaries: Tuple[float, ...] = ()

    def __post_init__(self):
        boundaries = tuple(self.boundaries)
        if any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in boundaries) or list(
            boundaries
        ) != sorted(set(boundaries)):
            raise SpecError(
                f"slice {self.column!r} boundaries: received {list(boundaries)!r}, expected "
                "strictly increasing numbers."
            )
        object.__setattr__(self, "boundaries", boundaries)

    @property
    def key(self) -> str:
        """The TFMA slicing feature key."""
        return self.column + _BAND_SUFFIX if self.boundaries else self.column

    @property
    def band_labels(self) -> Tuple[str, ...]:
        """Names of the bands [b_i, b_i+1), in order: '<b0', then 'b0-(b1-1)' for integer
        boundaries (ages: '25-44') or 'b0-<b1' otherwise ('0.5-<1'), ..., '>=bn'."""
        b = self.boundaries
        if not b:
            return ()

        def band(lo, hi):
            if float(lo).is_integer() and float(hi).is_integer():
                return f"{lo:g}-{hi - 1:g}"
            return f"{lo:g}-<{hi:g}"

        return (f"<{b[0]:g}", *(band(lo, hi) for lo, hi in zip(b, b[1:])), f">={b[-1]:g}")

    def to_dict(self):
        return {"column": self.column, "boundaries": list(self.boundaries)} if self.boundaries else self.column

    @classmethod
    def parse(cls, raw, where: str) -> "Slice":
        if isinstance(raw, str):
            return cls(raw)
        return build_dataclass(cls, raw, where)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Columns, features, tasks and slices of one dataset."""

    name: str
    columns: Tuple[Column, ...]
    tasks: Tuple[Task, ...]
    slices: Tuple[Slice, ...] = ()
    allowed_anomalies: Tuple[str, ...] = ()  # TFDV AnomalyInfo.Type names that do not stop the push
    format: FileFormat = FileFormat()
    split: SplitPlan = SplitPlan()
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD  # for columns without their own `drift:`

    def __post_init__(self):
        if not self.columns:
            raise SpecError(f"spec {self.name!r}: no columns; list the CSV columns in file order.")
        if not self.tasks:
            raise SpecError(f"spec {self.name!r}: no tasks; add at least one entry under 'tasks'.")
        _no_duplicates([c.name for c in self.columns], f"spec {self.name!r} columns")
        _no_duplicates([t.name for t in self.tasks], f"spec {self.name!r} tasks")
        columns = {c.name: c for c in self.columns}
        for task in self.tasks:
            if task.label_column not in columns:
                raise SpecError(
                    f"task {task.name!r} label_column: received {task.label_column!r}, which is "
                    f"not a column of spec {self.name!r}; expected one of {sorted(columns)}."
                )
            label = columns[task.label_column]
            if label.missing.declared:
                # An imputed label is an invented answer (a binary label would silently become a
                # negative), and the policy would let the schema accept rows without one.
                raise SpecError(
                    f"spec {self.name!r} column {label.name!r}: declares missing: {label.missing.policy.value}"
                    f"{'' if label.missing.value is None else f' {label.missing.value!r}'}, but it is the label of "
                    f"task {task.name!r}, and a label is never imputed. Remove its `missing:` line: a row without "
                    "a label is then a data anomaly that stops the push; filter such rows out of the data to train "
                    "on the rest."
                )
        for sl in self.slices:
            if sl.column not in columns:
                raise SpecError(
                    f"spec {self.name!r} slices: received {sl.column!r}, which is not a column; "
                    f"expected one of {sorted(columns)}."
                )
            if sl.boundaries and columns[sl.column].kind is not ColumnKind.NUMERIC:
                raise SpecError(
                    f"spec {self.name!r} slice {sl.column!r}: boundaries need a numeric column, "
                    f"{sl.column!r} is {columns[sl.column].kind.value}; slice on its values instead."
                )
        _no_duplicates([sl.key for sl in self.slices], f"spec {self.name!r} slices")
        _no_duplicates([k for c in self.columns for k in c.feature_keys], f"spec {self.name!r} feature keys "
                       "(a column's transformed name, or a bucketed column's '_bucket' key)")
        object.__setattr__(self, "allowed_anomalies", tuple(self.allowed_anomalies))
        known = anomaly_type_names()
        for name in self.allowed_anomalies:
            if name not in known:
                close = sorted(k for k in known if str(name).upper() in k)[:5]
                raise SpecError(
                    f"spec {self.name!r} allowed_anomalies: received {name!r}, which is not a TFDV anomaly "
                    f"type; expected names such as {close or ['ENUM_TYPE_UNEXPECTED_STRING_VALUES']} "
                    "(tensorflow_metadata AnomalyInfo.Type)."
                )
        if not self.features:
            raise SpecError(
                f"spec {self.name!r}: no features left once ignored and label columns are removed."
            )
        object.__setattr__(self, "drift_threshold", _divergence(self.drift_threshold, f"spec {self.name!r} drift_threshold"))
        if self.split.key is not None and self.split.key not in columns:
            raise SpecError(
                f"spec {self.name!r} split key: received {self.split.key!r}, which is not a column; "
                f"expected one of {sorted(columns)}."
            )

    def drift_threshold_of(self, column: str) -> Optional[float]:
        """The Jensen-Shannon divergence above which `column` has drifted from the previous span
        (None: not checked)."""
        own = next(c.drift for c in self.columns if c.name == column)
        if own == DRIFT_OFF:
            return None
        return self.drift_threshold if own is None else own

    @property
    def label_columns(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(t.label_column for t in self.tasks))

    @property
    def features(self) -> Tuple[Column, ...]:
        """Model inputs: numeric and categorical columns that no task takes its label from."""
        labels = set(self.label_columns)
        return tuple(
            c for c in self.columns if c.kind is not ColumnKind.IGNORE and c.name not in labels
        )

    @property
    def feature_keys(self) -> Tuple[str, ...]:
        """The model's input keys, in feature order: each feature's `Column.feature_keys`."""
        return tuple(k for c in self.features for k in c.feature_keys)

    @property
    def column_names(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def output_names(self) -> Tuple[str, ...]:
        return tuple(t.output_name for t in self.tasks)

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise SpecError(f"no task {name!r} in spec {self.name!r}; tasks are {list(self.output_names)}.")

    def to_dict(self) -> dict:
        """A JSON-able dict that `from_dict` reads back (used in TFX custom_config)."""
        return {
            "name": self.name,
            "columns": [
                {"name": c.name, "kind": c.kind.value, "num_oov_buckets": c.num_oov_buckets,
                 **({"missing": c.missing.to_raw()} if c.missing.declared else {}),
                 **({"drift": c.drift} if c.drift is not None else {}),
                 **({"max_vocabulary": c.max_vocabulary} if c.max_vocabulary is not None else {}),
                 **({"min_frequency": c.min_frequency} if c.min_frequency != 1 else {}),
                 **({"buckets": c.buckets} if c.buckets is not None else {})}
                for c in self.columns
            ],
            "tasks": [
                {f.name: _plain(getattr(t, f.name)) for f in dataclasses.fields(Task)}
                for t in self.tasks
            ],
            "slices": [sl.to_dict() for sl in self.slices],
            "allowed_anomalies": list(self.allowed_anomalies),
            "format": self.format.to_dict(),
            "split": self.split.to_raw(),
            "drift_threshold": self.drift_threshold,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "spec") -> "DatasetSpec":
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: expected a mapping at the top level, received {type(raw).__name__}.")
        keys = ("name", "description", "columns", "tasks", "slices", "allowed_anomalies", "format", "split",
                "drift_threshold")
        unknown = set(raw) - set(keys)
        if unknown:
            raise SpecError(f"{where}: unknown keys {sorted(unknown)}; expected some of {', '.join(keys)}.")
        name = raw.get("name") or where
        columns = tuple(build_dataclass(Column, c, f"{where} columns[{i}]")
                        for i, c in enumerate(raw.get("columns") or ()))
        tasks = tuple(build_dataclass(Task, t, f"{where} tasks[{i}]") for i, t in enumerate(raw.get("tasks") or ()))
        slices = tuple(Slice.parse(sl, f"{where} slices[{i}]") for i, sl in enumerate(raw.get("slices") or ()))
        allowed = raw.get("allowed_anomalies") or ()
        if isinstance(allowed, str) or not isinstance(allowed, Sequence):
            raise SpecError(f"{where} allowed_anomalies: received {allowed!r}, expected a list of anomaly types.")
        file_format = build_dataclass(FileFormat, raw.get("format") or {}, f"{where} format")
        split = SplitPlan.parse(raw.get("split"), f"{where} split")
        return cls(name=name, columns=columns, tasks=tasks, slices=slices, allowed_anomalies=tuple(allowed),
                   format=file_format, split=split,
                   drift_threshold=raw.get("drift_threshold", DEFAULT_DRIFT_THRESHOLD))


def anomaly_type_names() -> frozenset:
    """The names of TFDV's anomaly types (tensorflow_metadata `AnomalyInfo.Type`)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return frozenset(anomalies_pb2.AnomalyInfo.Type.keys())


def build_dataclass(cls, raw: Any, where: str):
    """`cls(**raw)` for a mapping `raw`, with errors that name `where`, the unknown or missing keys."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping, received {raw!r}.")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - fields
    if unknown:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(fields)}.")
    try:
        return cls(**raw)
    except TypeError as e:  # a required key is missing
        raise SpecError(f"{where}: {e}; expected keys {sorted(fields)}.") from None


def _no_duplicates(names: Sequence[str], where: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise SpecError(f"{where}: {name!r} appears twice; every name must be unique.")
        seen.add(name)


def load_spec(path: str) -> DatasetSpec:
    """Reads a spec YAML file. `columns` may name another YAML file, relative to it, and `base`
    another spec whose keys this file overrides."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"spec file {path!r} does not exist; pass the path of a spec YAML file.") from None
    except yaml.YAMLError as e:
        raise SpecError(f"spec file {path!r} is not valid YAML: {e}") from None
    if isinstance(raw, Mapping) and "base" in raw:
        # `base: other.yaml`: that spec, with this file's keys on top (e.g. another file format).
        base_path = os.path.join(os.path.dirname(path), str(raw["base"]))
        if not os.path.isfile(base_path):
            raise SpecError(f"spec file {path!r}: base spec {base_path!r} does not exist; give a path relative "
                            "to the spec file.")
        base = load_spec(base_path).to_dict()
        raw = {**base, **{k: v for k, v in raw.items() if k != "base"}}
    if isinstance(raw, Mapping) and isinstance(raw.get("columns"), str):
        columns_path = os.path.join(os.path.dirname(path), raw["columns"])
        try:
            with open(columns_path) as f:
                columns = yaml.safe_load(f)
        except FileNotFoundError:
            raise SpecError(
                f"spec file {path!r}: columns file {columns_path!r} does not exist; "
                "give a path relative to the spec file or list the columns inline."
            ) from None
        raw = dict(raw, columns=columns)
    return DatasetSpec.from_dict(raw, where=f"spec file {path!r}")
