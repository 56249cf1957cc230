"""PostgresEventStore beyond the shared contract: concurrency on one log, the hash chain the
file log makes, damage found on read, group commit, the log list, and clear errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.filelog import FileEventLog, LogCorrupted, LogError
from events.pgstore import (
    PostgresEventStore,
    RowDamage,
    StoreUnavailable,
    StreamConflict,
    list_logs,
    verify_log,
)
from events.store import GENESIS, PendingEvent
from tests.events.eventlog_support import batches, fingerprint, noted, noted_batch
from tests.support.peer_support import free_port
from tests.support.postgres import Cluster

pytestmark = pytest.mark.integration


def _rows(url: str, log_id: str) -> list[tuple[int, int]]:
    with psycopg.connect(url) as conn:
        return [(int(a), int(b)) for a, b in conn.execute(
            "SELECT seq, position FROM trustledger_events WHERE log_id = %s ORDER BY seq",
            (log_id,)).fetchall()]


# -- optimistic concurrency ------------------------------------------------------------------


def test_a_second_writer_on_one_log_gets_a_conflict_and_never_forks_it(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as first, \
            PostgresEventStore.open(pg_url, "r1") as second:
        first.append(noted_batch(1, 2))
        with pytest.raises(StreamConflict) as conflict:
            second.append(noted_batch(1, 3))
        assert second.head == (0, GENESIS)  # unchanged
        assert "r1" in str(conflict.value) and "seq 1" in str(conflict.value)
        assert conflict.value.render().startswith("% ")
        assert [s for s, _ in _rows(pg_url, "r1")] == [1, 2]  # nothing of the loser
        first.append([noted(3)])  # the winner goes on
    with PostgresEventStore.open(pg_url, "r1") as again:  # the loser re-reads and retries
        assert again.head[0] == 3
        recs = again.append([noted(4)])
        assert (recs[0].seq, recs[0].prev) == (4, again.read(3).__next__().hash)


def test_a_writer_behind_by_several_batches_conflicts_on_its_next_seq(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as first, \
            PostgresEventStore.open(pg_url, "r1") as second:
        second.append([noted(1)])
        first_head = first.head
        second.append(noted_batch(2, 4))
        with pytest.raises(StreamConflict) as conflict:
            first.append([noted(1)])
        assert conflict.value.seq == 1 and first.head == first_head
        assert len(list(second.read())) == 5


def test_logs_are_independent_streams_with_one_global_order(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as r1, \
            PostgresEventStore.open(pg_url, "r2") as r2:
        r1.append(noted_batch(1, 2))
        r2.append(noted_batch(1, 3))
        r1.append([noted(3)])
    positions = [p for _, p in _rows(pg_url, "r1")] + [p for _, p in _rows(pg_url, "r2")]
    assert len(set(positions)) == 6
    r1_pos, r2_pos = _rows(pg_url, "r1"), _rows(pg_url, "r2")
    assert r1_pos[1][1] < r2_pos[0][1] < r2_pos[2][1] < r1_pos[2][1]  # commit order


# -- the chain, the same as the file log's ---------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(log_batches=st.lists(batches, min_size=1, max_size=5))
def test_same_batches_give_the_file_logs_seqs_and_hashes(
        pg_cluster: Cluster, log_batches: list[list[PendingEvent]]) -> None:
    from tests.support.postgres import fresh_database

    with tempfile.TemporaryDirectory() as d, fresh_database(pg_cluster) as url, \
            FileEventLog.open(Path(d) / "log") as filelog, \
            PostgresEventStore.open(url, "device") as pg:
        for b in log_batches:
            assert fingerprint(pg.append(b)) == fingerprint(filelog.append(b))
        assert pg.head == filelog.head
        assert fingerprint(pg.read()) == fingerprint(filelog.read())
        assert list(pg.read_rows()) == list(filelog.read_rows())
        assert list(pg.read_rows(2, typed=True)) == list(filelog.read_rows(2, typed=True))


def test_the_core_column_holds_the_bytes_the_hash_covers(pg_url: str) -> None:
    from events.codec import encode_core
    from events.store import chain_hash

    with PostgresEventStore.open(pg_url, "r1") as store:
        recs = store.append(noted_batch(1, 3))
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT core, prev, hash FROM trustledger_events ORDER BY seq"
                              ).fetchall()
    for rec, (core, prev, h) in zip(recs, stored, strict=True):
        assert core == encode_core(rec.core()) and prev == rec.prev
        assert h == rec.hash == chain_hash(prev, core)


# -- damage is found on read -----------------------------------------------------------------


DAMAGE = {
    "core": ("UPDATE trustledger_events SET core = overlay(core placing '\\xff' from 12) "
             "WHERE seq = 3", 3, "hash chain broken"),
    "hash": ("UPDATE trustledger_events SET hash = sha256(hash) WHERE seq = 3", 3,
             "hash chain broken"),
    "prev": ("UPDATE trustledger_events SET prev = sha256(prev) WHERE seq = 3", 3,
             "hash chain broken"),
    "column": ("UPDATE trustledger_events SET actor = 'intruder' WHERE seq = 3", 3,
               "columns disagree"),
    "undecodable": ("UPDATE trustledger_events SET core = '\\x98c1', "
                    "hash = sha256(prev || '\\x98c1'::bytea) WHERE seq = 3", 3,
                    "undecodable event"),
    "gap": ("DELETE FROM trustledger_events WHERE seq = 3", 3, "expected seq 3"),
    "tail": ("DELETE FROM trustledger_events WHERE seq = 5", 5, "ends before seq 5"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_row_altered_in_the_table_is_named_on_read_and_by_verify(
        pg_url: str, kind: str) -> None:
    sql, seq, reason = DAMAGE[kind]
    with PostgresEventStore.open(pg_url, "r1") as store:
        store.append(noted_batch(1, 2))
        store.append(noted_batch(3, 3))
        assert verify_log(pg_url, "r1").damage is None
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.encode())
        for read in (lambda: list(store.read()), lambda: list(store.read_rows()),
                     lambda: list(store.read_rows(typed=True)), lambda: list(store.read(2))):
            with pytest.raises(LogCorrupted) as bad:
                read()
            assert bad.value.damage.seq == seq and reason in str(bad.value)
    report = verify_log(pg_url, "r1")
    if kind == "tail":
        # A store that knew the head sees the cut; a fresh look cannot tell a cut tail from
        # a shorter log (no head marker here: the audit's checkpoints are what catch it).
        assert (report.events, report.damage) == (4, None)
        return
    assert isinstance(report.damage, RowDamage)
    assert (report.damage.seq, report.events) == (seq, seq - 1)
    assert "log r1" in str(report.damage)


def test_verify_reports_the_whole_chain(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as store:
        store.append(noted_batch(1, 4))
        head = store.head
    report = verify_log(pg_url, "r1")
    assert (report.events, report.head_seq, report.head_hash, report.damage) == (
        4, 4, head[1], None)


# -- group commit, read-only, the log list ---------------------------------------------------


def test_group_commit_is_one_transaction_at_the_blocks_end(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as store:
        with store.group_commit():
            store.append(noted_batch(1, 2))
            store.append([noted(3)])
            assert store.head[0] == 3
            assert _rows(pg_url, "r1") == []  # nothing committed before the end
        with psycopg.connect(pg_url) as conn:
            txs = conn.execute("SELECT DISTINCT tx FROM trustledger_events").fetchall()
        assert len(txs) == 1 and [s for s, _ in _rows(pg_url, "r1")] == [1, 2, 3]


def test_a_failed_group_commit_leaves_nothing_and_restores_the_head(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as store:
        store.append([noted(1)])
        rival = PostgresEventStore.open(pg_url, "r1")
        head = store.head
        with pytest.raises(StreamConflict), store.group_commit():
            store.append([noted(2)])
            store.append([noted(3)])
            rival.append([noted(9)])  # takes seq 2 first
        assert store.head == head
        rival.close()
        assert [s for s, _ in _rows(pg_url, "r1")] == [1, 2]


def test_a_readonly_store_refuses_to_append_and_an_unknown_log(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as store:
        store.append([noted(1)])
    with PostgresEventStore.open(pg_url, "r1", readonly=True) as ro:
        assert ro.head[0] == 1 and len(list(ro.read())) == 1
        with pytest.raises(LogError, match="read-only"):
            ro.append([noted(2)])
    with pytest.raises(LogError, match="has no log r2"):
        PostgresEventStore.open(pg_url, "r2", readonly=True)


def test_list_logs_gives_each_log_its_kind_and_head(pg_url: str) -> None:
    assert list_logs(pg_url) == []
    with PostgresEventStore.open(pg_url, "r2") as r2, \
            PostgresEventStore.open(pg_url, "ca", kind="ca") as ca, \
            PostgresEventStore.open(pg_url, "r1"):
        r2.append(noted_batch(1, 3))
        ca.append([noted(1)])
    logs = list_logs(pg_url)
    assert [(i.log_id, i.kind, i.head_seq) for i in logs] == [
        ("ca", "ca", 1), ("r1", "device", 0), ("r2", "device", 3)]
    assert all(i.created_at_us > 1_600_000_000_000_000 for i in logs)


def test_a_log_opened_as_the_wrong_kind_is_refused(pg_url: str) -> None:
    PostgresEventStore.open(pg_url, "r1").close()
    with pytest.raises(LogError, match="r1 is a device log, not a ca log"):
        PostgresEventStore.open(pg_url, "r1", kind="ca")


# -- clear errors ----------------------------------------------------------------------------


def test_a_server_that_is_down_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://trustledger:secret@127.0.0.1:{free_port()}/fleet"
    with pytest.raises(StoreUnavailable) as down:
        PostgresEventStore.open(url, "r1")
    text = down.value.render()
    assert text.startswith("% Cannot open the event store postgresql://trustledger@127.0.0.1:")
    assert "Connection refused" in text and "secret" not in text
    assert "Traceback" not in text and "\n" not in text


def test_a_refused_login_and_a_missing_database_are_clear_errors(pg_cluster: Cluster) -> None:
    for url, why in ((f"postgresql://nosuchrole@{pg_cluster.host}:{pg_cluster.port}/postgres",
                      'role "nosuchrole" does not exist'),
                     (pg_cluster.url("nosuchdb"), 'database "nosuchdb" does not exist')):
        with pytest.raises(StoreUnavailable) as refused:
            PostgresEventStore.open(url, "r1")
        assert refused.value.render().startswith("% Cannot open the event store ")
        assert why in refused.value.render()


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_dropped_connection_before_an_append_is_reported_and_not_committed(
        pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "r1") as store:
        store.append([noted(1)])
        _terminate(pg_url, store._conn.info.backend_pid)
        with pytest.raises(StoreUnavailable) as lost:
            store.append([noted(2)])
        assert "was not committed (the log's head is seq 1)" in lost.value.render()
        assert store.head[0] == 1
        assert store.append([noted(2)])[0].seq == 2  # reconnected: goes on
    assert [s for s, _ in _rows(pg_url, "r1")] == [1, 2]


def test_a_lost_acknowledgement_is_found_committed_by_reading_never_appended_twice(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The COMMIT happened but the answer never came back: the store finds its batch at the
    head and returns it as committed."""
    with PostgresEventStore.open(pg_url, "r1") as store:
        store.append([noted(1)])
        conn = store._conn
        real = conn.execute

        def commit_then_drop(*args: object, **kwargs: object) -> object:
            real(*args, **kwargs)  # type: ignore[arg-type]
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(conn, "execute", commit_then_drop)
        recs = store.append(noted_batch(2, 2))
        assert store.head == (3, recs[-1].hash) and store._conn is not conn
        store.append([noted(4)])
    assert [s for s, _ in _rows(pg_url, "r1")] == [1, 2, 3, 4]


