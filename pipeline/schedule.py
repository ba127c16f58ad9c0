"""Recurring runs on Kubeflow Pipelines through the real `kfp.Client` (KFP API v2beta1).

`schedule` uploads the compiled ``.yaml`` package (a new pipeline, or a new
version of the pipeline of that name), finds or creates the experiment, and
creates a recurring run of that version: one run at a time
(``max_concurrency=1``) and no catch-up of missed runs (``no_catchup``) after a
pause.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Optional

import kfp
import kfp_server_api
import urllib3

from pipeline import spec_check
from pipeline.kubeflow_v2_runner import validate_cron

MAX_CONCURRENCY = 1


class SchedulingError(RuntimeError):
    """The Kubeflow Pipelines API could not be reached or refused a request."""


@dataclasses.dataclass(frozen=True)
class Scheduled:
    pipeline_id: str
    version_id: str
    experiment_id: str
    recurring_run_id: str


def connect(host: str) -> kfp.Client:
    """A kfp.Client for `host`; fails with a clear message when the API does not answer."""
    return _call(host, "connect (GET /apis/v2beta1/healthz)", lambda: kfp.Client(host=host))


def _call(host: str, what: str, fn):
    try:
        return fn()
    except kfp_server_api.ApiException as e:
        body = (e.body or b"").decode() if isinstance(e.body, bytes) else (e.body or "")
        raise SchedulingError(
            f"Kubeflow Pipelines at {host} answered {e.status} {e.reason} to {what}: {body.strip()[:500]}"
            + (" (check your credentials / namespace)" if e.status in (401, 403) else "")
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise SchedulingError(
            f"cannot reach Kubeflow Pipelines at {host} ({what}): {type(e).__name__}: {e}. "
            "Check --host (e.g. http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)."
        ) from None


def schedule(client: kfp.Client, host: str, package_path: str, cron: str, experiment: str, job_name: str,
             pipeline_name: Optional[str] = None, version_name: Optional[str] = None) -> Scheduled:
    """Uploads `package_path` and creates a recurring run of it on `cron` (6 fields, seconds first)."""
    validate_cron(cron)
    if not package_path.endswith(spec_check.PACKAGE_SUFFIXES):
        raise ValueError(
            f"package: received {package_path!r}; kfp.Client uploads {list(spec_check.PACKAGE_SUFFIXES)}: "
            "compile with --target kfp."
        )
    spec, _ = spec_check.load_package(package_path)
    pipeline_name = pipeline_name or spec.pipeline_info.name
    version_name = version_name or f"{pipeline_name}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d-%H%M%S}"
    pipeline_id = _call(host, f"find pipeline {pipeline_name!r}", lambda: client.get_pipeline_id(pipeline_name))
    if pipeline_id is None:
        pipeline = _call(host, "upload the pipeline",
                         lambda: client.upload_pipeline(package_path, pipeline_name=pipeline_name))
        pipeline_id = pipeline.pipeline_id
        versions = _call(host, "list the pipeline's versions", lambda: client.list_pipeline_versions(
            pipeline_id, page_size=1, sort_by="created_at desc"))
        if not versions.pipeline_versions:
            raise SchedulingError(f"Kubeflow Pipelines at {host} created pipeline {pipeline_id} with no version.")
        version_id = versions.pipeline_versions[0].pipeline_version_id
    else:
        version = _call(host, "upload a pipeline version", lambda: client.upload_pipeline_version(
            package_path, version_name, pipeline_id=pipeline_id))
        version_id = version.pipeline_version_id
    experiment_id = _call(host, f"get or create experiment {experiment!r}",
                          lambda: client.create_experiment(name=experiment).experiment_id)
    run = _call(host, "create the recurring run", lambda: client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=job_name,
        cron_expression=cron,
        pipeline_id=pipeline_id,
        version_id=version_id,
        max_concurrency=MAX_CONCURRENCY,
        no_catchup=True,
    ))
    logging.info("Scheduled %s (%s) in experiment %s: pipeline %s version %s.",
                 job_name, cron, experiment, pipeline_id, version_id)
    return Scheduled(pipeline_id, version_id, experiment_id, run.recurring_run_id)
