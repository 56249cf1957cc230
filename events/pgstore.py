"""`PostgresEventStore`: the event store port on PostgreSQL, one log per device (and per CA).

Theory of operation
-------------------
Schema (created idempotently by the first open, `ensure_schema`, under a transaction-level
advisory lock so two first opens do not race)::

    trustledger_logs(log_id text PRIMARY KEY, kind text ('device'|'ca'),
                     created_at timestamptz)
    trustledger_events(position bigint UNIQUE NOT NULL, log_id text, seq bigint,
                       type text, v int, at bigint, actor text, correlation text,
                       core bytea, prev bytea, hash bytea, tx xid8,
                       PRIMARY KEY (log_id, seq))
    trustledger_blobs(log_id text, name text, data bytea, PRIMARY KEY (log_id, name))
    sequence trustledger_position; function trustledger_append_v1(...)

A log is the rows of one `log_id`, numbered by `seq` from 1 without gaps. `core` is exactly
`events.codec.encode_core(record.core())`, the bytes the file log frames and hashes, so
`hash = sha256(prev || core)` here as there: the same batches give the same chain in both
stores, and `log verify` means the same thing on both. `type`, `v`, `at`, `actor` and
`correlation` are copies of the core's fields for queries (PostgreSQL text cannot hold NUL, so
a NUL is stored there as U+FFFD; the core holds the exact value). Every read checks each row
against the chain (seq, prev, hash over the stored core) and its copies against its core: a
row altered in the table is `LogCorrupted` naming its seq, never a silently wrong state.

Writers. One `append` is one statement, `SELECT trustledger_append_v1(...)` in autocommit, so
one transaction and one round-trip (then the NOTIFY, below): the batch goes over as arrays (one
element per event) and the function inserts them with one INSERT over unnest(); a
`group_commit()` block sends all its batches in one such statement at its end. Optimistic
concurrency is the primary
key: a batch starts at this store's head + 1, so if another writer appended to the same log
since, the INSERT hits an existing (log_id, seq) and the whole transaction rolls back
(`StreamConflict`, the store's head unchanged). Two writers can never fork a log.

The global position, and the gap it must not open. `position` comes from a sequence, and a
sequence is not commit order: writer A can take position 10, writer B position 11 and commit
first, and a reader that then reads "everything after 10" has passed A's event for good. The
remedy here: each row records the id of the transaction that wrote it (`tx`, xid8), and a
reader takes only rows whose transaction is older than every transaction still running,
`tx < pg_snapshot_xmin(pg_current_snapshot())` (evaluated in the reading statement's own
snapshot), and stops at the first row it sees that is not (`read_all`). That is safe only if
position order and transaction-id order agree, which a sequence alone does not give (an id
is assigned at a transaction's first write, its positions a moment later, and two writers can
interleave in between). So the append function takes its transaction id and its positions
inside one short critical section, a session-level advisory lock taken and released inside
the function (`_LOCK`), held for the INSERT only, not across the COMMIT. Then a transaction
with a smaller id has smaller positions; a row read at position p had tx < xmin, so every
transaction holding a smaller position had an even smaller id, was finished when the reader
read, and its rows (if it committed) were visible in the same snapshot: nothing below p can
appear later. `tests/events/test_pgstore_global.py` holds writer A inside its transaction after
it took its position while B commits a later one, and checks a polling reader never passes A.

Why not the table lock pyeventsourcing takes (`LOCK TABLE ... IN EXCLUSIVE MODE` until the
commit): it serializes the writers' commits, WAL flush included, so 50 writers commit one
fsync at a time. The advisory lock covers the insert only: commits (and their WAL flushes,
which PostgreSQL groups) run in parallel. What it costs: a lock round and a subtransaction
(the function's EXCEPTION block, which releases the lock if the INSERT fails) per append.
Measured with 50 writers, one-event commits, default durability (tools/bench/
pg_append_bench.py, three runs on a loaded 2-core machine): 2,300-3,300 commits/s, p99 42-83
ms; with no remedy at all 3,400-3,650/s (the remedy costs 10-34%, noise included); with the
table lock 310-410/s. What readers
give up: a transaction that stays open holding an id (anywhere in the cluster) holds back
every reader's xmin, so the fleet's views lag behind it (they never skip).

Notifications: once an append has committed, the store sends `NOTIFY trustledger_events,
'<log_id>'` as a statement of its own; subscribers (`wait_for_append`) wake on it and then read
by position. A notification is a wake-up, never data: a subscriber that misses one reads by
position anyway at its next wake-up or timeout. Why not NOTIFY inside the append's transaction
(which would make a notification exactly as certain as the commit): PostgreSQL serializes the
commits of notifying transactions (a database-wide lock taken before the commit and held until
after its WAL flush, so that notifications queue in commit order), which took 50 concurrent
writers from ~3,300 to ~360 commits/s (tools/bench/pg_append_bench.py). Sent after the commit,
a notification costs a second round-trip and a short critical section with no flush in it; the
price is that a writer killed between its COMMIT and its NOTIFY leaves subscribers to find its
events at their next wake-up (another append's, or their poll timeout).

Single writers (`WriterLock`, `writer_lock`). Optimistic concurrency lets any number of
writers share a log (two device engines on one device: the loser of a race catches up). A log
that must have ONE writer, as a file log has (the built-in CA: `ca serve` holds it, and the
other `ca` commands go through its admin endpoint), takes a session-level advisory lock on a
dedicated connection, keyed (WRITER_LOCK_CLASS, hashtext('trustledger:' || log_id)), for as
long as it has the log open for writing: `pg_try_advisory_lock`, never a wait, so a second
writer is refused at once (`WriterLocked`). `release` unlocks explicitly before it closes the
session, so the lock is free when it returns; the process dying or the server dropping the
connection release it too. Two log ids whose hashes
collide share a lock (refused as "in use" though they are not; never two writers on one log).
Readers take no lock. Devices do not take it.

A lock lost under the writer (the server ended its session: `pg_terminate_backend`, a
restart, a cut network that the keepalives notice) is found before the writer's next append
(`WriterLock.held`: a zero-timeout poll of the lock session's socket, which the server's
goodbye or a dead connection makes readable, then one `SELECT 1` to be sure; an idle session
that is still there costs no round trip). The writer then takes the lock again if nobody
holds it AND the log's head is still the one it knows: nobody appended while it was unlocked,
so it is still the only writer of this history. Otherwise (`WriterLockLost`) it must stop
writing: another process holds the lock, or wrote meanwhile.

Connection trouble is a `StoreUnavailable` (a `LogError`) with a sentence, never a psycopg
traceback. A connection that drops during an append leaves the batch in doubt (the COMMIT may
have happened): the store reconnects, makes sure the old backend is gone (so the transaction
is over, committed or not), and reads its head to find out; it never appends the batch again.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from events.filelog import Damage, LogCorrupted, LogError, LogLocked, VerifyReport
from events.store import GENESIS, PendingEvent, Recorded, seal_encoded

CHANNEL = "trustledger_events"
"""The LISTEN/NOTIFY channel; the payload is the log_id that was appended to."""

KINDS = ("device", "ca")
APPLICATION_NAME = "trustledger"
CONNECT_TIMEOUT_S = 10
READ_PAGE = 1000  # rows per round-trip when a log is read
_LOCK = 0x74726C706F736E  # the advisory lock key of position assignment ("trlposn")
_SCHEMA_LOCK = 0x74726C736368  # the advisory lock key of ensure_schema ("trlsch")
WRITER_LOCK_CLASS = 0x74726C77  # first key of a log's single-writer lock ("trlw")
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
              "keepalives_count": 3}
_SETTLE_S = 10.0  # how long a reconnecting store waits for the old backend to end

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS trustledger_logs (
    log_id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('device', 'ca')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS trustledger_position AS bigint;
CREATE TABLE IF NOT EXISTS trustledger_blobs (
    log_id text NOT NULL,
    name text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (log_id, name)
);
CREATE TABLE IF NOT EXISTS trustledger_events (
    position bigint NOT NULL UNIQUE,
    log_id text NOT NULL,
    seq bigint NOT NULL CHECK (seq >= 1),
    type text NOT NULL,
    v int NOT NULL,
    at bigint NOT NULL,
    actor text NOT NULL,
    correlation text NOT NULL,
    core bytea NOT NULL,
    prev bytea NOT NULL,
    hash bytea NOT NULL,
    tx xid8 NOT NULL,
    PRIMARY KEY (log_id, seq)
);
CREATE OR REPLACE FUNCTION trustledger_append_v1(
    p_log text, p_first bigint, p_type text[], p_v int[], p_at bigint[], p_actor text[],
    p_correlation text[], p_core bytea[], p_prev bytea[], p_hash bytea[]) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    last_position bigint;
BEGIN
    -- Transaction id and positions in one critical section (see events/pgstore.py).
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'trustledger_append_v1 must be the first write of its transaction';
    END IF;
    PERFORM pg_advisory_lock({_LOCK});
    BEGIN
        INSERT INTO trustledger_events
            (position, log_id, seq, type, v, at, actor, correlation, core, prev, hash, tx)
        SELECT nextval('trustledger_position'), p_log, p_first + r.n - 1, r.type, r.v, r.at,
               r.actor, r.correlation, r.core, r.prev, r.hash, pg_current_xact_id()
        FROM unnest(p_type, p_v, p_at, p_actor, p_correlation, p_core, p_prev, p_hash)
             WITH ORDINALITY AS r(type, v, at, actor, correlation, core, prev, hash, n);
        last_position := currval('trustledger_position');
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock({_LOCK});
        RAISE;
    END;
    PERFORM pg_advisory_unlock({_LOCK});
    RETURN last_position;
END
$fn$;
"""  # noqa: S608 (module constants only, no input)

