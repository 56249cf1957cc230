"""A single-writer lock lost under its writer (PostgreSQL ended the lock's session:
pg_terminate_backend) is found before the next append: taken again if nobody holds it and
nobody wrote meanwhile, otherwise the writer stops with one `%` sentence and writes nothing
(events/pgstore.py `WriterLock.held`, engine/sharedlog.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from engine.ca.errors import CAUnavailable
from engine.sharedlog import SharedLog
from engine.storebinding import Binding
from events.ca import STREAM, ChallengeMinted
from events.pgstore import PostgresEventStore, WriterLocked, WriterLockLost, writer_lock
from events.store import PendingEvent
from tests.ca.ca_support import make_ca
from tests.support.postgres import end_sessions

pytestmark = pytest.mark.integration


def _event(n: int) -> PendingEvent:
    return PendingEvent(ChallengeMinted(bytes([n]) * 32, 2**62), STREAM, 1, "operator")


def _end_lock_session(url: str, log_id: str) -> None:
    """Terminate the session holding `log_id`'s writer lock, and wait until it is gone."""
    with psycopg.connect(url, autocommit=True) as admin:
        (pid,) = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = "
            "hashtext(%s)::oid", ("trustledger:" + log_id,)).fetchone() or (None,)
        assert pid is not None, "nobody holds the lock"
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 30  # (500 tries of 10 ms were 5 s on a quiet machine)
        while time.monotonic() < deadline:
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                 (pid,)).fetchone():
                return
            time.sleep(0.01)
    raise AssertionError("the lock's session did not end")


def _open(url: str, tmp_path: Path) -> SharedLog:
    return SharedLog.open(url, "ca1", tmp_path / "audit", kind="ca", exclusive=True)


def test_a_lock_dropped_while_nobody_else_wrote_is_taken_again(pg_url: str,
                                                               tmp_path: Path) -> None:
    with _open(pg_url, tmp_path) as log:
        log.append([_event(1)])
        _end_lock_session(pg_url, "ca1")
        log.append([_event(2)])  # re-taken: the head was still ours
        assert log.head[0] == 2
        with pytest.raises(WriterLocked):  # and held again: a second writer is refused
            writer_lock(pg_url, "ca1")
    writer_lock(pg_url, "ca1").release()  # closing released it


def test_a_lock_another_process_took_stops_the_writer(pg_url: str, tmp_path: Path) -> None:
    with _open(pg_url, tmp_path) as log:
        log.append([_event(1)])
        _end_lock_session(pg_url, "ca1")
        # A second `ca serve` started meanwhile:
        with writer_lock(pg_url, "ca1"), pytest.raises(WriterLockLost) as lost:
            log.append([_event(2)])
        assert lost.value.render() == (
            "% The single-writer lock of the event log ca1 was lost (the server ended its "
            "session) and another process holds it now: this process writes no more to it "
            "(nothing was written).")
        with pytest.raises(WriterLockLost):  # for good, even once the other let go
            log.append([_event(3)])
    with PostgresEventStore.open(pg_url, "ca1", kind="ca", readonly=True) as store:
        assert store.head[0] == 1


def test_a_lock_lost_while_another_process_wrote_stops_the_writer(pg_url: str,
                                                                  tmp_path: Path) -> None:
    with _open(pg_url, tmp_path) as log:
        log.append([_event(1)])
        _end_lock_session(pg_url, "ca1")
        with writer_lock(pg_url, "ca1"), \
                PostgresEventStore.open(pg_url, "ca1", kind="ca") as other:
            other.append([_event(9)])  # wrote, then went away
        with pytest.raises(WriterLockLost, match=r"and another process appended seq 2-2 "
                                                 r"meanwhile: this process writes no more"):
            log.append([_event(2)])
    writer_lock(pg_url, "ca1").release()  # the stopped writer did not keep the lock


def test_the_ca_stops_writing_with_one_sentence_when_its_lock_is_taken(
        pg_url: str, tmp_path: Path) -> None:
    root = tmp_path / "ca"
    with make_ca(root, store=Binding(pg_url, "ca1")) as ca:
        ca.mint_challenge(timedelta(minutes=5))
        _end_lock_session(pg_url, "ca1")
        with writer_lock(pg_url, "ca1"), pytest.raises(CAUnavailable) as stopped:
            ca.mint_challenge(timedelta(minutes=5))
        assert stopped.value.message.startswith(
            "% Could not write the event log: The single-writer lock of the event log ca1 "
            "was lost (the server ended its session) and another process holds it now")
        assert ca.unavailable is not None


def test_a_dropped_lock_is_taken_back_between_appends_before_another_finds_it_free(
        pg_url: str, tmp_path: Path) -> None:
    """A CA idle between requests: without the keepalive, `ca challenge` would find the lock
    free, append itself, and the server would have to stop at its next append."""
    with _open(pg_url, tmp_path) as log:
        log.append([_event(1)])
        _end_lock_session(pg_url, "ca1")
        with psycopg.connect(pg_url, autocommit=True) as watcher:  # looks, never takes it
            deadline = time.monotonic() + 10
            while not watcher.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND "
                                      "granted").fetchone():
                assert time.monotonic() < deadline, "the writer never took its lock back"
                time.sleep(0.05)
        with pytest.raises(WriterLocked):  # taken back by the idle writer
            writer_lock(pg_url, "ca1")
        log.append([_event(2)])
        assert log.head[0] == 2


def test_a_lock_dropped_while_the_store_restarts_is_taken_back_once_it_is_up(
        pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL restarting under an idle CA: its lock's session ends and for a while no
    connection is possible. That decides nothing (the keepalive and an append meanwhile are
    refused, nothing written); once the store is back the lock is taken again, since nobody
    wrote, and the writer goes on. It used to stop for good at the first failed try."""
    with _open(pg_url, tmp_path) as log:
        log.append([_event(1)])
        end_sessions(pg_url, allow=False)  # the lock's session among them
        try:
            time.sleep(2.5 * 1.0)  # the keepalive (every KEEPALIVE_S) fails meanwhile
            with pytest.raises(WriterLockLost, match="the next append tries to take it again"):
                log.append([_event(2)])
        finally:
            end_sessions(pg_url, allow=True)
        log.append([_event(3)])  # taken back: the head was still ours
        assert log.head[0] == 2
        with pytest.raises(WriterLocked):
            writer_lock(pg_url, "ca1")
