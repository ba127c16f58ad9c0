"""Recurring runs on Kubeflow Pipelines through the real `kfp.Client` (KFP API v2beta1).

`schedule` uploads the compiled ``.yaml`` package (a new pipeline, or a new
version of the pipeline of that name), finds or creates the experiment, and
creates a recurring run of that version (replacing any recurring run of the same
name in the experiment, so that scheduling again never doubles the nightly runs): one run at a time
(``max_concurrency=1``) and no catch-up of missed runs (``no_catchup``) after a
pause.

Multi-user Kubeflow: `connect` sends a bearer token, read from ``--token-file`` (kfp's
``ServiceAccountTokenVolumeCredentials``, which re-reads the file on every request, as a
projected service-account token rotates) or from the ``KF_PIPELINES_TOKEN`` environment
variable (``kfp.Client(existing_token=...)``); the pipeline and the experiment are created
in ``--namespace``. A token never appears in a log line, an error or the compiled spec,
and is never sent over plain ``http://`` to a host other than this machine unless
``--insecure`` says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import urllib.parse
from typing import List, Mapping, Optional, Tuple

import kfp
import kfp_server_api
import urllib3
from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

from pipeline.kubeflow import spec_check
from pipeline.kubeflow.kubeflow_v2_runner import validate_cron

MAX_CONCURRENCY = 1
TOKEN_ENV = "KF_PIPELINES_TOKEN"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_SECRETS: set = set()  # every token `connect` has seen: removed from any message


class SchedulingError(RuntimeError):
    """The Kubeflow Pipelines API could not be reached or refused a request."""


@dataclasses.dataclass(frozen=True)
class Scheduled:
    pipeline_id: str
    version_id: str
    experiment_id: str
    recurring_run_id: str
    replaced: Tuple[str, ...] = ()  # the recurring runs of the same name that this one replaced


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):  # a token may contain another
        text = text.replace(secret, "<token>")
    return text


def check_transport(host: str, insecure: bool) -> None:
    """Refuses plain http:// to another machine: credentials and packages would cross the network in clear."""
    url = urllib.parse.urlparse(host)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise SchedulingError(f"--host: received {host!r}; expected a URL such as https://kubeflow.example.com/pipeline "
                              "or http://localhost:8080.")
    if url.scheme == "http" and url.hostname not in LOCAL_HOSTS and not insecure:
        raise SchedulingError(
            f"--host {host} is plain http:// to another machine: the token and the pipeline would cross the "
            "network unencrypted. Use https://, or a port-forward to localhost, or pass --insecure if this "
            "network is trusted."
        )


def _token(token_file: Optional[str], environ: Mapping[str, str]) -> dict:
    """kfp.Client's credential arguments from --token-file or $KF_PIPELINES_TOKEN ({} for none)."""
    if token_file:
        try:
            with open(token_file) as f:
                token = f.read().strip()
        except OSError as e:
            raise SchedulingError(f"--token-file {token_file!r} cannot be read: {e.strerror}.") from None
        if not token:
            raise SchedulingError(f"--token-file {token_file!r} is empty; expected a bearer token.")
        _SECRETS.add(token)
        return {"credentials": ServiceAccountTokenVolumeCredentials(path=token_file)}
    token = (environ.get(TOKEN_ENV) or "").strip()
    if token:
        _SECRETS.add(token)
        return {"existing_token": token}
    return {}


def connect(host: str, namespace: Optional[str] = None, token_file: Optional[str] = None,
            insecure: bool = False, environ: Mapping[str, str] = os.environ) -> kfp.Client:
    """A kfp.Client for `host` with the user's token; fails with a clear message when the API does not answer."""
    check_transport(host, insecure)
    credentials = _token(token_file, environ)
    logging.info("Connecting to Kubeflow Pipelines at %s (namespace %s, %s).", host, namespace or "default",
                 "token from --token-file" if token_file else f"token from ${TOKEN_ENV}" if credentials else "no token")
    return _call(host, "connect (GET /apis/v2beta1/healthz)",
                 lambda: kfp.Client(host=host, **({"namespace": namespace} if namespace else {}), **credentials))


