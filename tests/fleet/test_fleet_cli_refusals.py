"""The fleet CLI's refusals as an operator sees them: a password given as a URL parameter is
never printed, the database is named as libpq reads it, and a view's bad option is that
view's usage error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from engine.cli import main

pytestmark = pytest.mark.integration

SECRET = "s3cretPW"


def test_a_password_parameter_is_not_printed_when_the_database_holds_no_store(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    dbname = pg_url.rsplit("/", 1)[-1]
    assert main(["fleet", "devices", "--store", f"{pg_url}?password={SECRET}"]) == 1
    err = capsys.readouterr().err
    assert err == (f"% The database {dbname!r} holds no trustledger event store "
                   "(no trustledger_events table).\n")


def test_follow_names_the_store_without_its_password(pg_url: str) -> None:
    from events.pgstore import PostgresEventStore

    PostgresEventStore.open(pg_url, "r1").close()  # the store's tables, no event yet
    url = f"{pg_url}?password={SECRET}"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "fleet", "follow",
                             "--store", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first.startswith("Following postgresql://"), (first, err)
    assert SECRET not in first + out + err and "password" not in first
    assert proc.returncode == 0, err


def test_a_views_unknown_option_is_that_views_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fleet", "devices", "--bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: trustledger fleet devices ")
    assert "unrecognized arguments: --bogus" in err
