"""Live tier: root on the running kernel. Every test is marked ``live`` and the
whole directory skips (with the reason) when not root."""

import os

import pytest


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    here = os.path.dirname(os.path.abspath(__file__))
    not_root = os.geteuid() != 0
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.live)
            if not_root:
                item.add_marker(pytest.mark.skip(reason="live tests need root (run as root or in CI)"))
