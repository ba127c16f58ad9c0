"""A Kubeflow Pipelines API (v2beta1) on 127.0.0.1 for the real `kfp.Client`: the few endpoints
`pipeline.kubeflow.schedule` calls, with the request bodies recorded.

Paths and JSON field names are those of the KFP v2beta1 REST API
(backend/api/v2beta1/*.proto in kubeflow/pipelines; kfp-server-api 2.0 models):
healthz, experiments (list, create), pipelines (list, upload, upload_version,
list versions), recurringruns (create, list, delete). `fail` makes one path answer an
error status, to test how the client side reports it.
"""

import email.parser
import email.policy
import http.server
import json
import threading
import urllib.parse
from typing import Dict, List, Optional, Tuple

API = "/apis/v2beta1"


def _display_name_filter(query: Dict[str, List[str]]) -> Optional[str]:
    raw = query.get("filter", [None])[0]
    if not raw:
        return None
    predicates = json.loads(raw)["predicates"]
    (predicate,) = [p for p in predicates if p["key"] == "display_name"]
    return predicate.get("stringValue", predicate.get("string_value"))


class KfpApiServer:
    """Serves on a free port of 127.0.0.1 until `close`; `host` is its URL."""

    def __init__(self):
        self.requests: List[dict] = []
        self.experiments: List[dict] = []
        self.pipelines: List[dict] = []
        self.versions: List[dict] = []
        self.recurring_runs: List[dict] = []
        self._created = 0
        self.fail: Dict[Tuple[str, str], Tuple[int, str]] = {}  # (method, path) -> (status, message)
        # When set, every request but the health check needs `Authorization: Bearer <token>`; others
        # get the 401 the multi-user API server answers when no user identity reaches it
        # (backend/src/apiserver/auth: "Request header error: there is no user identity header").
        self.token: Optional[str] = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str):
                url = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                record = {"method": method, "path": url.path, "query": query,
                          "content_type": self.headers.get("Content-Type", ""),
                          "authorization": self.headers.get("Authorization")}
                if raw and record["content_type"].startswith("multipart/form-data"):
                    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        b"Content-Type: " + record["content_type"].encode() + b"\r\n\r\n" + raw)
                    record["files"] = {part.get_param("name", header="content-disposition"):
                                       part.get_payload(decode=True).decode() for part in message.iter_parts()}
                elif raw:
                    record["body"] = json.loads(raw)
                server.requests.append(record)
                if (method, url.path) in server.fail:
                    status, message = server.fail[(method, url.path)]
                    return self._reply(status, {"error": message, "code": status, "message": message})
                if server.token and record["authorization"] != f"Bearer {server.token}" and not url.path.endswith(
                        "/healthz"):
                    return self._reply(401, {"error": "Unauthenticated", "code": 16,
                                             "message": "Request header error: there is no user identity header."})
                status, body = server.route(method, url.path, query, record)
                self._reply(status, body)

            def do_GET(self):  # noqa: N802 (http.server API)
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

            def do_DELETE(self):  # noqa: N802
                self._handle("DELETE")

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def route(self, method: str, path: str, query: Dict[str, List[str]], record: dict) -> Tuple[int, dict]:
        if (method, path) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": False}
        if (method, path) == ("GET", f"{API}/experiments"):
            name = _display_name_filter(query)
            found = [e for e in self.experiments if name is None or e["display_name"] == name]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/experiments"):
            experiment = {**record["body"], "experiment_id": f"experiment-{len(self.experiments) + 1}"}
            self.experiments.append(experiment)
            return 200, experiment
        if (method, path) == ("GET", f"{API}/pipelines"):
            name = _display_name_filter(query)
            found = [p for p in self.pipelines if name is None or p["display_name"] == name]
            return 200, {"pipelines": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            pipeline = {"pipeline_id": f"pipeline-{len(self.pipelines) + 1}", "display_name": query["name"][0]}
            self.pipelines.append(pipeline)
            self._add_version(pipeline["pipeline_id"], query["name"][0], record)
            return 200, pipeline
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            return 200, self._add_version(query["pipelineid"][0], query["name"][0], record)
        if method == "GET" and path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pipeline_id = path[len(f"{API}/pipelines/"):-len("/versions")]
            found = [v for v in reversed(self.versions) if v["pipeline_id"] == pipeline_id]
            return 200, {"pipeline_versions": found[: int(query.get("page_size", ["10"])[0])]}
        if (method, path) == ("POST", f"{API}/recurringruns"):
            self._created += 1
            run = {**record["body"], "recurring_run_id": f"recurring-run-{self._created}"}
            self.recurring_runs.append(run)
            return 200, run
        if (method, path) == ("GET", f"{API}/recurringruns"):
            name = _display_name_filter(query)
            experiment = query.get("experiment_id", [None])[0]
            found = [r for r in self.recurring_runs if (name is None or r["display_name"] == name)
                     and (experiment is None or r["experiment_id"] == experiment)]
            return 200, {"recurringRuns": found, "total_size": len(found)} if found else {}
        if method == "DELETE" and path.startswith(f"{API}/recurringruns/"):
            run_id = path[len(f"{API}/recurringruns/"):]
            before = len(self.recurring_runs)
            self.recurring_runs = [r for r in self.recurring_runs if r["recurring_run_id"] != run_id]
            if len(self.recurring_runs) == before:
                return 404, {"error": f"no recurring run {run_id}", "code": 5, "message": f"no recurring run {run_id}"}
            return 200, {}
        return 404, {"error": f"no route {method} {path}", "code": 5, "message": f"no route {method} {path}"}

    def _add_version(self, pipeline_id: str, name: str, record: dict) -> dict:
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": f"version-{len(self.versions) + 1}",
                   "display_name": name, "package": record["files"]["uploadfile"]}
        self.versions.append(version)
        return {k: v for k, v in version.items() if k != "package"}

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
