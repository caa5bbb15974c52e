"""Test tiers (see docs/testing.md).

- tests/unit: no root, fixtures only.
- tests/live: root on this machine's kernel; every test here is marked ``live``
  and skips with the reason when not root or a feature is missing.
- tests/lab: the live tier inside stock kernels under QEMU (run by tests/lab/run).
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))


@pytest.fixture
def fixtures_dir() -> str:
    return FIXTURES
