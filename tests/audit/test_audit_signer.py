"""Checkpoints are signed off the command path (engine/audit/signer.py, issue 18 item 8):
the signature waits for the log's next fdatasync and is made on the signer thread while the
log waits for the disk; every checkpoint asked for is signed, in order, and whoever reads
the latest one or writes the trail out has it made first."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.audit.signer
import engine.audit.trail
from engine.audit.checkpoint import origin_for, parse_checkpoint
from engine.audit.key import AuditKey
from engine.audit.merkle import CompactRange, leaf_hash
from engine.audit.note import raw_public, verify_note
from engine.audit.signer import Worker
from engine.audit.trail import (
    AuditTrail,
    Bound,
    newest_checkpoint,
    read_checkpoints,
    read_saved,
)
from events.device import ConfigurationCommitted
from events.filelog import FileEventLog
from events.store import GENESIS, PendingEvent


class WatchedKey:
    """An Ed25519 key that says on which thread each signature was made."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.threads: list[str] = []
        self.signed = threading.Event()

    def sign(self, data: bytes) -> bytes:
        self.threads.append(threading.current_thread().name)
        self.signed.set()
        return self.key.sign(data)


def audit_key(private: Ed25519PrivateKey) -> AuditKey:
    public = raw_public(private.public_key())
    return AuditKey(origin_for("r1", public), "0" * 32, public, b"", b"", b"", "", 0)


def commit(n: int) -> PendingEvent:
    ev = ConfigurationCommitted(1_000_000_001 + n, "admin", "", "",
                                ((("hostname",), None, f"hostname r{n}"),))
    return PendingEvent(ev, "device", 1_700_000_000_000_000 + n, "admin", f"c{n}")


def trail_on(log: FileEventLog, key: WatchedKey) -> AuditTrail:
    trail = AuditTrail(log.root, audit_key(key.key), lambda: key,  # type: ignore[arg-type,return-value]
                       Bound(0, (), GENESIS, None), None)
    log.on_mark, log.on_sync = trail.on_mark, trail.on_sync
    return trail


def test_jobs_wait_for_a_release_and_run_in_order_on_one_thread() -> None:
    worker = Worker("w")
    ran: list[tuple[int, str]] = []
    for i in range(5):
        worker.submit(lambda i=i: ran.append((i, threading.current_thread().name)))
    time.sleep(0.05)
    assert ran == []  # queued: nothing runs before the log syncs (or someone drains)
    worker.release()
    worker.drain()
    assert ran == [(i, "w") for i in range(5)]


def test_no_job_starts_once_the_window_is_held_until_the_next_release_or_drain() -> None:
    """The log holds the window when its fdatasync returns: a job the thread has not started
    by then waits for the next fdatasync, never taking the GIL from the command thread."""
    worker = Worker("w")
    ran: list[str] = []
    started, go_on = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        go_on.wait(10)
        ran.append("slow")

    worker.submit(slow)
    worker.submit(lambda: ran.append("next"))
    worker.release()
    assert started.wait(10)
    worker.hold()  # while `slow` runs: it finishes, `next` does not start
    go_on.set()
    time.sleep(0.1)
    assert ran == ["slow"]
    worker.release()
    worker.drain()
    assert ran == ["slow", "next"]
    worker.hold()
    worker.submit(lambda: ran.append("drained"))
    worker.drain()  # whatever the window
    assert ran == ["slow", "next", "drained"]


def test_a_release_rings_only_a_thread_that_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waking the thread costs the commit path (a futex wake; an inter-processor interrupt
    in a VM): releases while it is awake do not ring, and it takes their jobs, in order,
    before it waits again; once asleep, the next release rings."""
    worker = Worker("w")
    rings: list[int] = []
    ring = worker._ring

    def counted() -> None:
        rings.append(1)
        ring()

    monkeypatch.setattr(worker, "_ring", counted)
    ran: list[int] = []
    started, go_on = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        go_on.wait(10)
        ran.append(0)

    worker.submit(slow)
    worker.release()
    assert started.wait(10)
    for i in range(1, 4):  # the log's next fdatasyncs, while `slow` still runs
        worker.submit(lambda i=i: ran.append(i))
        worker.release()
    assert len(rings) == 1
    go_on.set()
    deadline = time.monotonic() + 10
    while ran != [0, 1, 2, 3] or worker._awake:  # taken without a ring (no drain here)
        assert time.monotonic() < deadline, f"ran {ran}"
        time.sleep(0.005)
    assert len(rings) == 1
    worker.submit(lambda: ran.append(4))
    worker.release()
    assert len(rings) == 2
    worker.drain()
    assert ran == [0, 1, 2, 3, 4]


def test_a_job_released_as_the_thread_goes_to_sleep_is_taken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`release` reads whether the thread is awake without the lock: a job released after
    the thread found nothing to do, but before it cleared `_awake`, is not rung for; the
    thread looks again once it is cleared and takes it (else it would wait for the next
    fdatasync, or a drain)."""
    worker = Worker("w")
    worker._awake = True  # rung: the thread is about to look at the queue
    looks: list[bool] = []
    startable = worker._startable

    def look() -> bool:
        found = startable()
        if not looks:  # nothing yet; the log's next fdatasync releases a job now
            worker._queued.append(job)  # as `submit` does (its lock is held by `_take`)
            worker.release()
        looks.append(found)
        return found

    def job() -> None:
        return None  # a job that does nothing: the test is about which job is taken

    monkeypatch.setattr(worker, "_startable", look)
    assert worker._take() is job
    assert looks == [False, True] and worker._awake and worker._running


