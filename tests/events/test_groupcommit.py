"""Group commit (events/groupcommit.py): appends are shown only once `wait` says they are
durable, and a failed fdatasync makes the log unavailable until it is reopened, with none of
the waiting appends on disk."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from events.filelog import FileEventLog
from events.groupcommit import GroupCommit
from events.store import PendingEvent
from tests.events.eventlog_support import Noted


class Unavailable(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def on_disk(path: Path) -> int:
    with FileEventLog.open(path, readonly=True) as reader:
        return sum(1 for _ in reader.read())


def append(log: FileEventLog, lock: threading.Lock, n: int) -> int:
    with lock:
        return log.append([PendingEvent(Noted(f"e{i}", i), "t", 1) for i in range(n)])[-1].seq


def test_appends_are_durable_only_once_waited_for(tmp_path: Path) -> None:
    lock = threading.Lock()
    with FileEventLog.open(tmp_path) as log:
        commits = GroupCommit(log, lock, Unavailable)
        seq = append(log, lock, 3)
        assert commits.durable < seq and on_disk(tmp_path) == 0  # buffered, not synced
        commits.wait(seq)
        assert commits.durable >= seq and on_disk(tmp_path) == 3
        commits.close()


def test_a_failed_sync_leaves_it_unavailable_until_reopened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    with FileEventLog.open(tmp_path) as log:
        commits = GroupCommit(log, lock, Unavailable)
        commits.wait(append(log, lock, 1))

        def failing(fd: int) -> None:
            raise OSError(errno.EIO, "simulated EIO")

        monkeypatch.setattr(os, "fdatasync", failing)
        seq = append(log, lock, 2)
        with pytest.raises(Unavailable):
            commits.wait(seq)
        monkeypatch.undo()  # syncs work again: that proves nothing about what was lost
        with pytest.raises(Unavailable):
            commits.check()
        with pytest.raises(Unavailable):
            commits.wait(1)
        assert isinstance(commits.failure, Unavailable)
        commits.close()
    assert on_disk(tmp_path) == 1  # the two appends that waited for the failed sync are gone


def test_writers_append_while_the_fdatasync_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    real = os.fdatasync
    syncing, release = threading.Event(), threading.Event()

    def slow(fd: int) -> None:
        syncing.set()
        assert release.wait(10)
        real(fd)

    with FileEventLog.open(tmp_path) as log:
        commits = GroupCommit(log, lock, Unavailable)
        first = append(log, lock, 2)
        monkeypatch.setattr(os, "fdatasync", slow)
        waiter = threading.Thread(target=commits.wait, args=(first,))
        waiter.start()
        assert syncing.wait(10)
        assert lock.acquire(timeout=5)  # the lock is free while the disk works ...
        lock.release()
        second = append(log, lock, 1)  # ... so the next group is appended meanwhile
        assert commits.durable < first
        release.set()
        waiter.join(10)
        assert commits.durable == first < second  # the sync covered what it wrote out
        monkeypatch.undo()
        commits.wait(second)
        assert on_disk(tmp_path) == 3
        commits.close()


def test_a_failed_sync_forgets_what_was_appended_while_it_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    syncing, release = threading.Event(), threading.Event()

    def failing(fd: int) -> None:
        syncing.set()
        assert release.wait(10)
        raise OSError(errno.EIO, "simulated EIO")

    with FileEventLog.open(tmp_path) as log:
        commits = GroupCommit(log, lock, Unavailable)
        commits.wait(append(log, lock, 1))
        monkeypatch.setattr(os, "fdatasync", failing)
        seq = append(log, lock, 1)
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                commits.wait(seq)
            except Unavailable as e:
                errors.append(e)

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert syncing.wait(10)
        later = append(log, lock, 1)  # appended during the failing sync, never acknowledged
        release.set()
        waiter.join(10)
        assert errors
        monkeypatch.undo()
        with pytest.raises(Unavailable):
            commits.wait(later)
        commits.close()
    assert on_disk(tmp_path) == 1
