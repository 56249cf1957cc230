"""One writer per CA log in a PostgreSQL store, as with DIR/log: the process that opened the CA
read-write holds the log's single-writer lock (events/pgstore.py `WriterLock`), so a second
writer (`ca serve` #2, `ca challenge` while serving) is refused at open and the commands go
through the server's admin endpoint; an append another writer slips in all the same is read
and folded, and the CA goes on; a device's log takes no such lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from engine.ca.errors import CAUnavailable
from engine.ca.service import BuiltinCA, CAConflict, CALocked
from engine.devicelog import LogConflict
from engine.sharedlog import SharedLog
from engine.storebinding import Binding
from events.ca import STREAM, ChallengeMinted
from events.pgstore import PostgresEventStore, StoreUnavailable, WriterLocked, writer_lock
from events.store import PendingEvent
from tests.ca.ca_support import make_ca
from tests.ca.cli_support import REPO, cli, served
from tests.ca.test_ca_shared_store import SESSION

pytestmark = pytest.mark.integration


def test_a_store_ca_open_for_writing_refuses_a_second_writer(pg_url: str,
                                                             tmp_path: Path) -> None:
    root = tmp_path / "ca"
    with make_ca(root, store=Binding(pg_url, "ca1")):
        with pytest.raises(CALocked) as refused:
            BuiltinCA.open(root)
        assert refused.value.message == f"% the CA in {root} is in use by another process"
        with BuiltinCA.open(root, readonly=True) as reader:  # listings need no lock
            assert reader.state.ca_certificate
    with BuiltinCA.open(root) as again:  # closing released the lock
        again.mint_challenge()


def test_the_writer_lock_is_per_log_and_devices_take_none(pg_url: str, tmp_path: Path) -> None:
    with writer_lock(pg_url, "ca1"):
        with pytest.raises(WriterLocked) as refused:
            writer_lock(pg_url, "ca1")
        assert refused.value.render() == ("% The event log ca1 is open for writing by another "
                                          "process.")
        writer_lock(pg_url, "ca2").release()  # another log: its own lock
    with SharedLog.open(pg_url, "r1", tmp_path / "a"), SharedLog.open(pg_url, "r1", tmp_path / "b"):
        pass  # two device engines on one device: optimistic concurrency, no lock


def test_release_frees_the_lock_before_it_returns(pg_url: str) -> None:
    """Closing the lock's connection alone frees it only when the server notices, a moment
    later: a CA reopened at once was refused (a CI failure). `release` unlocks first."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as watcher:  # connected before: no delay
        for _ in range(20):
            writer_lock(pg_url, "ca1").release()
            held = watcher.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                   "AND granted").fetchone()
            assert held == (0,)


def test_an_append_slipped_past_the_lock_is_read_and_the_ca_goes_on(pg_url: str,
                                                                    tmp_path: Path) -> None:
    root = tmp_path / "ca"
    with make_ca(root, store=Binding(pg_url, "ca1")) as ca:
        before = len(ca.state.challenges)
        with PostgresEventStore.open(pg_url, "ca1", kind="ca") as other:
            at = other.head[0]
            other.append([PendingEvent(ChallengeMinted(b"\x01" * 32, 2**62), STREAM, 1,
                                       "operator")])
        ca.mint_challenge(timedelta(minutes=5))  # decided again over the other's event
        assert ca.unavailable is None
        assert len(ca.state.challenges) == before + 2
        with PostgresEventStore.open(pg_url, "ca1", kind="ca", readonly=True) as log:
            assert log.head[0] == at + 2
        ca.mint_challenge()  # and it goes on


def test_a_conflict_and_a_lost_store_are_one_clean_sentence() -> None:
    conflict = LogConflict("Another writer appended seq 12 to the event log ca1 since this "
                           "one read it: nothing was written.")
    assert CAConflict(conflict).message == (
        "% Another writer appended seq 12 to the event log ca1 since this one read it: "
        "nothing was written; the CA has read it, try the command again")
    lost = CAUnavailable(StoreUnavailable("Lost the event store postgresql://u@h:1/d trying to "
                                          "append: server closed the connection.",
                                          sentence=True))
    assert lost.message == (
        "% Could not write the event log: Lost the event store postgresql://u@h:1/d trying to "
        "append: server closed the connection. The CA's log could not be made durable: it "
        "answers nothing more until it is reopened (restart `ca serve`).")


@pytest.mark.slow
def test_ca_commands_go_through_the_server_of_a_store_ca(pg_url: str, tmp_path: Path) -> None:
    ca_dir, device = tmp_path / "ca", tmp_path / "device"
    cli("init", ca_dir, "--store", pg_url, "--device", "ca1")
    with served(ca_dir, "--challenge", "static123", "--workers", "1") as srv:
        admin = (ca_dir / "admin.json").read_text()
        second = cli("serve", ca_dir, "--host", "127.0.0.1", "--port", "0", check=False)
        assert second.returncode == 1
        assert f"% the CA in {ca_dir} is in use by another process" in second.stderr
        assert (ca_dir / "admin.json").read_text() == admin  # the running server's, kept
        minted = cli("challenge", ca_dir).stdout.splitlines()[-1]  # through the server
        script = SESSION.format(url=srv.url, challenge=minted)
        done = subprocess.run([sys.executable, "-m", "engine.cli", "exec", "--data", device,
                               "--store", pg_url, "--device", "r1", "-f", "-"], input=script,
                              capture_output=True, text=True, cwd=REPO, timeout=120,
                              check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Status             :Available" in done.stdout, done.stdout
        assert srv.proc.poll() is None  # still serving
    assert json.loads((ca_dir / "STORE").read_text())["device"] == "ca1"


def test_a_request_while_the_store_restarts_is_refused_alone_and_the_ca_goes_on(
        pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL restarting under a store CA: a request meanwhile finds the lock dropped and
    the store away. That request is refused (CAUnavailable, HTTP 503 at SCEP), nothing
    written; the CA is not marked unavailable for good (it was, while its keepalive took the
    lock back: a CA that answered nothing held every other writer off). Once the store is
    back, the next request takes the lock back (nobody wrote) and is recorded."""
    import time

    from tests.support.postgres import end_sessions

    with make_ca(tmp_path / "ca", store=Binding(pg_url, "ca1")) as ca:
        ca.mint_challenge(timedelta(minutes=5))
        end_sessions(pg_url, allow=False)  # the lock's session among them
        try:
            time.sleep(0.5)  # the lock's session ended: its socket says so
            with pytest.raises(CAUnavailable, match="the next append tries to take it again"):
                ca.mint_challenge(timedelta(minutes=5))
            assert ca.unavailable is None
        finally:
            end_sessions(pg_url, allow=True)
        ca.mint_challenge(timedelta(minutes=5))
        assert ca.unavailable is None
        with pytest.raises(WriterLocked):  # held again, by this CA
            writer_lock(pg_url, "ca1")
