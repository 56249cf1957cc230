"""Signing checkpoints while the log waits for the disk: jobs run in order by the log's thread.

Theory of operation
-------------------
A checkpoint's statement (origin, size, root hash) is fixed on the command thread when it is
asked for (engine/audit/trail.py); its tree hashing, Ed25519 signature and the signed note's
encoding (~45 us of CPU) are a job queued here. The log runs what is queued while its next
fdatasync is in the kernel (`Jobs.run` is the log's `while_syncing`: events/fdsync.py
submits the fdatasync through Linux AIO, runs the jobs, then waits for the disk), so a
checkpoint adds no time to a commit whose fdatasync outlasts it: the signature of commit N is
made while commit N+1 waits for the disk. Where the kernel cannot sync asynchronously, the
jobs run right before the fdatasync: the same signatures, one after the other.

Why not a thread of its own (the design until session 8): waking a sleeping thread costs the
committing thread a futex wake and, on a virtual machine, an inter-processor interrupt, and the
two threads then hand the GIL back and forth; measured with a job that does nothing, that
alone cost each commit 20-35 us of the committing thread's CPU, more than the ~15 us of
Python the signature's job holds the GIL for (tools/bench/audit_bench.py).

Jobs run one at a time, in the order queued (a lock: the log's thread and a reader may both
run them): none is skipped, merged or reordered, so every checkpoint asked for is signed, in
order. Whoever reads what the jobs produced calls `drain` first, which runs what is queued on
its own thread: with no later fdatasync (the last command, an idle device) the signature is
made then. A job that raises is a bug: kept and raised by the next `drain` (once), never in
the log's fdatasync. A job leaves the queue only once it has run: one a KeyboardInterrupt cut
short (or that ran, the interrupt coming before it left) runs again at the next turn, so a
job must be idempotent (the trail's are: each knows whether its checkpoint was kept). Nothing
is written out by a job itself: a process that dies with a job still queued loses only that
signature, as it loses a checkpoint not yet written out in the log's marker step (the events
it covers are durable; the next open signs the tree again).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Job = Callable[[], None]


class Jobs:
    """Jobs queued by any thread, run in order by whoever has time (`run`, `drain`)."""

    def __init__(self) -> None:
        self._queued: deque[Job] = deque()  # not yet run, in order (append/popleft: atomic)
        self._running = threading.Lock()  # one runner at a time: the order is kept
        self._error: BaseException | None = None

    def submit(self, job: Job) -> None:
        """Queue a job; it runs at the log's next fdatasync, or at `drain`."""
        self._queued.append(job)

    def run(self) -> None:
        """Run what is queued, in order. Never raises a job's error (see `drain`)."""
        with self._running:
            queued = self._queued
            while queued:
                job = queued[0]  # taken off once it ran: an interrupt never loses it
                try:
                    job()
                except Exception as e:  # a bug: kept for drain, the log's sync goes on
                    self._error = self._error or e
                queued.popleft()

    def drain(self) -> None:
        """Run what is queued on this thread; a job that raised is raised here (once)."""
        self.run()
        error, self._error = self._error, None
        if error is not None:
            raise error
