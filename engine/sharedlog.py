"""`SharedLog`: a device's stream in a shared PostgreSQL store (events/pgstore.py), as the
engine uses a log (engine/devicelog.py's `DeviceLog`).

What differs from the file log, and how it is met:
- No positions: `position` is None, so snapshots and the audit trail are bound to (seq, chain
  hash) only and found again by seq, which the store answers from its primary key.
- Durability: an append is committed (one transaction) when it returns, so the "durable now"
  step (`mark_head`, which writes the audit trail's files in `DATA/audit/`) may run at any
  time; it runs as the file log's does: at most every MARK_EVERY seconds after an append,
  when a snapshot is taken, and at a clean close.
- Another writer (a second engine on the same device): the store refuses the append
  (`StreamConflict`: nothing written, no fork). It becomes a `LogConflict`; the engine then
  catches up (`Engine.catch_up`): `refresh` opens the store again, so that its head, and what
  `read` reaches, include the other writer's events, which it folds.
- The server lost mid-append (`StoreUnavailable`): whether the batch committed is unknown
  until the store answers again, so the log reconnects at once and asks it: the chain hash
  the batch would have at its last seq (`seal` is deterministic) tells whether the store
  committed it. Committed: the append returns its records as usual. Not there, store at the
  same head: a `StoreLost` that changed nothing. Other events there: a `LogConflict`, and the
  engine catches up. Still unreachable: a `StoreLost` whose outcome is unknown, and the NEXT
  append reconnects first and answers the same question for the lost batch before its own.
- CRLs (the blobs `CrlFetched` names by SHA-256): `crl_blobs(local)` keeps them in the data
  directory as a file log's device does AND in the store beside the log (`trustledger_blobs`),
  and reads the local copy first, then the store's (checked by its name, then copied to the
  data directory): a device's log in the store is whole without its first data directory
  (`log import` into a store, `log export` from one, a data directory adopted elsewhere).
- One writer only (`exclusive`, the built-in CA's log): the log's single-writer lock
  (events/pgstore.py `WriterLock`) is held from `open` to `close`, so a second writer is
  refused at open (`WriterLocked`, a `LogLocked`) as a second writer of a file log is.
  Before each append, and every KEEPALIVE_S between them, the lock is checked
  (`WriterLock.held`: no round trip while its session is quiet); a lock the server dropped is
  taken again only if nobody holds it and the store's head is still this log's own (nobody
  wrote while it was free); otherwise the append is refused (`WriterLockLost`, nothing
  written) and so is every later one: the writer stops (the CA answers nothing more until
  restarted).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.devicelog import DeviceLog, LogConflict, StoreLost
from engine.errors import OperatorError, Reason
from engine.revocation.store import BlobMissing, CrlBlobs, FileCrlBlobs, MemoryCrlBlobs
from events.filelog import (
    MARK_EVERY,
    LogCorrupted,
    LogError,
    LogWriteFailed,
    Position,
    TailMismatch,
    VerifyReport,
)
from events.pgstore import (
    PostgresEventStore,
    StoreUnavailable,
    StreamConflict,
    WriterLock,
    WriterLocked,
    WriterLockLost,
    WriterLockPending,
    list_logs,
    writer_lock,
)
from events.store import GENESIS, PendingEvent, Recorded, seal

Row = Sequence[Any]
GENESIS_HEAD = (0, GENESIS)
KEEPALIVE_S = 1.0  # how often an exclusive log checks its writer lock between appends
_HEX64 = re.compile(r"^[0-9a-f]{64}$")  # a CRL's name (engine/revocation/store.py)


class _Unavailable(Exception):
    """The reason a shared store gave, as LogWriteFailed words it (no `%`, no final stop)."""


class SharedLog:
    """One log of a shared store, with its audit trail's files in the local `root`."""

    def __init__(self, store: PostgresEventStore, root: Path,
                 lock: WriterLock | None = None) -> None:
        self.store = store
        self.root = root
        self._lock = lock  # the single-writer lock of an `exclusive` log, until close
        self._exclusive = lock is not None  # None later: dropped, taken back when safe
        self._lock_lost: str | None = None  # why this process may not write any more
        # Appends, refreshes, group commits and the lock's keepalive take turns (an RLock:
        # a group commit's appends are in its block).
        self._turn = threading.RLock()
        self._closing = threading.Event()
        self.on_mark: Callable[[int], None] | None = None
        # Around a commit's wait for the store (engine/audit/signer.py signs meanwhile).
        self.while_syncing: Callable[[], None] | None = None
        self.recovered: str | None = None  # a shared store repairs nothing at open
        self._marked_at = time.monotonic()
        self._marked = store.head[0]
        # The store was lost: the head before it, the batch it was appending (None: a
        # group's, not known here) and why; the next append reconnects first.
        self._lost: tuple[tuple[int, bytes], Sequence[PendingEvent] | None, str] | None = None
        self._grouped = 0  # inside group_commit(): appends are not committed yet
        # The outermost group's head before it and its events so far: what to ask the
        # store about if it is lost at the group's commit.
        self._group_head: tuple[int, bytes] = GENESIS_HEAD
        self._group_events: list[PendingEvent] = []

    @classmethod
    def open(cls, url: str, log_id: str, root: Path, *, kind: str | None = "device",
             readonly: bool = False, exclusive: bool = False) -> SharedLog:
        """The log `log_id` of the store at `url`; `root` holds its audit trail's files (made
        0700 unless `readonly`, once the store has answered). `kind` None (readers: `log
        verify|show|export`, `replay`): whichever kind the store says the log is.
        `exclusive` (a writer): hold the log's single-writer lock until `close`
        (WriterLocked if another process has it)."""
        if kind is None:
            kind = next((info.kind for info in list_logs(url) if info.log_id == log_id),
                        "device")  # a log that is not there: the store says so, as a device's
        lock = writer_lock(url, log_id) if exclusive and not readonly else None
        try:
            store = PostgresEventStore.open(url, log_id, kind=kind, readonly=readonly)
            if not readonly:  # only once the store answered: a refused open leaves nothing
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
            log = cls(store, root, lock)
            if lock is not None:
                threading.Thread(target=log._keepalive, name=f"writer lock {log_id}",
                                 daemon=True).start()
            return log
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def verify(self) -> VerifyReport:
        """Walk the whole chain (the store checks each row: numbering, chain, hash over its
        stored core), as `events.filelog.verify` walks a directory."""
        events, last = 0, GENESIS
        try:
            for row in self.store.read_rows():
                events, last = events + 1, row[8]
        except LogCorrupted as bad:
            return VerifyReport(events, events, last, bad.damage)
        return VerifyReport(events, events, last, None)

    @property
    def name(self) -> str:
        return self.store.log_id

    @property
    def head(self) -> tuple[int, bytes]:
        return self.store.head

    @property
    def position(self) -> Position | None:
        return None

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]:
        with self._turn:
            return self._append(batch)

    def _append(self, batch: Sequence[PendingEvent]) -> list[Recorded]:
        if self._exclusive:
            self._still_the_writer()
        if self._lost is not None:
            self._come_back()
        if self.while_syncing is not None and not self._grouped:
            self.while_syncing()  # psycopg waits for the server on this thread: done first
        try:
            with self._store_errors(batch, self.store.head):
                records = self.store.append(batch)
        except StoreLost:
            if self._grouped:
                raise
            records = self._ask_after_loss("this command")
        if self._grouped:
            self._group_events.extend(batch)
        self._mark_if_due()
        return records

    @contextlib.contextmanager
    def _store_errors(self, batch: Sequence[PendingEvent] | None,
                      before: tuple[int, bytes] | None = None) -> Iterator[None]:
        """The store's refusals as the engine's: another writer's append is a LogConflict
        (the command changed nothing); a lost store a StoreLost, remembered with the head
        before it (a failed group's: the store's head again) and the batch, so that the
        store can be asked what became of it; a statement the server refused (a read-only
        database or role, a revoked privilege) a LogWriteFailed that changed nothing."""
        try:
            yield
        except StreamConflict as err:
            raise _conflict(err) from None
        except StoreUnavailable as err:
            why = err.text.rstrip(".")
            self._lost = (before or self.store.head, batch, why)
            raise StoreLost(_Unavailable(why), False, "Whether the store committed it is "
                            "not known: the next command reconnects and finds out.") from None
        except LogCorrupted:
            raise
        except LogError as err:  # the server refused the statement (read-only, permissions,
            # a timeout...): its transaction rolled back, nothing of the batch is stored
            raise LogWriteFailed(_Unavailable(err.text.rstrip(".")), True) from None

    def _keepalive(self) -> None:
        """An exclusive log's lock, checked every KEEPALIVE_S between appends too, so that
        a lock the server dropped is taken back (when that is safe) before another process
        finds it free and writes (`ca challenge` with no server holding the lock appends
        itself). A failure is kept for the next append to raise."""
        while not self._closing.wait(KEEPALIVE_S):
            with self._turn:
                if self._closing.is_set() or self._lock_lost is not None:
                    return
                if self._grouped or self._lost is not None:
                    continue  # the head is in doubt: the next append checks
                with contextlib.suppress(WriterLockLost):
                    self._still_the_writer()

    def _still_the_writer(self) -> None:
        """An exclusive log's lock, checked before an append: held, or taken again when that
        is provably safe (module doc); WriterLockLost, for good, otherwise. A store that
        cannot be reached to take it again (PostgreSQL restarting) decides nothing: this
        append is refused (nothing written) and the next check, or the keepalive's, tries
        again; the lock is taken back only if nobody wrote meanwhile, as always."""
        if self._lock_lost is not None:
            raise WriterLockLost(self._lock_lost, sentence=True)
        if self._lock is not None and self._lock.held():
            return
        log_id, why = self.store.log_id, ""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        try:
            lock = writer_lock(self.store.url, log_id)
        except WriterLocked:
            why = "another process holds it now"
        except StoreUnavailable as err:
            raise self._not_yet(f"it could not be taken again yet "
                                f"({err.text.rstrip('.')})") from None
        else:
            try:
                head = self._stored_head()
            except StoreUnavailable as err:
                lock.release()
                raise self._not_yet(f"the log's head could not be read "
                                    f"({err.text.rstrip('.')})") from None
            if head == self.store.head:
                self._lock = lock
                return
            lock.release()
            why = f"another process appended seq {self.store.head[0] + 1}-{head[0]} meanwhile"
        self._lock_lost = (f"The single-writer lock of the event log {log_id} was lost (the "
                           f"server ended its session) and {why}: this process writes no "
                           "more to it (nothing was written).")
        raise WriterLockLost(self._lock_lost, sentence=True)

    def _stored_head(self) -> tuple[int, bytes]:
        """The store's head; asked once more on a new connection if the server had ended
        this one (as it ends every session when it restarts)."""
        try:
            return self.store.stored_head()
        except StoreUnavailable:
            return self.store.stored_head()

    def _not_yet(self, why: str) -> WriterLockPending:
        """The lock is dropped and the store cannot say yet whether it is safe to take back."""
        return WriterLockPending(f"The single-writer lock of the event log {self.store.log_id} "
                              f"was lost (the server ended its session) and {why}: nothing was "
                              "written; the next append tries to take it again.", sentence=True)

    def _ask_after_loss(self, what: str) -> list[Recorded]:
        """Right after losing the store mid-append (`what`: this command, or this block, a
        group commit's): reconnect and find out what became of the batch (its records if
        the store committed it); a StoreLost if it cannot say."""
        assert self._lost is not None
        (seq, _), batch, why = self._lost
        try:
            self._reopen()
        except StoreUnavailable:
            raise StoreLost(_Unavailable(why), False, "The store could not be reached again "
                            f"to find out whether it committed {what}: the next command "
                            "reconnects and finds out.") from None
        committed = self._settle()
        if committed is not None:
            return committed
        if self.store.head[0] != seq:
            raise LogConflict(f"{why}; reconnected, the store holds seq {seq + 1}-"
                              f"{self.store.head[0]} that another writer appended: nothing "
                              f"of {what} was written.")
        if what == "this command":
            held = "nothing of this command"
        else:
            n = len(batch or ())
            held = f"none of the {n} event{'s' if n != 1 else ''} of {what}: they were not " \
                "committed"
        raise StoreLost(_Unavailable(why), True, f"Reconnected: the store holds {held}. "
                        "Nothing was changed.")

    def _come_back(self) -> None:
        """Before an append, after a loss: reconnect (a StoreLost that changed nothing if the
        store is still away), then a LogConflict if the store holds events this engine has
        not read (the lost batch, committed after all, or another writer's)."""
        assert self._lost is not None
        try:
            self._reopen()
        except StoreUnavailable as err:
            raise StoreLost(_Unavailable(err.text.rstrip(".")), True, "This command changed "
                            "nothing; the next one tries to reconnect again.") from None
        seq = self._lost[0][0]
        committed = self._settle()
        if committed is not None or self.store.head[0] != seq:
            was = ("the command whose connection was lost was committed after all"
                   if committed is not None else "another writer's")
            raise LogConflict(f"Reconnected to the event store: it holds seq {seq + 1}-"
                              f"{self.store.head[0]} that this engine had not read ({was}): "
                              "nothing was written.")

    def _settle(self) -> list[Recorded] | None:
        """On a fresh handle after a loss: the lost batch's records if the store committed
        it (the chain hash at its last seq is the one sealing it there gives), else None.
        The loss is over either way."""
        assert self._lost is not None
        (seq, prev), batch, _ = self._lost
        self._lost = None
        if not batch or self.store.head[0] < seq + len(batch):
            return None
        mine = seal(batch, seq + 1, prev)
        there = next(self.store.read(mine[-1].seq), None)
        return mine if there is not None and there.hash == mine[-1].hash else None

    def _mark_if_due(self) -> None:
        """The "durable now" step, at most every MARK_EVERY seconds, never inside a group
        commit (its appends are not committed before the block ends)."""
        if time.monotonic() - self._marked_at >= MARK_EVERY:
            self.mark_head()

    def refresh(self) -> None:
        """Learn the head other writers made. One query on the open connection when nothing
        changed (the engine asks before each command in EXEC mode); a fresh handle when the
        head moved or the connection is gone. While a lost append's outcome is unknown,
        nothing: the next append asks the store about it first (`_come_back`)."""
        with self._turn:
            if self._lost is not None or self._grouped:
                return
            with contextlib.suppress(StoreUnavailable):
                if self.store.stored_head() == self.store.head:
                    return
            self._reopen()

    def _reopen(self) -> None:
        """A fresh handle on the same log: its head is what the store holds now."""
        store = self.store
        fresh = PostgresEventStore.open(store.url, store.log_id, kind=store.kind,
                                        readonly=store.readonly)
        store.close()
        self.store = fresh

    def read(self, from_seq: int = 1) -> Iterator[Recorded]:
        return self.store.read(from_seq)

    def read_rows(self, from_seq: int = 1, *, typed: bool = False) -> Iterator[Row]:
        return self.store.read_rows(from_seq, typed=typed)

    def tail(self, at: Position, seq: int, chain: bytes, *,
             typed: bool = False) -> Iterator[Row]:
        """The rows after (seq, chain hash). `at`, a file log's position, means nothing here:
        it comes from a snapshot or audit tree made while the device's log was a file (before
        `log import` moved it into the store). The row is found by its seq instead and its
        chain hash checked, as for a record made with no position."""
        row = next(iter(self.store.read_rows(seq)), None)
        if row is None or row[0] != seq:
            raise TailMismatch(f"the log ends at seq {self.head[0]}, before seq {seq}")
        if row[8] != chain:
            raise TailMismatch(f"seq {seq} has another chain hash")
        return self.store.read_rows(seq + 1, typed=typed)

    def mark_head(self) -> None:
        """The "durable now" step: every append is committed when it returns, so the head is
        (but inside a group commit, whose appends wait for its end)."""
        if self._grouped:
            return
        self._marked_at = time.monotonic()
        seq = self.store.head[0]
        if self.on_mark is not None and seq != self._marked and self._lost is None:
            self.on_mark(seq)
            self._marked = seq

    def group_commit(self) -> contextlib.AbstractContextManager[None]:
        return self._group()

    @contextlib.contextmanager
    def _group(self) -> Iterator[None]:
        """One transaction for the block's appends. The store lost at its commit is asked,
        as after a lost command, whether it committed them: yes, and the block succeeded;
        no, a StoreLost saying they were not; unreachable, a StoreLost saying it is not known
        (the next append asks again). A loss inside (an append after an earlier loss) is
        raised as it is."""
        with self._turn:
            outer = not self._grouped
            if outer:
                self._group_head, self._group_events = self.store.head, []
            self._grouped += 1
            try:
                with self._store_errors(self._group_events if outer else None,
                                        self._group_head if outer else None), \
                        self.store.group_commit():
                    yield
            except StoreLost:
                if not outer or self._lost is None or self._lost[1] is not self._group_events:
                    raise
                self._ask_after_loss("this block")
            finally:
                self._grouped -= 1
                if outer:
                    self._group_events = []
            self._mark_if_due()

    @contextlib.contextmanager
    def reader(self) -> Iterator[DeviceLog]:
        store = self.store
        with SharedLog.open(store.url, store.log_id, self.root, kind=store.kind,
                            readonly=True) as log:
            yield log

    def notice(self) -> str | None:
        return None

    def crl_blobs(self, local: CrlBlobs | None) -> CrlBlobs:
        """The CRLs of this log: in `local` (the data directory's, None: memory only) and in
        the store (see the module docstring). A writer first copies to the store the CRLs
        the data directory holds and the store lacks (a device whose CRLs were kept only
        locally, before the store kept them)."""
        blobs = StoreCrlBlobs(lambda: self.store, local)
        if not self.store.readonly:
            blobs.backfill()
        return blobs

    def close(self) -> None:
        self._closing.set()
        with self._turn:
            try:
                if self._lost is None:
                    self.mark_head()
            finally:
                self.store.close()
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None

    def __enter__(self) -> SharedLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StoreCrlBlobs:
    """A shared log's CRLs (`CrlBlobs`): the local copy first, then the store's. `store`
    gives the log's current store handle (a SharedLog opens a new one after a loss); `local`
    None: the store's only."""

    def __init__(self, store: Callable[[], PostgresEventStore],
                 local: CrlBlobs | None) -> None:
        self.store, self.local = store, local if local is not None else MemoryCrlBlobs()

    def put(self, der: bytes) -> str:
        name = self.local.put(der)
        if not self.store().readonly:
            try:
                self.store().put_blobs([der])
            except LogError as err:  # as FileCrlBlobs says a disk that refused it
                raise OperatorError(Reason.BAD_DATA, "The CRL could not be stored in the "
                                    f"event store: {err.text.rstrip('.')}.") from None
        return name

    def backfill(self) -> None:
        """Copy to the store the CRLs of a data directory's `crls/` it lacks, each checked
        against its name. Best effort (a store away, an unreadable file: the next open tries
        again); one round trip when there is nothing to copy."""
        local = self.local
        if not isinstance(local, FileCrlBlobs):
            return
        with contextlib.suppress(OSError, LogError):
            names = [p.name for p in local.directory.iterdir() if _HEX64.match(p.name)]
            if not names:
                return
            have = self.store().blob_names(names)
            for name in sorted(set(names) - have):
                with contextlib.suppress(BlobMissing):
                    self.store().put_blobs([local.get(name)])

    def get(self, sha256: str) -> bytes:
        try:
            return self.local.get(sha256)
        except BlobMissing as missing:
            if missing.why != "missing":
                raise
        try:
            data = self.store().get_blob(sha256)
        except LogError as err:
            raise BlobMissing(sha256, f"unreadable ({err.text.rstrip('.')})") from None
        if data is None:
            raise BlobMissing(sha256, "missing (neither in the data directory nor in the "
                              "store)")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobMissing(sha256, "altered in the store (its bytes do not hash to its "
                              "name)")
        if not self.store().readonly:  # a cache: the store keeps it either way
            with contextlib.suppress(OSError, OperatorError):
                self.local.put(data)
        return data


def _conflict(err: StreamConflict) -> LogConflict:
    return LogConflict(f"Another writer appended seq {err.seq} to the event log {err.log_id} "
                       "since this one read it: nothing was written.")