_APPEND = ("SELECT trustledger_append_v1(%s, %s, %s::text[], %s::int[], %s::bigint[], "
           "%s::text[], %s::text[], %s::bytea[], %s::bytea[], %s::bytea[])")
_NOTIFY = "SELECT pg_notify(%s, %s)"
_READ_LOG = ("SELECT position, seq, type, v, at, actor, correlation, core, prev, hash "
             "FROM trustledger_events WHERE log_id = %s AND seq >= %s AND seq <= %s "
             "ORDER BY seq LIMIT %s")
_READ_ALL = ("SELECT position, log_id, tx < pg_snapshot_xmin(pg_current_snapshot()), seq, "
             "core, prev, hash FROM trustledger_events WHERE position > %s "
             "ORDER BY position LIMIT %s")


# -- errors ----------------------------------------------------------------------------------


class StoreUnavailable(LogError):
    """The server cannot be reached, refused the login, or the connection dropped."""


class StoreRefused(LogError):
    """The server answered but refused the statement (a read-only database or role, a
    missing privilege, a timeout): a runtime failure, as an unreachable store is; nothing
    the statement would have written is stored."""


class StreamConflict(LogError):
    """Another writer appended to the same log since this store's head."""

    def __init__(self, log_id: str, seq: int) -> None:
        super().__init__(f"The event log {log_id} already has seq {seq}: another writer "
                         "appended to it since this one read it. Nothing was written; read "
                         "the log again and retry.", sentence=True)
        self.log_id, self.seq = log_id, seq