def test_drain_runs_what_is_queued_and_raises_a_failed_job_once() -> None:
    worker = Worker("w")
    ran: list[int] = []

    def fail() -> None:
        raise RuntimeError("a bug")

    worker.submit(fail)
    worker.submit(lambda: ran.append(1))  # a failed job stops none after it
    with pytest.raises(RuntimeError, match="a bug"):
        worker.drain()
    assert ran == [1]
    worker.drain()  # said once


def test_the_thread_ends_when_idle_and_the_next_release_starts_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.audit.signer, "IDLE", 0.01)
    worker = Worker("audit-signer-idle-test")
    worker.submit(lambda: None)
    worker.drain()
    deadline = time.monotonic() + 10
    while any(t.name == worker.name for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle thread never ended"
        time.sleep(0.01)
    ran: list[int] = []
    worker.submit(lambda: ran.append(1))
    worker.drain()
    assert ran == [1]


def test_a_checkpoint_is_signed_while_the_log_waits_for_its_next_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)
        trail.observe(log.append([commit(1)]), log.position)
        trail.checkpoint()
        assert key.threads == []  # not signed on the command path
        waited: list[bool] = []
        fdatasync = os.fdatasync

        def slow_disk(fd: int) -> None:  # the disk answers only once the signature is made
            waited.append(key.signed.wait(10))
            fdatasync(fd)

        monkeypatch.setattr(os, "fdatasync", slow_disk)
        trail.observe(log.append([commit(2)]), log.position)
        monkeypatch.undo()
        assert waited == [True] and key.threads == ["audit-signer"]
        latest = trail.latest
        assert latest is not None and latest.checkpoint.size == 1
        verify_note(latest.note, [trail.key.verifier()])


def test_the_last_checkpoint_is_signed_when_read_or_written_out(tmp_path: Path) -> None:
    """No fdatasync follows the last command: `latest` and the marker step have it made."""
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)
        trail.observe(log.append([commit(1)]), log.position)
        trail.checkpoint()
        assert key.threads == []
        log.mark_head()  # the marker step writes the trail: the signature is made first
        saved = read_saved(log.root)
        assert saved is not None and saved.latest is not None
        assert saved.latest.checkpoint.size == 1


def test_every_checkpoint_is_signed_and_recorded_in_order(tmp_path: Path) -> None:
    key = WatchedKey()
    n = 60
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)
        for i in range(1, n + 1):
            records = log.append([commit(i)])
            if trail.observe(records, log.position):
                trail.checkpoint()
        hashes = [r.hash for r in log.read()]
    notes = read_checkpoints(tmp_path / "log")  # written at the close's marker step
    assert len(notes) == n and len(key.threads) == n
    verifier = trail.key.verifier()
    for size, note in enumerate(notes, start=1):
        cp = parse_checkpoint(verify_note(note, [verifier])[0])
        rng = CompactRange()
        rng.extend(leaf_hash(h) for h in hashes[:size])
        assert (cp.size, cp.root) == (size, rng.root())


