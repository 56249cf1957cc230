"""Group commit: many writers' appends made durable by one fdatasync, a wrapper over the
FileEventLog for a process that serves concurrent commands (the built-in CA).

Appends run inside one long `group_commit()` block of the log, so they are buffered, not
synced; `wait(seq)` returns once events up to `seq` are durable. The first waiter becomes
the leader: under the writers' lock (so no append interleaves) it writes out every buffered
frame, then fdatasyncs once WITHOUT the lock, so writers go on appending (and deciding) the
next group while the disk works, and acknowledges under the lock again; the other waiters
sleep until it is done. Commands appended while one sync runs share the next, so N concurrent
commands cost about two fdatasyncs, not N.

Durability contract: nothing a command did may be shown to anyone before `wait` returned for
its last seq. If a write or an fdatasync fails, the log cuts itself back to its last
acknowledged frame (events/filelog.py), so none of the commands waiting for that sync is on
disk, now or after a reopen; the writer's state in memory is ahead of the log, so from then
on `check`, `wait` and `failure` report the failure (the caller's `unavailable` error) until
the log is reopened: after a failed fdatasync the kernel may have dropped the dirty pages and
cleared the error, so a later sync succeeding would prove nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from events.filelog import FileEventLog
from events.store import EventStore


class GroupCommit:
    """Group commit over a FileEventLog (see the module docstring). `unavailable(cause)` makes
    the error raised once a write or a sync has failed (the caller's own kind)."""

    def __init__(self, log: EventStore, write_lock: threading.Lock,
                 unavailable: Callable[[BaseException], Exception]) -> None:
        self._store = log
        self._unavailable = unavailable
        self._log = log if isinstance(log, FileEventLog) and not log.readonly else None
        self._write_lock = write_lock
        self._cond = threading.Condition()
        self._durable = log.head[0]
        self._syncing = False
        self._group: contextlib.AbstractContextManager[None] | None = None
        self._failure: BaseException | None = None  # set once, never cleared: reopen instead
        if self._log is not None:
            self._group = self._log.group_commit()
            self._group.__enter__()

    @property
    def durable(self) -> int:
        """The highest seq known to be on disk."""
        return self._durable if self._log is not None else self._store.head[0]

    @property
    def failure(self) -> Exception | None:
        cause = self._failure
        return self._unavailable(cause) if cause is not None else None

    def check(self) -> None:
        """Raise the unavailable error once a write or a sync has failed."""
        cause = self._failure
        if cause is not None:
            raise self._unavailable(cause) from cause

    def fail(self, cause: BaseException) -> Exception:
        """Record that the log is broken (a write or sync failed); returns the error to raise.
        After a failed fdatasync the kernel may have dropped the dirty pages and cleared the
        error, so a later sync succeeding would prove nothing: nothing is durable any more."""
        with self._cond:
            if self._failure is None:
                self._failure = cause
            self._cond.notify_all()
        return self._unavailable(cause)

    def wait(self, seq: int) -> None:
        """Block until `seq` is durable; the unavailable error if it cannot be (now or
        before). Call without holding the write lock."""
        self.check()
        if self._log is None:
            return
        with self._cond:
            while self._durable < seq:
                self.check()
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                failed: BaseException | None = None
                self._cond.release()
                try:
                    target = self._sync(self._log)
                except BaseException as e:  # the group block is spent: it must not be reused
                    failed = e
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    if failed is not None and self._failure is None:
                        self._failure = failed
                    self._cond.notify_all()
                if failed is not None:
                    if not isinstance(failed, Exception):
                        raise failed  # KeyboardInterrupt and the like go on as they are
                    raise self._unavailable(failed) from failed
                self._durable = max(self._durable, target)
            self.check()  # after a failure nothing is answered, durable or not

    def _sync(self, log: FileEventLog) -> int:
        """Write out under the writers' lock, fdatasync without it (writers append the next
        group meanwhile), acknowledge under it again; the highest seq now durable."""
        with self._write_lock:
            ticket = log.start_sync()
            if ticket is None:  # nothing appended since the last sync
                return log.head[0]
        error: OSError | None = None
        try:
            log.sync_ticket(ticket)  # the audit's signatures are made meanwhile
        except OSError as e:
            error = e
        with self._write_lock:
            log.finish_sync(ticket, error)
        return ticket.head[0]

    def close(self) -> None:
        if self._group is not None and self._failure is None:
            self._group.__exit__(None, None, None)  # syncs whatever is still pending
        self._group = None