@dataclass(frozen=True)
class RowDamage(Damage):
    """Where a stored row fails a check: `segment` is the log_id, `offset` the position."""

    def __str__(self) -> str:
        at = f"seq {self.seq}, " if self.seq is not None else ""
        return f"{self.reason} ({at}log {self.segment}, position {self.offset})"


def _corrupted(log_id: str, position: int, seq: int | None, reason: str) -> LogCorrupted:
    return LogCorrupted(RowDamage(log_id, position, seq, reason))


def redacted(url: str) -> str:
    """`url` as an operator may read it: user@host:port/dbname, never a password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable store URL)"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    host, sockets = str(info.get("host", "")), ""
    if host.startswith("/"):  # a Unix socket directory: only a parameter can say it
        host, sockets = "", f"?host={host}"
    elif ":" in host:  # an IPv6 address, bracketed as in any URL
        host = ",".join(f"[{h}]" if ":" in h else h for h in host.split(","))
    return f"postgresql://{user}{host}{port}/{info.get('dbname', '')}{sockets}"


def _why(e: psycopg.Error) -> str:
    """libpq's reason, one line, without its 'connection failed:' preamble."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    for noise in ("connection failed: ", "consuming input failed: "):
        text = text.replace(noise, "")
    return text.rstrip(".")


def connect(url: str) -> psycopg.Connection[Any]:
    """The one way this module connects: autocommit (every statement is its own transaction
    unless a block says otherwise), a connect timeout, `application_name=trustledger` (it
    names our sessions in pg_stat_activity), TCP keepalives (a server that vanished without
    closing the connection, a cut network, is noticed in about 20 s instead of never).
    Settings the URL gives win. StoreUnavailable if it cannot connect."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:  # its text quotes the URL, password and all
        raise StoreUnavailable("Cannot open the event store: the store URL is not a "
                               "PostgreSQL connection URL (postgresql://USER@HOST:PORT/DB).",
                               sentence=True) from None
    defaults: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S,
                                "application_name": APPLICATION_NAME, **KEEPALIVES}
    try:
        return psycopg.connect(url, autocommit=True,
                               **{k: v for k, v in defaults.items() if k not in given})
    except psycopg.Error as e:
        raise StoreUnavailable(f"Cannot open the event store {redacted(url)}: {_why(e)}.",
                               sentence=True) from None


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the tables, sequence and append function if missing (idempotent; a store
    made before `trustledger_blobs` existed gets it at its next writable open)."""
    row = conn.execute("SELECT to_regprocedure('trustledger_append_v1(text, bigint, text[], "
                       "int[], bigint[], text[], text[], bytea[], bytea[], bytea[])') IS NOT "
                       "NULL AND to_regclass('trustledger_blobs') IS NOT NULL").fetchone()
    if row is not None and row[0]:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(_SCHEMA.encode())


