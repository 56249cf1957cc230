"""Signing checkpoints while the log waits for the disk: one worker thread, jobs in order.

Theory of operation
-------------------
A checkpoint's statement (origin, size, root hash) is fixed on the command thread when it is
asked for (engine/audit/trail.py); its tree hashing, Ed25519 signature and the signed note's
encoding (~45 us of CPU on a cold cache; cryptography lets the GIL go while it signs, but the
job needs it before and after) are a job queued on a `Worker`. Jobs run only while the window
is open: `release` opens it right before the log's next fdatasync and `hold` closes it when
the fdatasync returns (`FileEventLog.on_sync`): the command thread then sleeps in the kernel
without the GIL for the disk's ~100-1000 us, and the worker signs in that time instead of
adding its CPU to a commit. A job the worker could not start in time (a busy machine
schedules it late) waits for the next window: started later, it would take the GIL while the
command thread encodes and writes the next batch, and the command would wait for it, or for a
worker descheduled while holding the GIL, for milliseconds (measured: tools/bench/
audit_bench.py; releasing jobs the moment they are queued was slower still). So a job is kept
short: one that outlasts the fdatasync makes the command thread wait for the GIL when the
disk answers (measured in the benchmark: 9-20% of the jobs did, when each built its note
through `sign_note` and the range twice; about 1% since).

Waking the thread is the commit path's own cost (a futex wake; in a virtual machine an
inter-processor interrupt, ~3-12 us of the command thread's CPU when the worker's CPU is
idle), so a release rings only a thread that is asleep: one still awake (running jobs, or
rung and not yet running) looks at the queue and the window again before it waits (`_take`),
and takes what was released meanwhile. Where the thread runs is left to the OS: pinning it to
the CPU of the thread that releases it (idle while that thread waits for the disk) was
measured, and made commits slower on a quiet machine (more CPU per commit), faster only
under load.

Jobs run one at a time on the one thread, in the order queued: none is skipped, merged or
reordered, so every checkpoint asked for is signed, in order. Whoever reads what the jobs
produced calls `drain` first, which runs what is queued whatever the window and waits until
it has run: with no later fdatasync (the last command, an idle device) the signature is made
then. Nothing is written out by a job itself: a process that dies with a job still queued
loses only that signature, as it loses a checkpoint not yet written out in the log's marker
step (the events it covers are durable; the next open signs the tree again).

The thread ends after `IDLE` seconds without a job and is started again by the next release,
so an owner that is dropped without being closed leaves no thread behind for long.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable

IDLE = 1.0  # seconds without a wake-up before the thread ends

Job = Callable[[], None]


class Worker:
    """Runs queued jobs on one background thread, in order, while released (or drained)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition(threading.Lock())  # guards what follows
        self._queued: deque[Job] = deque()  # not yet run, in order
        self._open = False  # the window: jobs may start (`release` .. `hold`)
        self._draining = 0  # callers waiting in drain: jobs start whatever the window
        self._running = False  # the thread has taken a job and it has not returned
        self._awake = False  # rung and not yet back to waiting: a release need not ring
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()  # the thread's doorbell
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, job: Job) -> None:
        """Queue a job; it runs in the next window (or `drain`)."""
        with self._cond:
            self._queued.append(job)

    def release(self) -> None:
        """Open the window: the thread runs what is queued until `hold` (cheap when there
        is nothing queued, and no wake-up when the thread is awake: it looks again before
        it waits, see `_take`)."""
        if not self._queued:  # unlocked: a job queued by another thread meanwhile waits a turn
            return
        self._open = True
        if not self._awake:
            self._ring()

    def hold(self) -> None:
        """Close the window: no job starts from now on (one running finishes)."""
        self._open = False

    def drain(self) -> None:
        """Run what is queued, whatever the window, and wait until it has run. A job that
        raised is raised here (once): it is a bug, never an expected outcome."""
        with self._cond:
            if not self._queued and not self._running and self._error is None:
                return
            self._draining += 1
        self._ring()
        with self._cond:
            try:
                self._cond.wait_for(lambda: not self._queued and not self._running)
            finally:
                self._draining -= 1
            error, self._error = self._error, None
        if error is not None:
            raise error

    def _ring(self) -> None:
        with self._cond:  # under the lock: a thread ending for idleness sees the token
            self._awake = True
            self._wake.put(None)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._wake.get(timeout=IDLE)
            except queue.Empty:
                with self._cond:
                    if self._wake.empty():
                        self._thread = None  # under the lock: the next ring starts one
                        return
                continue
            while (job := self._take()) is not None:
                error = None
                try:
                    job()
                except BaseException as e:  # kept for drain: the thread never dies quietly
                    error = e
                with self._cond:
                    self._running = False
                    self._error = self._error or error
                    if self._draining:
                        self._cond.notify_all()

    def _take(self) -> Job | None:
        """The next job the thread may start (marked running), or None: then it is no longer
        awake, and waits for the next ring. `release` reads `_awake` without the lock, so
        the queue and the window are looked at again once it is cleared: a release that saw
        the thread awake has opened the window by then, and its job is taken here."""
        with self._cond:
            if not self._startable():
                self._awake = False
                if not self._startable():
                    return None
            self._running = self._awake = True
            return self._queued.popleft()

    def _startable(self) -> bool:
        return bool(self._queued) and (self._open or self._draining > 0)
