"""Signing checkpoints while the log waits for the disk: one worker thread, jobs in order.

Theory of operation
-------------------
A checkpoint's statement (origin, size, root hash) is fixed on the command thread when it is
asked for (engine/audit/trail.py); its Ed25519 signature and the signed note's encoding
(~50 us of CPU, holding the GIL: cryptography does not release it to sign) are a job queued
on a `Worker`. Queued jobs wait for `release`, which the log calls right before its next
fdatasync (`FileEventLog.on_sync`): the command thread then sleeps in the kernel without the
GIL for the disk's ~100-1000 us, and the worker signs in that time instead of adding its CPU
to a commit. Releasing a job the moment it is queued was measured slower: the worker then
takes the GIL while the command thread encodes and writes the next batch, and the command
waits for it (see tools/bench/audit_bench.py).

Jobs run one at a time on the one thread, in the order queued: none is skipped, merged or
reordered, so every checkpoint asked for is signed, in order. Whoever reads what the jobs
produced calls `drain` first, which releases what is queued and waits until it has run: with
no later fdatasync (the last command, an idle device) the signature is made then. Nothing is
written out by a job itself: a process that dies with a job still queued loses only that
signature, as it loses a checkpoint not yet written out in the log's marker step (the events
it covers are durable; the next open signs the tree again).

The thread ends after `IDLE` seconds without a job and is started again by the next release,
so an owner that is dropped without being closed leaves no thread behind for long.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

IDLE = 1.0  # seconds without a job before the thread ends


class Worker:
    """Runs queued jobs on one background thread, in order, once released."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._queued: deque[Callable[[], None]] = deque()  # not yet released
        self._released: deque[Callable[[], None]] = deque()  # for the thread, in order
        self._running = False  # the thread has taken a job and it has not returned
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Queue a job; it runs after the next `release` (or `drain`)."""
        with self._cond:
            self._queued.append(job)

    def release(self) -> None:
        """Let the thread run every job queued so far (cheap when there is none)."""
        if not self._queued:  # read without the lock: a job queued meanwhile waits a turn
            return
        with self._cond:
            self._released.extend(self._queued)
            self._queued.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            else:
                self._cond.notify()

    def drain(self) -> None:
        """Release what is queued and wait until every job has run. A job that raised is
        raised here (once): it is a bug, never an expected outcome."""
        self.release()
        with self._cond:
            self._cond.wait_for(lambda: not self._released and not self._running)
            error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: bool(self._released), IDLE):
                    self._thread = None  # under the lock: the next release starts one
                    return
                job = self._released.popleft()
                self._running = True
            try:
                job()
            except BaseException as e:  # kept for drain: the thread itself never dies quietly
                with self._cond:
                    self._error = self._error or e
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