# -- the store -------------------------------------------------------------------------------


def _text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


class PostgresEventStore:
    """One log (`log_id`) of a PostgreSQL event store; see the module docstring."""

    def __init__(self, conn: psycopg.Connection[Any], url: str, log_id: str, kind: str,
                 readonly: bool, head: tuple[int, bytes]) -> None:
        self._conn = conn
        self.url, self.log_id, self.kind, self.readonly = url, log_id, kind, readonly
        self._head = head
        self._durable = head  # the last committed (seq, hash): head outside a group commit
        self._group_depth = 0
        self._group: list[tuple[list[Recorded], list[bytes]]] = []
        self._stale = False  # a connection dropped: re-read the head before appending

    @classmethod
    def open(cls, url: str, log_id: str, *, kind: str = "device",
             readonly: bool = False) -> PostgresEventStore:
        """The log `log_id` of the store at `url`, created (empty) unless `readonly`."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if not log_id or "\x00" in log_id:
            raise LogError(f"Invalid event log name {log_id!r}.", sentence=True)
        conn = connect(url)
        try:
            with _translated(url, "open the event store"):
                if not readonly:
                    ensure_schema(conn)
                    conn.execute("INSERT INTO trustledger_logs (log_id, kind) VALUES (%s, %s) "
                                 "ON CONFLICT (log_id) DO NOTHING", (log_id, kind))
                found = _log_kind(conn, log_id)
                if found is None:
                    raise LogError(f"The event store {redacted(url)} has no log {log_id}.",
                                   sentence=True)
                if found != kind:
                    raise LogError(f"The event log {log_id} is a {found} log, not a {kind} "
                                   "log.", sentence=True)
                head = _read_head(conn, log_id)
        except BaseException:
            conn.close()
            raise
        return cls(conn, url, log_id, kind, readonly, head)

    # -- the port ---------------------------------------------------------------------------

    @property
    def head(self) -> tuple[int, bytes]:
        return self._head

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]:
        """Append one command's events in one transaction; committed when this returns
        (inside `group_commit()`, the block's end commits)."""
        if self.readonly:
            raise LogError("event log is open read-only")
        if not batch:
            return []
        if self._stale and not self._group:
            self._refresh_head()
        seq, prev = self._head
        records, cores = seal_encoded(batch, seq + 1, prev)
        if self._group_depth:
            self._group.append((records, cores))
        else:
            self._commit(records, cores)
        self._head = records[-1].seq, records[-1].hash
        return records

    @contextlib.contextmanager
    def group_commit(self) -> Iterator[None]:
        """Bulk writers: every batch appended inside the block is committed in one
        transaction (one statement) at its end; nothing inside is committed before. If that
        commit fails, none of them is in the log and the head goes back to before the block.
        The block's events travel as one statement's parameters: an importer groups tens of
        thousands at a time, not millions. Reads inside the block see only what committed."""
        self._group_depth += 1
        try:
            yield
        finally:
            self._group_depth -= 1
            if not self._group_depth and self._group:
                group, self._group = self._group, []
                records = [r for recs, _ in group for r in recs]
                cores = [c for _, cs in group for c in cs]
                try:
                    self._commit(records, cores)
                except BaseException:
                    self._head = self._durable
                    raise

    def _commit(self, records: list[Recorded], cores: list[bytes]) -> None:
        """One statement, one transaction: the rows and their positions; then the wake-up."""
        first = records[0].seq
        params = (self.log_id, first, [r.type for r in records], [r.v for r in records],
                  [r.at for r in records], [_text(r.actor) for r in records],
                  [_text(r.correlation) for r in records], cores,
                  [r.prev for r in records], [r.hash for r in records])
        conn = self._connection()
        pid = conn.info.backend_pid
        try:
            conn.execute(_APPEND, params, prepare=True)
        except pg_errors.UniqueViolation:
            raise StreamConflict(self.log_id, first) from None
        except psycopg.OperationalError as e:
            self._in_doubt(e, pid, records[-1])
        except psycopg.Error as e:
            raise StoreRefused(f"The event store {redacted(self.url)} refused the append to "
                           f"{self.log_id}: {_why(e)}.", sentence=True) from None
        self._durable = records[-1].seq, records[-1].hash
        self._notify()

    def _notify(self) -> None:
        """Wake the subscribers (after the commit: see the module docstring). A failure here
        fails nothing (the batch is committed); the next append reconnects first."""
        try:
            self._conn.execute(_NOTIFY, (CHANNEL, self.log_id), prepare=True)
        except psycopg.Error:
            self._stale = True
            with contextlib.suppress(psycopg.Error):
                self._conn.close()

    def _in_doubt(self, cause: psycopg.Error, pid: int, last: Recorded) -> None:
        """The connection dropped during an append: did it commit? Reconnect, wait for the
        old backend to be gone, read the head. Returns if it committed; raises if not or if
        that cannot be found out (then the next append re-reads the head first)."""
        self._stale = True
        with contextlib.suppress(psycopg.Error):
            self._conn.close()
        where = redacted(self.url)
        try:
            self._conn = connect(self.url)
            _settle(self._conn, pid)
            head = _read_head(self._conn, self.log_id)
        except (LogError, psycopg.Error):
            raise StoreUnavailable(
                f"Lost the connection to the event store {where} during an append to "
                f"{self.log_id} ({_why(cause)}), and cannot reconnect: whether seq "
                f"{last.seq} was committed is unknown until the log is read again.",
                sentence=True) from None
        self._stale = False
        if head == (last.seq, last.hash):
            return  # it committed: the acknowledgement was lost, not the batch
        self._head = self._durable = head
        raise StoreUnavailable(f"Lost the connection to the event store {where} during an "
                               f"append to {self.log_id} ({_why(cause)}); the append was not "
                               f"committed (the log's head is seq {head[0]}).", sentence=True)

    def _connection(self) -> psycopg.Connection[Any]:
        """The store's connection, connected again if a failure closed it."""
        if self._conn.closed:
            self._conn = connect(self.url)
        return self._conn

    def _refresh_head(self) -> None:
        with _translated(self.url, "read the event log head"):
            self._head = self._durable = _read_head(self._connection(), self.log_id)
        self._stale = False

    def read(self, from_seq: int = 1) -> Iterator[Recorded]:
        """Events with seq >= from_seq up to the head as of the first step, checked."""
        for c, prev, h in self._checked(from_seq, _decode_cores):
            yield Recorded(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], prev, h, [])

    def read_rows(self, from_seq: int = 1, *, typed: bool = False) -> Iterator[Sequence[Any]]:
        """`FileEventLog.read_rows`'s rows `[seq, stream, type, v, at, actor, correlation,
        payload, hash]` (with `typed`, tuples whose payload is the event, decoded by
        `events.typed` from the stored bytes), checked as `read` checks them."""
        if typed:
            for row, _prev, _h in self._checked(from_seq, _decode_typed):
                yield row
            return
        for c, _prev, h in self._checked(from_seq, _decode_cores):
            yield [*c, h]

    def _checked(self, from_seq: int, decode: _Decode
                 ) -> Iterator[tuple[Sequence[Any], bytes, bytes]]:
        """(decoded row, prev, hash) of each row from `from_seq` to the head, read a page at a
        time and checked: numbered without gaps, chained from the row before (from GENESIS
        at seq 1), its hash over its stored core, its column copies equal to its core.
        `decode` turns a page of stored rows into rows whose first seven fields are the
        core's (seq, stream, type, v, at, actor, correlation)."""
        head = self._durable[0]
        start = max(from_seq, 1)
        expect, prev = max(start - 1, 1), GENESIS if start <= 1 else None
        while expect <= head:
            with _translated(self.url, "read the event log"):
                rows = self._connection().execute(
                    _READ_LOG, (self.log_id, expect, head, READ_PAGE), prepare=True,
                    binary=True).fetchall()
            if not rows:
                break
            prevs, expect, prev, damage = _check_chain(self.log_id, rows, expect, prev)
            good = rows[:len(prevs)]  # the rows before the first broken link
            decoded: list[Sequence[Any]] | None
            try:
                decoded = decode(good)
            except (ValueError, TypeError, IndexError):
                decoded = None  # row by row, to name the first that does not decode
            for i, (raw, p) in enumerate(zip(good, prevs, strict=True)):
                row = decoded[i] if decoded is not None else _decode_one(self.log_id, raw,
                                                                         decode)
                _check_columns(self.log_id, raw, row)
                if raw[1] >= start:
                    yield row, p, raw[9]
            if damage is not None:
                raise damage
        if expect <= head:
            raise _corrupted(self.log_id, 0, expect, f"the log ends before seq {expect} "
                             f"(its head is {head})")

    # -- blobs: bytes the log's events name by their SHA-256 (a device's CRLs) -------------

    def put_blobs(self, blobs: Sequence[bytes]) -> list[str]:
        """Store `blobs` beside this log, each named by its hex SHA-256 (once: the same bytes
        are the same name); committed when this returns (one statement, in autocommit even
        inside a group commit, so an event naming one can follow). Their names."""
        if self.readonly:
            raise LogError("event log is open read-only")
        names = [hashlib.sha256(b).hexdigest() for b in blobs]
        if names:
            with _translated(self.url, "store a blob"):
                self._connection().execute(
                    "INSERT INTO trustledger_blobs (log_id, name, data) SELECT %s, n, d FROM "
                    "unnest(%s::text[], %s::bytea[]) AS b(n, d) ON CONFLICT DO NOTHING",
                    (self.log_id, names, list(blobs)))
        return names

    def blob_names(self, names: Sequence[str]) -> set[str]:
        """Which of `names` are stored beside this log."""
        with _translated(self.url, "read the blob names"):
            try:
                rows = self._connection().execute(
                    "SELECT name FROM trustledger_blobs WHERE log_id = %s AND name = ANY(%s)",
                    (self.log_id, list(names))).fetchall()
            except pg_errors.UndefinedTable:
                return set()
        return {str(r[0]) for r in rows}

    def get_blob(self, name: str) -> bytes | None:
        """The bytes stored beside this log under `name`, unchecked; None if there are none
        (or the store predates blobs)."""
        with _translated(self.url, "read a blob"):
            try:
                row = self._connection().execute(
                    "SELECT data FROM trustledger_blobs WHERE log_id = %s AND name = %s",
                    (self.log_id, name), binary=True).fetchone()
            except pg_errors.UndefinedTable:
                return None
        return None if row is None else bytes(row[0])

    def stored_head(self) -> tuple[int, bytes]:
        """The head the store holds now (another writer's appends included); this handle's
        own head is unchanged."""
        with _translated(self.url, "read the event log head"):
            return _read_head(self._connection(), self.log_id)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_Decode = Callable[[list[Any]], list[Sequence[Any]]]
