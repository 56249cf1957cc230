"""`fdatasync` with work done meanwhile on the same thread: the kernel syncs while we compute.

Theory of operation
-------------------
A commit waits for its fdatasync (~0.1-1 ms); the audit trail has work that may be done in
that time (signing the checkpoint of the batch before: engine/audit/signer.py). Doing it on
another Python thread costs more than it saves on a commit this short: waking a thread is a
futex and, on a virtual machine, an inter-processor interrupt (~10-35 us of the committing
thread's time, measured), and the two threads then hand the GIL back and forth. So the log's
own thread does the work, while the kernel does the fdatasync: `fdatasync(fd, meanwhile)`
submits IOCB_CMD_FDSYNC through Linux native AIO (`io_submit`, Linux 4.18+; the kernel runs
`vfs_fsync(file, datasync=1)` on a worker: the same durability as `os.fdatasync`), calls
`meanwhile()`, then waits for the completion (`io_getevents`) and raises its error as
`os.fdatasync` would (OSError with the errno). What is durable when it returns is exactly what
`os.fdatasync(fd)` would have made durable, whichever way it ran.

The system calls go through ctypes (no library beyond the C library; a ctypes call lets the
GIL go while it runs). Where Linux AIO is not there (another kernel, a seccomp filter, `aio-
max-nr` spent: `io_setup` fails; a file system without fsync: `io_submit` refuses), the work
runs first and then `os.fdatasync`: the same result, one after the other. A replaced
`os.fdatasync` (tests inject disk faults that way; tools/bench stands one in) is called the
same way, so a fault injected there is met whatever the kernel offers.

The wait is made safe from signals: a KeyboardInterrupt (or any exception a signal handler
raises) while the fdatasync is in flight is held until the kernel has answered, then raised;
the completion is read from the event the kernel wrote (its `obj` is set), never from a
return value a signal could have cut off, and each answer carries its submission's tag
(`aio_data`): a wait cut short by a signal before it began leaves an answer in the context,
which the next wait reads and passes over, never taking it for its own. One context
per `Syncer` (one per log), one fdatasync in flight at a time (a lock), set up at first use in
each process (a child after fork gets its own) and destroyed when the syncer is closed or
collected.
"""

from __future__ import annotations

import errno
import functools
import os
import posix
import struct
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

_REAL_FDATASYNC = posix.fdatasync  # os.fdatasync, whatever replaced it since

# x86-64 / aarch64 system call numbers (asm-generic on aarch64)
_SYSCALLS = {"x86_64": (206, 207, 209, 208), "aarch64": (0, 1, 2, 4)}
IOCB_CMD_FDSYNC = 3


@functools.cache
def _abi() -> Any:
    """ctypes and the kernel's structures, made at the first fdatasync with work (a `show`
    never needs them: ctypes costs ~2 ms to import)."""
    import ctypes

    class Iocb(ctypes.Structure):  # struct iocb, <linux/aio_abi.h> (little-endian layout)
        _fields_ = [("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32),
                    ("aio_rw_flags", ctypes.c_int32), ("aio_lio_opcode", ctypes.c_uint16),
                    ("aio_reqprio", ctypes.c_int16), ("aio_fildes", ctypes.c_uint32),
                    ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64),
                    ("aio_offset", ctypes.c_int64), ("aio_reserved2", ctypes.c_uint64),
                    ("aio_flags", ctypes.c_uint32), ("aio_resfd", ctypes.c_uint32)]

    class Event(ctypes.Structure):  # struct io_event
        _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64),
                    ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    return types.SimpleNamespace(ctypes=ctypes, Iocb=Iocb, Event=Event, syscall=syscall)


