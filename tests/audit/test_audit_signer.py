"""Checkpoints are signed off the command path (engine/audit/signer.py, issue 18 item 8):
the signature waits for the log's next fdatasync and is made by the log's thread while the
kernel syncs (events/fdsync.py); every checkpoint asked for is signed, in order, and whoever
reads the latest one or writes the trail out has it made first."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.audit.trail
from engine.audit.checkpoint import origin_for, parse_checkpoint
from engine.audit.key import AuditKey
from engine.audit.merkle import CompactRange, leaf_hash
from engine.audit.note import raw_public, verify_note
from engine.audit.signer import Jobs
from engine.audit.trail import (
    AuditTrail,
    Bound,
    newest_checkpoint,
    read_checkpoints,
    read_saved,
)
from events import fdsync
from events.device import ConfigurationCommitted
from events.filelog import FileEventLog
from events.store import GENESIS, PendingEvent


class WatchedKey:
    """An Ed25519 key that says on which thread each signature was made."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.threads: list[str] = []
        self.sign_hook: Callable[[], None] = lambda: None

    def sign(self, data: bytes) -> bytes:
        self.threads.append(threading.current_thread().name)
        self.sign_hook()
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
    log.on_mark, log.while_syncing = trail.on_mark, trail.sign_pending
    return trail


def test_jobs_wait_for_the_next_sync_and_run_in_order() -> None:
    jobs = Jobs()
    ran: list[int] = []
    for i in range(5):
        jobs.submit(lambda i=i: ran.append(i))
    assert ran == []  # queued: nothing runs before the log syncs (or a drain)
    jobs.run()
    assert ran == [0, 1, 2, 3, 4]
    jobs.drain()
    assert ran == [0, 1, 2, 3, 4]  # each ran once: none was left queued


def test_drain_runs_what_is_queued_and_raises_a_failed_job_once() -> None:
    jobs = Jobs()
    ran: list[int] = []

    def fail() -> None:
        raise RuntimeError("a bug")

    jobs.submit(fail)
    jobs.submit(lambda: ran.append(1))  # a failed job stops none after it
    jobs.run()  # the log's sync: never raised there
    assert ran == [1]
    with pytest.raises(RuntimeError, match="a bug"):
        jobs.drain()
    jobs.drain()  # said once


def test_a_job_cut_short_by_an_interrupt_runs_again_first() -> None:
    jobs = Jobs()
    ran: list[str] = []
    cut = [True]

    def first() -> None:
        if cut.pop() if cut else False:
            raise KeyboardInterrupt
        ran.append("first")

    jobs.submit(first)
    jobs.submit(lambda: ran.append("second"))
    with pytest.raises(KeyboardInterrupt):
        jobs.run()
    assert ran == []
    jobs.drain()
    assert ran == ["first", "second"]  # none lost, the order kept


def test_a_checkpoint_job_run_again_after_an_interrupt_keeps_its_checkpoint_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt as the job returns (its checkpoint already kept): the job stays queued
    and runs again, and keeps nothing twice (CHECKPOINTS held two identical notes)."""
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)
        trail.observe(log.append([commit(1)]), log.position)
        trail.checkpoint()
        sign = AuditTrail._sign
        interrupted: list[int] = []

        def then_interrupted(*args: object, **kw: object) -> None:
            sign(*args, **kw)  # type: ignore[arg-type]
            if not interrupted:
                interrupted.append(1)
                raise KeyboardInterrupt

        monkeypatch.setattr(AuditTrail, "_sign", then_interrupted)
        with pytest.raises(KeyboardInterrupt):
            trail.sign_pending()
        monkeypatch.undo()
        trail.persist()
    assert len(read_checkpoints(tmp_path / "log")) == 1 and len(key.threads) == 1


def test_two_threads_running_jobs_keep_their_order() -> None:
    """The log's thread (at its fdatasync) and a reader (drain) may run jobs at once: one
    runs them, in order, each once."""
    jobs = Jobs()
    ran: list[int] = []
    for i in range(2000):
        jobs.submit(lambda i=i: ran.append(i))
    threads = [threading.Thread(target=jobs.run) for _ in range(4)]
    for t in threads:
        t.start()
    jobs.drain()
    for t in threads:
        t.join()
    assert ran == list(range(2000))


def test_a_checkpoint_is_signed_while_the_log_waits_for_its_next_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed on the log's thread between the submission of the next fdatasync to the
    kernel and the wait for it (events/fdsync.py), not on the command path."""
    key = WatchedKey()
    steps: list[str] = []
    submit, wait = fdsync._Aio.submit, fdsync._Aio.wait

    def submitted(self: fdsync._Aio, fd: int) -> None:
        steps.append("submit")
        submit(self, fd)

    def waited(self: fdsync._Aio) -> int:
        steps.append("wait")
        return wait(self)

    monkeypatch.setattr(fdsync._Aio, "submit", submitted)
    monkeypatch.setattr(fdsync._Aio, "wait", waited)
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)
        trail.observe(log.append([commit(1)]), log.position)
        trail.checkpoint()
        assert key.threads == []  # not signed on the command path
        steps.clear()
        key.sign_hook = lambda: steps.append("sign")
        trail.observe(log.append([commit(2)]), log.position)
        assert key.threads == [threading.current_thread().name]
        if fdsync.Syncer()._context() is not None:  # Linux AIO here: inside the fdatasync
            assert steps == ["submit", "sign", "wait"]
        else:  # the same signature, made right before the fdatasync
            assert steps == ["sign"]
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


def test_the_tree_is_hashed_while_the_log_syncs_not_in_observe_or_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`observe` and `checkpoint` only copy hashes: the leaf and node hashes of a checkpoint
    are made with its signature, while the log waits for the disk (or when read)."""
    phase = ["command"]
    hashed_in: list[str] = []

    def watched(data: bytes) -> bytes:
        hashed_in.append(phase[0])
        return leaf_hash(data)

    monkeypatch.setattr(engine.audit.trail, "leaf_hash", watched)
    key = WatchedKey()
    with FileEventLog.open(tmp_path / "log") as log:
        trail = trail_on(log, key)

        def syncing() -> None:
            phase[0] = "sync"
            trail.sign_pending()
            phase[0] = "command"

        log.while_syncing = syncing
        for i in range(1, 4):
            trail.observe(log.append([commit(i)]), log.position)
            trail.checkpoint()
        phase[0] = "read"
        latest = trail.latest
    assert latest is not None and latest.checkpoint.size == 3
    assert hashed_in and "command" not in hashed_in
    assert set(hashed_in) == {"sync", "read"}  # the last one's, with no fdatasync after it


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
