"""Test setup: Keras 2 before TensorFlow is imported, and shared fixtures."""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402

import schemas  # noqa: E402
from components.spec import load_spec  # noqa: E402

# The full official test file: where `make data` puts it, else beside a development checkout.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CENSUS_TEST_CANDIDATES = (
    os.path.join(ROOT, "data", "census-income.test.gz"),
    os.path.join(ROOT, "data", "census-income.test"),
    os.path.join(ROOT, "..", "shared", "data", "census-income", "census-income.test.gz"),
)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 API server (moto) on 127.0.0.1 for the session, with the standard environment
    (S3_ENDPOINT, AWS_*) set in this process and so in every subprocess; stopped at the end."""
    from components import object_store
    from tests.s3_server import S3Server

    server = S3Server(str(tmp_path_factory.mktemp("s3") / "moto.log"))
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    object_store.enable(["s3://"])
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_EXIT_STATUS = {}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)  # after pytest's own unconfigure hooks (capture, terminal)
def pytest_unconfigure(config):
    """Once s3:// was used, leave with os._exit: tensorflow-io 0.37's S3 filesystem aborts the
    interpreter's shutdown (exit 134, tensorflow/io#2039) after pytest has reported."""
    from components import object_store

    if "status" in _EXIT_STATUS and object_store.s3_enabled():
        object_store.exit_now(_EXIT_STATUS["status"])


@pytest.fixture(scope="session")
def census_spec():
    return load_spec(schemas.path("census", "group1.yaml"))


@pytest.fixture(scope="session")
def census_test_file():
    """The full census-income.test; the long tests fail (not skip) without it."""
    for path in CENSUS_TEST_CANDIDATES:
        if os.path.exists(path):
            return os.path.abspath(path)
    pytest.fail(
        "the full census-income.test(.gz) is needed by this test and is in none of "
        f"{[os.path.normpath(p) for p in CENSUS_TEST_CANDIDATES]}; run `make data` to download it into data/."
    )


def load_bench(name: str):
    """The module of the benchmark script bench/<name>.py (bench/ is scripts, not a package)."""
    import importlib.util

    if os.path.join(ROOT, "bench") not in sys.path:  # the scripts import each other, as when run
        sys.path.append(os.path.join(ROOT, "bench"))
    path = os.path.join(ROOT, "bench", f"{name}.py")
    loader = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module