"""Stored rows `(position, seq, type, v, at, actor, correlation, core, prev, hash)` -> rows
whose first seven fields are the core's `seq, stream, type, v, at, actor, correlation`."""


def _check_chain(log_id: str, rows: list[Any], expect: int, prev: bytes | None
                 ) -> tuple[list[bytes], int, bytes | None, LogCorrupted | None]:
    """Each stored row's link, checked: seqs from `expect` on, each prev the hash before
    (`prev` None: the first row's own stored prev is taken, a read starting mid-log), each
    hash SHA-256 over its prev and its stored core. Returns the prevs of the rows before the
    first that fails, the next seq, the last good hash, and that failure (None if none)."""
    sha256 = hashlib.sha256
    prevs: list[bytes] = []
    for position, seq, _t, _v, _a, _ac, _c, core, stored_prev, h in rows:
        if seq != expect:
            why = f"expected seq {expect}, found seq {seq}"
            return prevs, expect, prev, _corrupted(log_id, position, expect, why)
        if prev is not None and stored_prev != prev:
            return prevs, expect, prev, _corrupted(log_id, position, seq,
                                                   "hash chain broken (prev)")
        if sha256(stored_prev + core).digest() != h:
            return prevs, expect, prev, _corrupted(log_id, position, seq, "hash chain broken")
        prevs.append(stored_prev)
        prev, expect = h, expect + 1
    return prevs, expect, prev, None


