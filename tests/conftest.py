"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """`trustledger` entry points configure structlog process-wide (level, stderr); a test
    that calls one must not change what later tests' `capture_logs()` see."""
    yield
    structlog.reset_defaults()
