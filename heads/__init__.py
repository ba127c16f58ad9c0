"""Task types, each owned by its head (the counterpart of ``tf.estimator``'s heads).

A head supplies everything the pipeline does differently per task type: its label encoding in the
Transform graph, its Keras output layer, loss and metrics, its serving outputs and their serving check,
its TFMA metrics specs and thresholds, and how the report reads its metrics back. Components,
trainer and report call the head of a task (`head_for`) and never branch on the task's type.

A new task type is one module in this package (a `Head` subclass with its ``task_type``, found and
registered at import), its test, and its member of `components.spec.TaskType` with the spec fields it
takes (`components.spec.TASK_FIELDS`).
"""

import importlib
import pkgutil

from heads.base import Head, head_for

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Head", "head_for"]