def _decode_one(log_id: str, raw: Sequence[Any], decode: _Decode) -> Sequence[Any]:
    """One stored row decoded alone (a page that did not decode is gone through row by
    row, to name the first row that does not)."""
    try:
        return decode([raw])[0]
    except (ValueError, TypeError, IndexError) as e:
        raise _corrupted(log_id, raw[0], raw[1], f"undecodable event: {e}") from e


def _check_columns(log_id: str, raw: Sequence[Any], row: Sequence[Any]) -> None:
    """The stored row's query columns are its core's fields (NUL stored as U+FFFD)."""
    position, seq, typ, v, at, actor, corr = raw[:7]
    if not (row[0] == seq and row[2] == typ and row[3] == v and row[4] == at
            and _text(row[5]) == actor and _text(row[6]) == corr):
        raise _corrupted(log_id, position, seq, "the row's columns disagree with its core")


def _decode_cores(rows: list[Any]) -> list[Sequence[Any]]:
    """Each row's core, decoded as the file log decodes a row (arrays as tuples)."""
    unpack = msgpack.unpackb
    out = [unpack(r[7], raw=False, use_list=False, strict_map_key=True) for r in rows]
    for c in out:
        if type(c) is not tuple or len(c) != 8:
            raise ValueError("a core is not an 8-element array")
    return out