class _Aio:
    """One Linux AIO context and the system calls on it (raises OSError when unavailable)."""

    def __init__(self) -> None:
        # the numbers of this process's ABI: a 32-bit Python on a 64-bit kernel has others
        numbers = _SYSCALLS.get(os.uname().machine) if struct.calcsize("P") == 8 else None
        abi = self._abi = _abi()
        if numbers is None or abi.ctypes.sizeof(abi.Iocb) != 64:
            raise OSError(errno.ENOSYS, "Linux native AIO is not known on this machine")
        self._setup, self._destroy, self._submit, self._getevents = numbers
        ctx = abi.ctypes.c_ulong(0)
        if self._call(self._setup, 1, abi.ctypes.byref(ctx)) != 0:
            raise self._error("io_setup")
        self.ctx, self.pid = int(ctx.value), os.getpid()
        self.iocb = abi.Iocb(aio_lio_opcode=IOCB_CMD_FDSYNC)
        self.submitted = 0  # the tag of the latest submission (`aio_data`, see `wait`)
        self._list = (abi.ctypes.POINTER(abi.Iocb) * 1)(abi.ctypes.pointer(self.iocb))
        self.event = abi.Event()

    def _call(self, number: int, *args: object) -> int:
        """syscall(number, args...): every integer passed as a C long, as the kernel takes it."""
        c_long = self._abi.ctypes.c_long
        return int(self._abi.syscall(c_long(number), *(
            c_long(a) if isinstance(a, int) else a for a in args)))

    def _error(self, call: str) -> OSError:
        code = self._abi.ctypes.get_errno()
        return OSError(code, f"{call}: {os.strerror(code)}")

    def submit(self, fd: int) -> None:
        self.submitted += 1
        self.iocb.aio_fildes, self.iocb.aio_data = fd, self.submitted
        self.event.obj = 0  # set by the kernel when it answers (see `wait`)
        if self._call(self._submit, self.ctx, 1, self._list) != 1:
            raise self._error("io_submit")

    def wait(self) -> int:
        """Wait until the latest fdatasync submitted has completed; its result (0 or
        -errno). An exception a signal handler raises meanwhile is raised once the kernel has
        answered. The answer of an earlier submission whose wait a signal cut short (before
        this method's first line) is read here too, and passed over: each answer carries its
        submission's tag."""
        held: BaseException | None = None
        event, failed = self.event, 0
        while True:
            try:
                if event.obj and event.data != self.submitted:  # a cut-short wait's answer
                    event.obj = 0
                if event.obj or failed:
                    break
                if self._call(self._getevents, self.ctx, 1, 1,
                              self._abi.ctypes.byref(event), None) < 0:
                    code = self._abi.ctypes.get_errno()
                    failed = 0 if code == errno.EINTR else code
            except BaseException as e:  # the fdatasync is still in flight: wait for it first
                held = held or e
        if held is not None:
            raise held
        if failed:  # cannot happen with a context and an event of our own: said, never hidden
            raise OSError(failed, f"io_getevents: {os.strerror(failed)}")
        return int(event.res)

    def close(self) -> None:
        if self.pid == os.getpid():
            self._call(self._destroy, self.ctx)


class Syncer:
    """fdatasync for one log, running work meanwhile where the kernel allows (module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._aio: _Aio | None = None
        self._unavailable = False  # io_setup failed: do not ask again
        self._finalizer: weakref.finalize | None = None  # type: ignore[type-arg]

    def fdatasync(self, fd: int, meanwhile: Callable[[], None] | None = None) -> None:
        """`os.fdatasync(fd)`, with `meanwhile()` called while it runs (or just before)."""
        if meanwhile is None:
            os.fdatasync(fd)
            return
        with self._lock:
            aio = self._context()
            if aio is not None:
                try:
                    aio.submit(fd)
                except OSError:
                    aio = None  # refused for this file: the plain call below
            if aio is None:
                meanwhile()
                os.fdatasync(fd)
                return
            try:
                meanwhile()
            finally:
                self._wait(aio)

    def _wait(self, aio: _Aio) -> None:
        """The submitted fdatasync's answer, raised as os.fdatasync raises it."""
        try:
            result = aio.wait()
        except OSError:  # the kernel gave no answer (a bug): no later wait may read this one's
            self._discard()
            raise
        if result < 0:
            raise OSError(-result, os.strerror(-result))

    def _context(self) -> _Aio | None:
        if self._unavailable or os.fdatasync is not _REAL_FDATASYNC:
            return None
        aio = self._aio
        if aio is None or aio.pid != os.getpid():
            try:
                aio = _Aio()
            except OSError:
                self._unavailable = True
                return None
            self._aio = aio
            self._finalizer = weakref.finalize(self, aio.close)
        return aio

    def close(self) -> None:
        """Give the kernel context back (a later fdatasync makes a new one)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        """io_destroy: it waits for an fdatasync the kernel still runs (it cannot be
        cancelled), so nothing submitted outlives the context unseen."""
        if self._finalizer is not None:
            self._finalizer()
        self._aio = self._finalizer = None
