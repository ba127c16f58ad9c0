"""Test setup: Keras 2 before TensorFlow is imported, and shared fixtures."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402

import schemas  # noqa: E402
from components.spec import load_spec  # noqa: E402

# The full official test file lives beside a development checkout only.
SHARED_CENSUS = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "census-income")
)


@pytest.fixture(scope="session")
def census_spec():
    return load_spec(schemas.path("census", "group1.yaml"))


@pytest.fixture(scope="session")
def census_test_file():
    path = os.path.join(SHARED_CENSUS, "census-income.test.gz")
    if not os.path.exists(path):
        pytest.skip(
            f"the full census-income.test.gz is not at {path}; download it with `make data` "
            "and copy it there to run this test."
        )
    return path