def _decode_typed(rows: list[Any]) -> list[Sequence[Any]]:
    """The rows as `events.typed.decode_events` gives a frame's: the page is laid out as the
    file log's frame body `[[*core, hash], ...]` (a core is `0x98 elements`, a stored row
    `0x99 elements 0xc4 0x20 hash`) and decoded in one call, straight into events."""
    from events.typed import decode_events

    parts = [b"\xdd" + len(rows).to_bytes(4, "big")]
    for r in rows:
        core = r[7]
        if core[:1] != b"\x98":
            raise ValueError("a core is not an 8-element array")
        parts += (b"\x99", core[1:], b"\xc4\x20", r[9])
    return decode_events(b"".join(parts))


def _read_head(conn: psycopg.Connection[Any], log_id: str) -> tuple[int, bytes]:
    row = conn.execute("SELECT seq, hash FROM trustledger_events WHERE log_id = %s "
                       "ORDER BY seq DESC LIMIT 1", (log_id,)).fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


def _log_kind(conn: psycopg.Connection[Any], log_id: str) -> str | None:
    try:
        row = conn.execute("SELECT kind FROM trustledger_logs WHERE log_id = %s",
                           (log_id,)).fetchone()
    except pg_errors.UndefinedTable:
        return None
    return None if row is None else str(row[0])


def _settle(conn: psycopg.Connection[Any], pid: int) -> None:
    """Wait until backend `pid` (a dropped connection's) is gone, ending it if need be: its
    transaction is then over, committed or rolled back, and a read tells which."""
    deadline = time.monotonic() + _SETTLE_S
    while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        with contextlib.suppress(pg_errors.InsufficientPrivilege):  # then it ends by itself
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"The event store's backend {pid} does not end.",
                                   sentence=True)
        time.sleep(0.02)


@contextlib.contextmanager
def _translated(url: str, doing: str) -> Iterator[None]:
    """psycopg's errors as LogErrors with a sentence (what we were doing, where, why)."""
    try:
        yield
    except psycopg.OperationalError as e:
        raise StoreUnavailable(f"Lost the event store {redacted(url)} trying to {doing}: "
                               f"{_why(e)}.", sentence=True) from None
    except psycopg.Error as e:
        raise StoreRefused(f"The event store {redacted(url)} failed to {doing}: {_why(e)}.",
                           sentence=True) from None


# -- single writers ----------------------------------------------------------------------------


class WriterLocked(LogLocked):
    """Another session holds the log's single-writer lock (see `WriterLock`)."""


class WriterLockLost(LogError):
    """The single-writer lock was lost and could not be taken back safely: stop writing."""


class WriterLockPending(WriterLockLost):
    """The lock was dropped (the server ended its session) and the store cannot be reached
    yet to take it back: this append is refused, nothing written; a later append, or the
    keepalive, takes it back once that is provably safe."""


class WriterLock:
    """The single-writer lock of one log (module doc, "Single writers"), held on a connection
    of its own from `acquire` until `release` (or the session's end)."""

    def __init__(self, conn: psycopg.Connection[Any], log_id: str) -> None:
        self._conn: psycopg.Connection[Any] | None = conn
        self.log_id = log_id

    @classmethod
    def acquire(cls, url: str, log_id: str) -> WriterLock:
        """Take the lock, or WriterLocked at once if another session holds it."""
        conn = connect(url)
        try:
            with _translated(url, "lock the event log"):
                row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                   (WRITER_LOCK_CLASS, "trustledger:" + log_id)).fetchone()
        except BaseException:
            conn.close()
            raise
        if row is None or not row[0]:
            conn.close()
            raise WriterLocked(f"The event log {log_id} is open for writing by another "
                               "process.", sentence=True)
        return cls(conn, log_id)

    def held(self) -> bool:
        """Whether the lock's session is still there (so it still holds the lock): see the
        module doc, "Single writers". False once released."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            quiet = not select.select([conn.fileno()], [], [], 0)[0]
        except (OSError, ValueError, psycopg.Error):
            quiet = False
        if quiet:
            return True
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            return False
        return True

    def release(self) -> None:
        """Unlock, then end the lock's session. The explicit unlock is what makes the release
        immediate: closing alone only tells the server, whose backend lets go of the lock when it
        notices, a moment after this returns, so a process reopening the log at once was refused
        (seen in CI). If the server is gone, its session and the lock are gone with it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            with contextlib.suppress(psycopg.Error):  # broken: its end released the lock
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))",
                             (WRITER_LOCK_CLASS, "trustledger:" + self.log_id))
        finally:
            conn.close()

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_lock(url: str, log_id: str) -> WriterLock:
    """`WriterLock.acquire`: the single-writer lock of `log_id` in the store at `url`."""
    return WriterLock.acquire(url, log_id)


