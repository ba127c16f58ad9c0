"""A real S3 API server on 127.0.0.1 for the tests: moto's `moto_server` in its own process.

Everything of ours talks to it through the libraries a cluster uses (tensorflow-io's S3
filesystem behind TFX fileio, Beam's boto3 S3 filesystem); the tests check what landed with
boto3, never only through our own code.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Dict, List

HOST = "127.0.0.1"
START_TIMEOUT_S = 30
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_REGION": "us-east-1"}


def _die_with_parent() -> None:
    """In the server's process, before it starts: SIGTERM when the test process dies, even killed
    (Linux prctl PR_SET_PDEATHSIG), so that no server outlives an interrupted run."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class S3Server:
    """`moto_server -H 127.0.0.1 -p PORT`, started and stopped by pid."""

    def __init__(self, log_path: str):
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        executable = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
        if executable is None:
            raise RuntimeError("moto_server is not installed: `make install` installs the test extra (moto[server]).")
        self._log = open(log_path, "w")
        self.process = subprocess.Popen([executable, "-H", HOST, "-p", str(self.port)], stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start on {self.endpoint} (see {log_path})") from None
                time.sleep(0.2)

    @property
    def env(self) -> Dict[str, str]:
        """The standard environment that points TensorFlow (S3_ENDPOINT) and boto3 at this server."""
        return {"S3_ENDPOINT": self.endpoint, "AWS_ENDPOINT_URL": self.endpoint, **CREDENTIALS}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            region_name=CREDENTIALS["AWS_REGION"])

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str, prefix: str = "") -> List[str]:
        """Every object key under `prefix`, listed by boto3."""
        keys = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def upload_tree(self, local_dir: str, bucket: str, prefix: str) -> int:
        client, count = self.client(), 0
        for directory, _, files in os.walk(local_dir):
            for name in files:
                path = os.path.join(directory, name)
                client.upload_file(path, bucket, f"{prefix}/{os.path.relpath(path, local_dir)}")
                count += 1
        return count

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
