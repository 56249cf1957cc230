"""Crashes around an append: a writer process SIGKILLed inside its transaction, or while its
statement runs, and a server backend ended under a live writer. Whatever happens, a batch is
in the log whole or not at all, the chain stays whole, and the next append continues it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from events.filelog import LogError
from events.pgstore import _LOCK, PostgresEventStore, StoreUnavailable, verify_log
from events.store import Recorded
from tests.events.eventlog_support import noted, noted_batch
from tests.support.peer_support import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

BATCH = 50  # events in the batch the writer is killed over

# The writer: appends seq 1-3, prints its backend pid, waits for a line on stdin, then appends
# the big batch as the mode says (printing when it reaches the point where it is killed).
WRITER = f"""
import sys, time
from events.pgstore import PostgresEventStore
from tests.events.eventlog_support import noted_batch
url, mode = sys.argv[1:]
store = PostgresEventStore.open(url, "r1")
store.append(noted_batch(1, 3))
print(store._conn.info.backend_pid, flush=True)
sys.stdin.readline()
if mode == "before-commit":  # the INSERT has run; the COMMIT never comes
    with store._conn.transaction():
        store.append(noted_batch(4, {BATCH}))
        print("inserted", flush=True)
        time.sleep(60)
else:  # "in-statement": killed while the server runs the append statement
    store.append(noted_batch(4, {BATCH}))
    print("appended", flush=True)
"""


def _writer(url: str, mode: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url, mode], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _backend_gone(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 20
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still there"
            time.sleep(0.02)


def _seqs(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [int(r[0]) for r in conn.execute(
            "SELECT seq FROM trustledger_events WHERE log_id = 'r1' ORDER BY seq").fetchall()]


def _continues(url: str, head: int) -> None:
    """A new writer finds the head, appends after it, and the whole chain verifies."""
    with PostgresEventStore.open(url, "r1") as store:
        assert store.head[0] == head
        prev = store.head[1]
        rec = store.append([noted(head + 1)])[0]
        assert (rec.seq, rec.prev) == (head + 1, prev)
    report = verify_log(url, "r1")
    assert (report.events, report.damage) == (head + 1, None)


def test_a_writer_killed_after_its_insert_before_its_commit_leaves_nothing(
        pg_url: str) -> None:
    proc, pid = _writer(pg_url, "before-commit")
    _go(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "inserted"
    with psycopg.connect(pg_url) as conn:  # the server holds the batch, uncommitted
        state = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s",
                             (pid,)).fetchone()
    assert state == ("idle in transaction",)
    assert _seqs(pg_url) == [1, 2, 3]  # invisible to everyone else
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _backend_gone(pg_url, pid)
    assert _seqs(pg_url) == [1, 2, 3]
    _continues(pg_url, 3)


def test_a_writer_killed_while_its_statement_runs_leaves_the_batch_whole_or_absent(
        pg_url: str) -> None:
    """Killed while its append waits inside the server (held at the position lock): the
    server finishes or drops the statement on its own; the batch is all there or not."""
    with psycopg.connect(pg_url, autocommit=True) as holder:
        proc, pid = _writer(pg_url, "in-statement")
        holder.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        _go(proc)
        _wait_for(holder, pid, "Lock")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        holder.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    _backend_gone(pg_url, pid)
    seqs = _seqs(pg_url)
    assert seqs in ([1, 2, 3], list(range(1, BATCH + 4)))
    _continues(pg_url, seqs[-1])


def test_a_backend_ended_under_a_live_writer_is_not_committed_and_it_goes_on(
        pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as store, \
            psycopg.connect(pg_url, autocommit=True) as holder:
        store.append(noted_batch(1, 3))
        pid = store._conn.info.backend_pid
        holder.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        result: list[list[Recorded] | LogError] = []

        def append() -> None:
            try:
                result.append(store.append(noted_batch(4, BATCH)))
            except LogError as e:
                result.append(e)

        t = threading.Thread(target=append)
        t.start()
        _wait_for(holder, pid, "Lock")
        holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
        t.join(20)
        holder.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
        assert len(result) == 1 and isinstance(result[0], StoreUnavailable)
        assert "the append was not committed (the log's head is seq 3)" in str(result[0])
        assert store.head[0] == 3 and _seqs(pg_url) == [1, 2, 3]
        assert store.append([noted(4)])[0].seq == 4
    _continues(pg_url, 4)


def _wait_for(conn: psycopg.Connection[tuple[object, ...]], pid: int, event_type: str) -> None:
    """Until backend `pid` waits on a `event_type` (a lock: it is inside the statement)."""
    deadline = time.monotonic() + 20
    while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = %s",
                       (pid, event_type)).fetchone() is None:
        assert time.monotonic() < deadline, f"backend {pid} never waited on {event_type}"
        time.sleep(0.01)
