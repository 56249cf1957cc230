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

import queue
import threading
from collections.abc import Callable

IDLE = 1.0  # seconds without a job before the thread ends

Job = Callable[[], None]


class Worker:
    """Runs queued jobs on one background thread, in order, once released."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queued: list[Job] = []  # not yet released
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()  # released, for the thread
        self._cond = threading.Condition()  # guards what follows
        self._sent = 0  # jobs released so far
        self._done = 0  # jobs run so far
        self._draining = 0  # callers waiting in drain (the thread wakes them only then)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, job: Job) -> None:
        """Queue a job; it runs after the next `release` (or `drain`)."""
        with self._cond:
            self._queued.append(job)

    def release(self) -> None:
        """Let the thread run every job queued so far (cheap when there is none)."""
        if not self._queued:  # unlocked: a job queued by another thread meanwhile waits a turn
            return
        with self._cond:
            jobs, self._queued = self._queued, []
            for job in jobs:
                self._jobs.put(job)
            self._sent += len(jobs)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def drain(self) -> None:
        """Release what is queued and wait until every job has run. A job that raised is
        raised here (once): it is a bug, never an expected outcome."""
        self.release()
        with self._cond:
            self._draining += 1
            try:
                self._cond.wait_for(lambda: self._done == self._sent)
            finally:
                self._draining -= 1
            error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE)
            except queue.Empty:
                with self._cond:
                    if self._jobs.empty():
                        self._thread = None  # under the lock: the next release starts one
                        return
                continue
            error = None
            try:
                job()
            except BaseException as e:  # kept for drain: the thread itself never dies quietly
                error = e
            with self._cond:
                self._done += 1
                self._error = self._error or error
                if self._draining:
                    self._cond.notify_all()