@pytest.mark.parametrize("count", [1, 2, 15, 40, 200])
def test_the_newest_checkpoint_is_read_from_the_end_of_the_file(tmp_path: Path,
                                                                count: int) -> None:
    """Notes of any length (cosignature lines included), a file of any size: the tail read
    finds the same last note as reading the whole file."""
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)
        for i in range(1, count + 1):
            trail.observe(log.append([commit(i)]), log.position)
            trail.checkpoint()
            if i % 7 == 0:  # a co-signed copy, with lines of several witnesses
                trail.add_cosignatures("".join(f"\u2014 witness{w}.example AAAA{'B' * 90}\n"
                                               for w in range(i % 5 + 1)).encode())
    notes = read_checkpoints(tmp_path / "log")
    assert newest_checkpoint(tmp_path / "log") == notes[-1]
    assert parse_checkpoint(notes[-1].decode().partition("\n\n")[0] + "\n").size == count


def test_no_checkpoints_file_has_no_newest_checkpoint(tmp_path: Path) -> None:
    assert newest_checkpoint(tmp_path) is None


def test_a_signature_job_that_raises_never_fails_the_log(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in signing surfaces at the marker step, after the fdatasync succeeded: it is
    logged there, and the append it happened under is acknowledged as any other."""
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)

        def broken(*args: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(trail, "_sign", broken)
        trail.observe(log.append([commit(1)]), log.position)
        trail.checkpoint()
        trail.observe(log.append([commit(2)]), log.position)
        log.mark_head()  # drains the broken job: logged, not raised
        assert log.head[0] == 2
        monkeypatch.undo()
        trail.checkpoint()  # the next one is signed and written out (as a close does)
        trail.persist()
    saved = read_saved(tmp_path / "log")
    assert saved is not None and saved.latest is not None
    assert saved.latest.checkpoint.size == 2


def test_the_tree_is_hashed_on_the_signer_thread_not_the_command_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`observe` and `checkpoint` only copy hashes: the leaf and node hashes of a checkpoint
    are made with its signature, while the log waits for the disk."""
    hashed_on: list[str] = []

    def watched(data: bytes) -> bytes:
        hashed_on.append(threading.current_thread().name)
        return leaf_hash(data)

    monkeypatch.setattr(engine.audit.trail, "leaf_hash", watched)
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)
        for i in range(1, 4):
            trail.observe(log.append([commit(i)]), log.position)
            trail.checkpoint()
        assert threading.current_thread().name not in hashed_on
        latest = trail.latest
    assert latest is not None and latest.checkpoint.size == 3
    assert set(hashed_on) == {"audit-signer"}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["observe", "checkpoint", "range", "persist"]), max_size=30),
       st.booleans(), st.integers(1, 6))
def test_every_checkpoint_and_the_range_match_the_tree_of_the_log(
        tmp_path_factory: pytest.TempPathFactory, steps: list[str], grouped: bool,
        fold_after: int) -> None:
    """Whatever mix of appends, checkpoints, range reads and write-outs (each folds the
    leaves observed at another moment), every checkpoint signed has the root of the log's
    first `size` events and the range is the whole log's tree. `grouped`: no fdatasync
    until the end, so the checkpoints' jobs queue up and run together."""
    root = tmp_path_factory.mktemp("mix")
    key = WatchedKey()
    seen: list[bytes] = []
    with FileEventLog.open(root / "log") as log, \
            log.group_commit() if grouped else contextlib.nullcontext(), \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.audit.trail, "FOLD_AFTER", fold_after)
        trail = trail_on(log, key)
        for n, step in enumerate(steps, start=1):
            if step == "observe":
                records = log.append([commit(n)])
                trail.observe(records, log.position)
                seen += [r.hash for r in records]
            elif step == "checkpoint":
                trail.checkpoint()
            elif step == "range":
                assert trail.range.size == len(seen)
            elif not grouped:  # inside a group nothing is acknowledged to write out
                trail.persist(log.head[0])
        expect = CompactRange()
        expect.extend(leaf_hash(h) for h in seen)
        assert trail.size == len(seen) and trail.range.root() == expect.root()
    verifier = trail.key.verifier()
    for note in read_checkpoints(root / "log"):
        cp = parse_checkpoint(verify_note(note, [verifier])[0])
        rng = CompactRange()
        rng.extend(leaf_hash(h) for h in seen[:cp.size])
        assert cp.root == rng.root()


def test_a_long_run_without_a_checkpoint_keeps_few_leaves_unhashed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.audit.trail, "FOLD_AFTER", 8)
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log, log.group_commit():
        trail = trail_on(log, key)
        hashes = []
        for i in range(1, 30):
            records = log.append([commit(i)])
            trail.observe(records, log.position)
            hashes += [r.hash for r in records]
            assert len(trail._leaves) < 8
        expect = CompactRange()
        expect.extend(leaf_hash(h) for h in hashes)
        assert trail.range.root() == expect.root()