def _call(host: str, what: str, fn):
    try:
        return fn()
    except kfp_server_api.ApiException as e:
        body = (e.body or b"").decode() if isinstance(e.body, bytes) else (e.body or "")
        try:
            body = json.loads(body).get("message") or body
        except (ValueError, AttributeError):
            pass
        hint = ""
        if e.status == 401:
            hint = f" (no valid token: pass --token-file, or set ${TOKEN_ENV})"
        elif e.status == 403:
            hint = " (the token is not allowed there: check --namespace and your role in it)"
        raise SchedulingError(redact(
            f"Kubeflow Pipelines at {host} answered {e.status} {e.reason} to {what}: {str(body).strip()[:500]}{hint}"
        )) from None
    except TimeoutError as e:  # kfp.Client's health check gave up after its retries
        raise SchedulingError(redact(
            f"Kubeflow Pipelines at {host} did not answer {what}: {e} Check --host, and the token if the "
            f"endpoint sits behind an authenticating proxy (--token-file or ${TOKEN_ENV})."
        )) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise SchedulingError(redact(
            f"cannot reach Kubeflow Pipelines at {host} ({what}): {type(e).__name__}: {e}. "
            "Check --host (e.g. http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)."
        )) from None


def _find_pipeline(client: kfp.Client, name: str, namespace: Optional[str]) -> Optional[str]:
    """The id of the pipeline named `name` (in `namespace`, on multi-user Kubeflow), or None.

    `kfp.Client.get_pipeline_id` does the same lookup but cannot take a namespace."""
    name_filter = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    found = client.list_pipelines(filter=name_filter, namespace=namespace).pipelines or []
    if len(found) > 1:
        raise SchedulingError(f"{len(found)} pipelines are named {name!r}; names must be unique: delete the extra ones.")
    return found[0].pipeline_id if found else None


def _find_recurring_runs(client: kfp.Client, experiment_id: str, name: str, namespace: Optional[str]) -> List[str]:
    """The ids of the recurring runs named `name` in the experiment."""
    name_filter = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    found = client.list_recurring_runs(experiment_id=experiment_id, filter=name_filter, page_size=100,
                                       **({"namespace": namespace} if namespace else {})).recurring_runs or []
    return [r.recurring_run_id for r in found]


def schedule(client: kfp.Client, host: str, package_path: str, cron: str, experiment: str, job_name: str,
             pipeline_name: Optional[str] = None, version_name: Optional[str] = None,
             namespace: Optional[str] = None) -> Scheduled:
    """Uploads `package_path` and creates a recurring run of it on `cron` (6 fields, seconds first),
    in `namespace` on multi-user Kubeflow."""
    validate_cron(cron)
    if not package_path.endswith(spec_check.PACKAGE_SUFFIXES):
        raise ValueError(
            f"package: received {package_path!r}; kfp.Client uploads {list(spec_check.PACKAGE_SUFFIXES)}: "
            "compile with --target kfp."
        )
    spec, _ = spec_check.load_package(package_path)
    # The backend takes the root from the run's runtime config only (never from the package's
    # defaultPipelineRoot): without it, runs write to the namespace's kfp-launcher default or minio://.
    root_problems = spec_check.root_violations(spec.default_pipeline_root)
    if root_problems:
        raise SchedulingError(str(spec_check.SpecConformanceError(package_path, root_problems)))
    pipeline_name = pipeline_name or spec.pipeline_info.name
    version_name = version_name or f"{pipeline_name}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d-%H%M%S}"
    pipeline_id = _call(host, f"find pipeline {pipeline_name!r}",
                        lambda: _find_pipeline(client, pipeline_name, namespace))
    if pipeline_id is None:
        pipeline = _call(host, "upload the pipeline", lambda: client.upload_pipeline(
            package_path, pipeline_name=pipeline_name, **({"namespace": namespace} if namespace else {})))
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
                          lambda: client.create_experiment(name=experiment, namespace=namespace).experiment_id)
    # Scheduling the same job again replaces it (the new one first: a failure leaves the old one running).
    previous = _call(host, f"find recurring run {job_name!r}",
                     lambda: _find_recurring_runs(client, experiment_id, job_name, namespace))
    run = _call(host, "create the recurring run", lambda: client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=job_name,
        cron_expression=cron,
        pipeline_id=pipeline_id,
        version_id=version_id,
        max_concurrency=MAX_CONCURRENCY,
        no_catchup=True,
        pipeline_root=spec.default_pipeline_root,
    ))
    for old_id in previous:
        _call(host, f"delete the replaced recurring run {old_id}", lambda old_id=old_id: client.delete_recurring_run(old_id))
        logging.warning("Replaced recurring run %s (%s) with %s.", old_id, job_name, run.recurring_run_id)
    logging.info("Scheduled %s (%s) in experiment %s: pipeline %s version %s.",
                 job_name, cron, experiment, pipeline_id, version_id)
    return Scheduled(pipeline_id, version_id, experiment_id, run.recurring_run_id, tuple(previous))
