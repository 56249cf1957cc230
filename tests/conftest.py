"""Suite-wide fixtures.

Layout: tests/ is a package. Each directory holds its tests, its own helpers (imported as
`from tests.ca.ca_support import ...`) and a conftest.py of fixtures only; helpers shared by
several directories live in tests/support/. Markers (pyproject.toml): `integration` for every
test that opens an internet socket, even on loopback (a real peer, our CA over HTTP), which
`_sockets_only_when_integration` below enforces for the test's own process; `slow` for every
test that takes more than a few seconds. `pytest -m "not integration"` is the fast loop.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, settings

# Hypothesis times each example (200 ms by default) and fails a test whose example ran over
# once but not when replayed ("Unreliable test timings", Flaky), and its too_slow health check
# fails a test whose data took long to draw: both are verdicts on the machine's load (a
# lazy import in the first example, a busy CI core), never on the code. Tests assert no
# performance (tools/bench/ measures it), so no example is timed: the same verdict on any load.
settings.register_profile("trustledger", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("trustledger")

# Tests stop children (`fleet follow`, shells) with SIGINT, as Ctrl-C does. An ignored signal
# stays ignored across exec: a pytest started in the background by a non-interactive shell
# (`cmd &`, nohup, some CI runners) has SIGINT ignored, and so had every child, which then
# never stopped (3 fleet tests hung 30 s and failed). Children get SIGINT as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture(autouse=True)
def _sockets_only_when_integration(request: pytest.FixtureRequest,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked `integration` that binds or connects an IPv4/IPv6 socket fails at
    that call, naming the marker: `-m "not integration"` must need no network and no peer.
    (Unix sockets and socketpairs are no network; children the test starts are not watched.)"""
    if request.node.get_closest_marker("integration") is not None:
        return
    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _refused(getattr(socket.socket, name), name))


def _refused(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"socket.{name}{args!r} in a test not marked integration: "
                                 "mark it @pytest.mark.integration")
        return original(self, *args, **kwargs)

    return call


# A real PostgreSQL (`pg_cluster`, `pg_url`) for any test directory: tests/support/postgres.py.
from tests.support.postgres import pg_cluster, pg_url  # noqa: E402, F401
