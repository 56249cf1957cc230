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


# Locales the CLI subprocess tests run under. Python is lenient in C.UTF-8 and C (it writes
# undecodable bytes back with surrogateescape), which hides what an operator's terminal does:
# a real UTF-8 locale (en_US.UTF-8) gives a strict UTF-8 stdout, and a C locale outside
# Python's UTF-8 mode is ASCII. Each entry makes the child see exactly that.
CLI_LOCALES = {
    "C.UTF-8": {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"},
    "C": {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"},
}


@pytest.fixture(params=sorted(CLI_LOCALES))
def cli_locale(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test twice, its CLI children under LC_ALL=C.UTF-8 (strict UTF-8) and LC_ALL=C
    (ASCII). Children inherit os.environ, so a CLI test module opts in with
    `pytestmark = pytest.mark.usefixtures("cli_locale")`."""
    for name, value in CLI_LOCALES[request.param].items():
        monkeypatch.setenv(name, value)
    return str(request.param)