# -- the whole store: logs, global order, notifications --------------------------------------


class LogInfo(NamedTuple):
    log_id: str
    kind: str
    head_seq: int
    created_at_us: int


def list_logs(url: str) -> list[LogInfo]:
    """Every log of the store at `url`, by log_id, with its head seq."""
    with connect(url) as conn, _translated(url, "list the event logs"):
        if not _has_schema(conn):
            return []
        rows = conn.execute(
            "SELECT l.log_id, l.kind, coalesce((SELECT max(seq) FROM trustledger_events e "
            "WHERE e.log_id = l.log_id), 0), (extract(epoch FROM l.created_at) * 1000000)"
            "::bigint FROM trustledger_logs l ORDER BY l.log_id").fetchall()
    return [LogInfo(str(a), str(b), int(c), int(d)) for a, b, c, d in rows]


def _has_schema(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('trustledger_events')").fetchone()
    return row is not None and row[0] is not None


class GlobalRow(NamedTuple):
    position: int
    log_id: str
    record: Recorded


def read_all(conn: psycopg.Connection[Any], after: int, limit: int) -> list[GlobalRow]:
    """Up to `limit` events with position > `after`, in position order, from every log,
    stopping before the first one whose transaction is not older than every running one
    (see the module docstring): a reader that follows the last position it got never skips
    an event committed late. Each row's hash is checked over its stored core."""
    with _translated(_url_of(conn), "read the events"):
        try:
            rows = conn.execute(_READ_ALL, (after, limit), prepare=True, binary=True).fetchall()
        except pg_errors.UndefinedTable:
            return []  # no log was ever opened there: nothing to read yet
    out: list[GlobalRow] = []
    unpack, sha256 = msgpack.unpackb, hashlib.sha256
    for position, log_id, settled, seq, core, prev, h in rows:
        if not settled:
            break
        if sha256(prev + core).digest() != h:
            raise _corrupted(log_id, position, seq, "hash chain broken")
        try:
            c = unpack(core, raw=False, use_list=False, strict_map_key=True)
            whole = type(c) is tuple and len(c) == 8 and c[0] == seq
        except ValueError:  # msgpack's errors are ValueErrors
            whole = False
        if not whole:
            raise _corrupted(log_id, position, seq, "undecodable event or wrong seq")
        rec = Recorded(seq, c[1], c[2], c[3], c[4], c[5], c[6], c[7], prev, h, [])
        out.append(GlobalRow(position, log_id, rec))
    return out


_LISTENING: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()  # LISTENing already


def wait_for_append(conn: psycopg.Connection[Any], timeout_s: float) -> bool:
    """Block until some log is appended to (a NOTIFY on `CHANNEL`) or `timeout_s` passes;
    True if woken by an append. The first call LISTENs on `conn` (which must then be used
    for nothing but `read_all` and this); notifications that arrived since the last call
    count at once. Then read by position: a notification carries no data."""
    with _translated(_url_of(conn), "wait for appends"):
        if conn not in _LISTENING:
            conn.execute(f"LISTEN {CHANNEL}")
            _LISTENING.add(conn)
        woken = False
        for _ in conn.notifies(timeout=timeout_s, stop_after=1):
            woken = True
        if woken:  # drain what else is queued: one wake-up covers them all
            list(conn.notifies(timeout=0))
    return woken


class Notifier:
    """A connection that LISTENs for appends: `wait(timeout_s) -> bool`, then read by
    position on `conn`."""

    def __init__(self, url: str) -> None:
        self.conn = connect(url)
        with _translated(url, "listen for appends"):
            self.conn.execute(f"LISTEN {CHANNEL}")
        _LISTENING.add(self.conn)

    def wait(self, timeout_s: float) -> bool:
        return wait_for_append(self.conn, timeout_s)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _url_of(conn: psycopg.Connection[Any]) -> str:
    """Where `conn` goes, for a message (no password)."""
    try:
        info = conn.info
        return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"
    except psycopg.Error:
        return "(a closed connection)"


# -- audit -----------------------------------------------------------------------------------


def verify_log(url: str, log_id: str) -> VerifyReport:
    """Walk the whole chain of `log_id` as `events.filelog.verify` walks a directory: the
    events checked, the head reached, the first damage found (None if whole)."""
    with PostgresEventStore.open(url, log_id, readonly=True) as store:
        events, prev = 0, GENESIS
        try:
            for _row, _prev, h in store._checked(1, _decode_cores):
                events, prev = events + 1, h
        except LogCorrupted as bad:
            return VerifyReport(events, events, prev, bad.damage)
    return VerifyReport(events, events, prev, None)

