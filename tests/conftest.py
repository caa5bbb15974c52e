"""Test tiers (see docs/testing.md).

- tests/unit: no root, fixtures only.
- tests/live: root on this machine's kernel; every test here is marked ``live``
  and skips with the reason when not root or a feature is missing.
- tests/lab: the live tier inside stock kernels under QEMU (run by tests/lab/run).
"""

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))


@pytest.fixture
def fixtures_dir() -> str:
    return FIXTURES


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir():
    """undertow's caches (feature probes, BTF index, compiled programs) in a directory of
    the test session, removed at its end: tests neither read what an earlier run of the
    user left in ~/.cache/undertow nor leave anything there. A test that wants no cache
    sets UNDERTOW_CACHE_DIR="" itself."""
    if "UNDERTOW_CACHE_DIR" in os.environ:
        yield
        return
    d = tempfile.mkdtemp(prefix="undertow-test-cache-")
    os.environ["UNDERTOW_CACHE_DIR"] = d
    try:
        yield
    finally:
        os.environ.pop("UNDERTOW_CACHE_DIR", None)
        shutil.rmtree(d, ignore_errors=True)
