"""The global position: a reader following `read_all` never skips an event committed late,
and LISTEN/NOTIFY wakes it.

The gap this guards against: positions come from a sequence, taken before commit. Writer A
takes position p and is still inside its transaction when writer B takes p+1 and commits. A
reader that read "everything after the last position I saw" would get p+1 and never look at
p again, though A commits it a moment later.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from events.pgstore import (
    CHANNEL,
    GlobalRow,
    Notifier,
    PostgresEventStore,
    connect,
    read_all,
    wait_for_append,
)
from tests.events.eventlog_support import noted, noted_batch

pytestmark = pytest.mark.integration


def _positions(url: str) -> dict[str, list[int]]:
    """What a naive reader sees right now: every committed row, by position."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT log_id, position FROM trustledger_events ORDER BY position"
                            ).fetchall()
    out: dict[str, list[int]] = {}
    for log_id, position in rows:
        out.setdefault(log_id, []).append(position)
    return out


def test_a_reader_never_passes_a_position_whose_writer_has_not_committed(
        pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "a") as a, PostgresEventStore.open(pg_url, "b") as b, \
            connect(pg_url) as reader:
        a.append([noted(1)])
        b.append([noted(1)])
        assert [(g.log_id, g.record.seq) for g in read_all(reader, 0, 100)] == [
            ("a", 1), ("b", 1)]
        after = read_all(reader, 0, 100)[-1].position

        with a._conn.transaction():  # A takes its position and is held before its COMMIT
            a.append([noted(2)])
            b.append([noted(2)])  # B takes a later position and commits
            seen = _positions(pg_url)
            # The trap is set: a naive reader now sees B's later position, not A's.
            assert len(seen["b"]) == 2 and len(seen["a"]) == 1
            for _ in range(5):  # polling meanwhile gets nothing, so it passes nothing
                assert read_all(reader, after, 100) == []
                time.sleep(0.01)
        got = read_all(reader, after, 100)  # A committed: both, in position order
        assert [(g.log_id, g.record.seq) for g in got] == [("a", 2), ("b", 2)]
        assert got[0].position < got[1].position
        assert got[0].record.event == noted(2).event


def test_read_all_pages_in_position_order_and_checks_each_row(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "a") as a, PostgresEventStore.open(pg_url, "b") as b:
        a.append(noted_batch(1, 3))
        b.append(noted_batch(1, 2))
        a.append([noted(4)])
        expected = list(a.read())[:3] + list(b.read()) + list(a.read(4))
    with connect(pg_url) as reader:
        got: list[GlobalRow] = []
        after = 0
        while page := read_all(reader, after, 2):
            assert len(page) <= 2
            got += page
            after = page[-1].position
    assert [g.record for g in got] == expected
    assert [g.log_id for g in got] == ["a", "a", "a", "b", "b", "a"]
    assert [g.position for g in got] == sorted(g.position for g in got)


def test_an_append_must_be_the_first_write_of_its_transaction(pg_url: str) -> None:
    """The position rule needs each append's transaction id taken with its positions: a
    transaction that already wrote is refused, and leaves nothing."""
    from events.filelog import LogError

    with PostgresEventStore.open(pg_url, "a") as a:
        with pytest.raises(LogError, match="must be the first write"), a._conn.transaction():
            a._conn.execute("SELECT pg_current_xact_id()")
            a.append([noted(1)])
        assert _positions(pg_url) == {}


def test_concurrent_writers_and_a_following_reader_see_every_event_once_in_order(
        pg_url: str) -> None:
    """Eight writers on eight logs append while a reader follows by position; at the end the
    reader has every committed event exactly once, each log's in seq order."""
    writers, batches = 8, 25
    stop = threading.Event()
    seen: list[GlobalRow] = []

    def write(n: int) -> None:
        with PostgresEventStore.open(pg_url, f"r{n}") as store:
            for i in range(batches):
                store.append(noted_batch(i * 2 + 1, 2))

    def follow() -> None:
        after = 0
        with connect(pg_url) as conn:
            while True:
                done = stop.is_set()
                page = read_all(conn, after, 50)
                seen.extend(page)
                if page:
                    after = page[-1].position
                elif done:
                    return

    reader = threading.Thread(target=follow)
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    committed = _positions(pg_url)
    assert sorted(g.position for g in seen) == sorted(p for ps in committed.values() for p in ps)
    assert [g.position for g in seen] == sorted(g.position for g in seen)
    for n in range(writers):
        assert [g.record.seq for g in seen if g.log_id == f"r{n}"] == list(
            range(1, batches * 2 + 1))


def test_an_append_wakes_a_waiting_subscriber_which_then_reads_by_position(
        pg_url: str) -> None:
    with Notifier(pg_url) as notifier, PostgresEventStore.open(pg_url, "a") as a:
        assert notifier.wait(0.05) is False  # nothing yet
        woke: list[float] = []

        def subscriber() -> None:
            if notifier.wait(10):
                woke.append(time.monotonic())

        t = threading.Thread(target=subscriber)
        t.start()
        time.sleep(0.1)
        appended = time.monotonic()
        a.append([noted(1)])
        t.join(10)
        assert woke and woke[0] >= appended
        first = read_all(notifier.conn, 0, 10)
        assert [g.record.seq for g in first] == [1]
        a.append([noted(2)])
        a.append([noted(3)])
        assert notifier.wait(5) is True  # one wake-up, then a read gets all there is
        assert [g.record.seq for g in read_all(notifier.conn, first[-1].position, 10)] == [
            2, 3]


def test_no_notification_for_an_append_that_did_not_commit(pg_url: str) -> None:
    with connect(pg_url) as listener, PostgresEventStore.open(pg_url, "a") as a:
        assert wait_for_append(listener, 0.01) is False  # LISTENs from here on
        with pytest.raises(RuntimeError), a._conn.transaction():
            a.append([noted(1)])
            raise RuntimeError("roll back")
        assert wait_for_append(listener, 0.2) is False
        with PostgresEventStore.open(pg_url, "a") as fresh:
            assert fresh.head[0] == 0
            fresh.append([noted(1)])
        assert wait_for_append(listener, 5) is True
        n = listener.execute("SELECT count(*) FROM pg_listening_channels() c WHERE c = %s",
                             (CHANNEL,)).fetchone()
        assert n == (1,)


@pytest.mark.parametrize("sql", [
    "UPDATE trustledger_events SET core = overlay(core placing '\\xff' from 12) WHERE seq = 2",
    "UPDATE trustledger_events SET core = '\\x98c1', hash = sha256(prev || '\\x98c1'::bytea) "
    "WHERE seq = 2",
])
def test_read_all_refuses_a_row_altered_in_the_table(pg_url: str, sql: str) -> None:
    from events.filelog import LogCorrupted

    with PostgresEventStore.open(pg_url, "a") as a:
        a.append(noted_batch(1, 3))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.encode())
    with connect(pg_url) as reader, pytest.raises(LogCorrupted) as bad:
        read_all(reader, 0, 10)
    assert bad.value.damage.seq == 2 and "log a" in str(bad.value)