def test_a_connection_that_cannot_come_back_leaves_the_store_to_reread_its_head(
        pg_cluster: Cluster, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import events.pgstore as pgstore

    with PostgresEventStore.open(pg_url, "r1") as store:
        store.append([noted(1)])
        _terminate(pg_url, store._conn.info.backend_pid)
        real_connect = pgstore.connect

        def down(url: str) -> psycopg.Connection[object]:
            raise StoreUnavailable("Cannot open the event store: down.", sentence=True)

        monkeypatch.setattr(pgstore, "connect", down)
        with pytest.raises(StoreUnavailable, match="unknown until the log is read again"):
            store.append([noted(2)])
        monkeypatch.setattr(pgstore, "connect", real_connect)
        with PostgresEventStore.open(pg_url, "r1") as rival:  # meanwhile, another writer
            rival.append([noted(2)])
        assert store.append([noted(3)])[0].seq == 3  # the head was read again first
    assert [s for s, _ in _rows(pg_url, "r1")] == [1, 2, 3]


def test_connect_sets_its_defaults_and_the_url_wins(pg_url: str) -> None:
    from events.pgstore import connect

    with connect(pg_url) as conn:
        assert conn.autocommit
        assert conn.info.parameter_status("application_name") == "trustledger"
        assert conn.info.get_parameters()["keepalives_idle"] == "10"
    with connect(pg_url + "?application_name=fleet-view&keepalives_idle=60") as conn:
        assert conn.info.parameter_status("application_name") == "fleet-view"
        assert conn.info.get_parameters()["keepalives_idle"] == "60"


def test_an_unreadable_url_is_a_clear_error_that_does_not_show_it() -> None:
    with pytest.raises(StoreUnavailable) as bad:
        PostgresEventStore.open("postgresql://admin:secret@[bad", "r1")
    assert bad.value.render() == (
        "% Cannot open the event store: the store URL is not a PostgreSQL connection URL "
        "(postgresql://USER@HOST:PORT/DB).")


def test_a_failed_wake_up_fails_nothing_and_the_next_append_reconnects(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The NOTIFY goes after the COMMIT: if it cannot be sent, the batch is still committed
    (and acknowledged); the store reconnects and re-reads its head before the next append."""
    from events import pgstore

    with PostgresEventStore.open(pg_url, "r1") as store:
        conn = store._conn
        real = conn.execute

        def no_notify(query: object, *args: object, **kwargs: object) -> object:
            if query == pgstore._NOTIFY:
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return real(query, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(conn, "execute", no_notify)
        recs = store.append(noted_batch(1, 2))
        assert store.head == (2, recs[-1].hash) and conn.closed
        assert store.append([noted(3)])[0].prev == recs[-1].hash
        assert store._conn is not conn
    assert [s for s, _ in _rows(pg_url, "r1")] == [1, 2, 3]
