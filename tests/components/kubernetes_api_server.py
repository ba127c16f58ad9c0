"""The few Kubernetes API calls of the TFJob Trainer executor, on 127.0.0.1, for the real
`kubernetes` client: create a TFJob (kubeflow.org/v1), read it, delete it, list its pods, read a pod's log.

Paths follow the Kubernetes REST API (custom objects: /apis/{group}/{version}/namespaces/{ns}/{plural};
core: /api/v1/namespaces/{ns}/pods). Each read of the TFJob returns the next of `states`
(a list of (condition type, message)), so a test scripts the job's life.
"""

import http.server
import json
import threading
import urllib.parse
from typing import List, Tuple


class KubernetesApiServer:
    def __init__(self, states: List[Tuple[str, str]], pod_logs: dict = None):
        self.requests: List[dict] = []
        self.jobs: dict = {}
        self.states = list(states)
        self.pod_logs = dict(pod_logs or {})
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                url = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append({"method": method, "path": url.path,
                                        "query": urllib.parse.parse_qs(url.query), "body": body})
                parts = url.path.strip("/").split("/")
                # /apis/kubeflow.org/v1/namespaces/{ns}/tfjobs[/{name}]
                if parts[:3] == ["apis", "kubeflow.org", "v1"] and parts[5] == "tfjobs":
                    if method == "POST" and len(parts) == 6:
                        server.jobs[body["metadata"]["name"]] = body
                        return self._reply(201, body)
                    if method == "DELETE" and len(parts) == 7 and parts[6] in server.jobs:
                        del server.jobs[parts[6]]
                        return self._reply(200, {"kind": "Status", "status": "Success"})
                    if method == "GET" and len(parts) == 7 and parts[6] in server.jobs:
                        kind, message = server.states.pop(0) if len(server.states) > 1 else server.states[0]
                        job = dict(server.jobs[parts[6]], status={
                            "conditions": [{"type": kind, "status": "True", "message": message}],
                            "replicaStatuses": {"Chief": {"active": 1}}})
                        return self._reply(200, job)
                # /api/v1/namespaces/{ns}/pods[/{name}/log]
                if parts[:2] == ["api", "v1"] and parts[4] == "pods" and method == "GET":
                    if len(parts) == 5:
                        items = [{"metadata": {"name": name}, "status": {"phase": "Failed"}}
                                 for name in server.pod_logs]
                        return self._reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                                 "items": items})
                    if len(parts) == 7 and parts[6] == "log":
                        return self._reply(200, server.pod_logs[parts[5]], "text/plain")
                return self._reply(404, {"kind": "Status", "code": 404, "message": f"no route {url.path}"})

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

            def do_DELETE(self):  # noqa: N802
                self._handle("DELETE")

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def kubeconfig(self, path) -> str:
        with open(path, "w") as f:
            json.dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "test",
                "clusters": [{"name": "local", "cluster": {"server": self.host}}],
                "users": [{"name": "u", "user": {"token": "test-token"}}],
                "contexts": [{"name": "test", "context": {"cluster": "local", "user": "u", "namespace": "ml"}}],
            }, f)
        return str(path)

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
