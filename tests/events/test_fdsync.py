"""`events.fdsync`: the fdatasync runs in the kernel while the caller's work runs; its result is
`os.fdatasync`'s, and nothing (a refusal, a signal, a fork) loses an fdatasync or an error."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from events import fdsync
from events.filelog import FileEventLog, LogWriteFailed
from tests.events.eventlog_support import noted

AIO = fdsync.Syncer()._context() is not None  # Linux native AIO on this machine


class Recorder:
    """The order of submission, work and wait, from a real Syncer's context."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, result: int | None = None) -> None:
        self.steps: list[str] = []
        submit, wait = fdsync._Aio.submit, fdsync._Aio.wait

        def submitted(aio: fdsync._Aio, fd: int) -> None:
            self.steps.append("submit")
            submit(aio, fd)

        def waited(aio: fdsync._Aio) -> int:
            self.steps.append("wait")
            got = wait(aio)
            return got if result is None else result

        monkeypatch.setattr(fdsync._Aio, "submit", submitted)
        monkeypatch.setattr(fdsync._Aio, "wait", waited)


def data_file(tmp_path: Path) -> int:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, b"frame")
    return fd


def test_the_work_runs_between_the_submission_and_the_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    fd = data_file(tmp_path)
    syncer = fdsync.Syncer()
    try:
        syncer.fdatasync(fd, lambda: rec.steps.append("work"))
        syncer.fdatasync(fd, lambda: rec.steps.append("work"))  # the context is reused
    finally:
        syncer.close()
        os.close(fd)
    if AIO:
        assert rec.steps == ["submit", "work", "wait"] * 2
    else:  # no Linux AIO: the work first, then os.fdatasync
        assert rec.steps == ["work", "work"]


def test_without_work_it_is_a_plain_fdatasync(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    calls: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append(fd) or real(fd))
    fd = data_file(tmp_path)
    try:
        fdsync.Syncer().fdatasync(fd)
    finally:
        os.close(fd)
    assert calls == [fd] and rec.steps == []


@pytest.mark.skipif(not AIO, reason="the kernel's error path needs Linux AIO")
def test_an_error_the_kernel_reports_is_raised_as_fdatasync_raises_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder(monkeypatch, result=-errno.EIO)
    fd = data_file(tmp_path)
    try:
        with pytest.raises(OSError) as caught:
            fdsync.Syncer().fdatasync(fd, lambda: None)
    finally:
        os.close(fd)
    assert caught.value.errno == errno.EIO


def test_a_replaced_fdatasync_is_called_so_an_injected_fault_is_met(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    fd = data_file(tmp_path)
    try:
        with pytest.raises(OSError, match="No space"):
            fdsync.Syncer().fdatasync(fd, lambda: rec.steps.append("work"))
    finally:
        os.close(fd)
    assert rec.steps == ["work"]


def test_a_kernel_without_aio_runs_the_work_then_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_aio(self: fdsync._Aio) -> None:
        raise OSError(errno.ENOSYS, "io_setup: Function not implemented")

    monkeypatch.setattr(fdsync._Aio, "__init__", no_aio)
    steps: list[str] = []
    real = os.fdatasync

    def plain(fd: int) -> None:
        steps.append("fdatasync")
        real(fd)

    monkeypatch.setattr(fdsync, "_REAL_FDATASYNC", plain)
    monkeypatch.setattr(os, "fdatasync", plain)
    fd = data_file(tmp_path)
    syncer = fdsync.Syncer()
    try:
        syncer.fdatasync(fd, lambda: steps.append("work"))
        syncer.fdatasync(fd, lambda: steps.append("work"))
    finally:
        os.close(fd)
    assert steps == ["work", "fdatasync"] * 2 and syncer._unavailable


@pytest.mark.skipif(not AIO, reason="a refusal by io_submit needs Linux AIO")
def test_a_file_the_kernel_will_not_sync_asynchronously_is_synced_plainly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """io_submit refuses (EINVAL: a file system without fsync): the plain call, whose own
    answer is raised as it would be without AIO."""
    r, w = os.pipe()
    steps: list[str] = []
    try:
        with pytest.raises(OSError) as caught:
            fdsync.Syncer().fdatasync(w, lambda: steps.append("work"))
    finally:
        os.close(r)
        os.close(w)
    assert steps == ["work"] and caught.value.errno == errno.EINVAL


@pytest.mark.skipif(not AIO, reason="the wait on the kernel needs Linux AIO")
@pytest.mark.parametrize("answered", [True, False])
def test_an_interrupt_during_the_wait_is_raised_once_the_kernel_answered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answered: bool) -> None:
    """A signal handler's exception right after io_getevents returned with the event written
    (`answered`), or while it waited (before the kernel answered): either way the fdatasync
    is waited for, its answer kept, and the interrupt raised after it."""
    waits: list[str] = []
    call = fdsync._Aio._call

    def interrupted(aio: fdsync._Aio, number: int, *args: object) -> int:
        if number != aio._getevents:
            return call(aio, number, *args)
        if not waits:
            waits.append("interrupted")
            if answered:
                call(aio, number, *args)  # the kernel's answer is in the event already
            raise KeyboardInterrupt
        waits.append("waited")
        return call(aio, number, *args)

    fd = data_file(tmp_path)
    syncer = fdsync.Syncer()
    aio = syncer._context()
    assert aio is not None
    try:
        monkeypatch.setattr(fdsync._Aio, "_call", interrupted)
        aio.submit(fd)
        with pytest.raises(KeyboardInterrupt):
            aio.wait()
        monkeypatch.undo()
        assert aio.event.obj and aio.event.res == 0  # the answer, not lost
        assert waits == (["interrupted"] if answered else ["interrupted", "waited"])
    finally:
        monkeypatch.undo()
        syncer.close()
        os.close(fd)


@pytest.mark.skipif(not AIO, reason="contexts are per process with Linux AIO")
def test_a_child_after_fork_makes_its_own_context(monkeypatch: pytest.MonkeyPatch) -> None:
    syncer = fdsync.Syncer()
    first = syncer._context()
    assert first is not None and syncer._context() is first
    monkeypatch.setattr(os, "getpid", lambda: first.pid + 1)  # as a forked child sees it
    second = syncer._context()
    assert second is not None and second is not first and second.ctx != first.ctx
    monkeypatch.undo()
    syncer.close()
    first.close()


def test_a_failed_sync_with_work_rolls_the_log_back(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The log's rule for a failed fdatasync holds on this path too: the batch is not
    acknowledged, not in the log now or after a reopen."""
    with FileEventLog.open(tmp_path / "log") as log:
        log.append([noted(1)])
        ran: list[int] = []
        log.while_syncing = lambda: ran.append(1)
        if AIO:
            Recorder(monkeypatch, result=-errno.EIO)
        else:
            monkeypatch.setattr(os, "fdatasync", _eio)
        with pytest.raises(LogWriteFailed):
            log.append([noted(2)])
        monkeypatch.undo()
        assert ran == [1] and log.head[0] == 1
        log.append([noted(3)])
    with FileEventLog.open(tmp_path / "log", readonly=True) as log:
        assert [r.seq for r in log.read()] == [1, 2]


def _eio(fd: int) -> None:
    raise OSError(errno.EIO, "Input/output error")



@pytest.mark.skipif(not AIO, reason="submission needs Linux AIO")
def test_the_answer_of_a_wait_a_signal_cut_short_is_never_taken_for_a_later_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal's exception as `wait` is entered (before it reads anything) leaves the
    kernel's answer in the context; the next fdatasync may read it, sees another
    submission's tag, and waits for its own (it returned at once, one sync behind, before
    the tags)."""
    wait, call = fdsync._Aio.wait, fdsync._Aio._call
    entered: list[int] = []
    answers: list[int] = []

    def cut_short(aio: fdsync._Aio) -> int:
        entered.append(1)
        if len(entered) == 1:
            raise KeyboardInterrupt
        return wait(aio)

    def counted(aio: fdsync._Aio, number: int, *args: object) -> int:
        got = call(aio, number, *args)
        if number == aio._getevents:
            answers.append(int(aio.event.data))
        return got

    monkeypatch.setattr(fdsync._Aio, "wait", cut_short)
    monkeypatch.setattr(fdsync._Aio, "_call", counted)
    fd = data_file(tmp_path)
    syncer = fdsync.Syncer()
    try:
        with pytest.raises(KeyboardInterrupt):
            syncer.fdatasync(fd, lambda: None)
        # Time for the first answer to arrive before the second submission, so the second
        # wait almost always meets it first: what the test can catch depends on it, not
        # whether it passes.
        time.sleep(0.2)
        syncer.fdatasync(fd, lambda: None)
    finally:
        monkeypatch.undo()
        syncer.close()
        os.close(fd)
    # The second sync returned on its own answer. The first's is read and passed over when
    # it comes first; the kernel may also finish the two in the other order (each fdatasync
    # runs on a worker of its own), and then it is left for a later wait to pass over.
    assert answers in ([1, 2], [2])


@pytest.mark.skipif(not AIO, reason="a 64-bit process's system call numbers")
def test_a_32_bit_process_does_not_use_the_64_bit_system_call_numbers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """i386 numbers 206-209 are setgroups32, fchown32, ...: a 32-bit Python on an x86_64
    kernel must not call them as io_setup and the rest."""
    real = fdsync.struct.calcsize
    monkeypatch.setattr(fdsync.struct, "calcsize",
                        lambda fmt: 4 if fmt == "P" else real(fmt))
    with pytest.raises(OSError, match="not known"):
        fdsync._Aio()
    assert fdsync.Syncer()._context() is None
