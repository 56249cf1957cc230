"""Where the signer thread runs: on the CPU of the thread that releases it, while it keeps up.

Theory of operation
-------------------
The signer (engine/audit/signer.py) works only while the log's thread sleeps in fdatasync, so
the CPU that thread leaves idle is the one to sign on. Left to itself, the kernel wakes the
signer on an idle CPU, and on a quiet machine that is another one: every wake-up (the release
before each fdatasync, and the GIL handed over when the log's thread enters it) is then an
inter-processor interrupt, in a virtual machine an exit to the hypervisor, paid by the waking
thread: the commit path. Measured on the 2-vCPU KVM guest this was written on: a wake-up
across CPUs cost the waker ~10-12 us of CPU and ~35 us of wall time, one on its own CPU ~1 us;
in the commit loop of tools/bench/audit_bench.py (fdatasync replaced by a sleep, the signer
pinned to the other CPU or to the log thread's) 25-30 us of the process's CPU per commit.

So each release notes the releasing thread's CPU (`sched_getcpu`, ~0.1 us), and the signer,
each time it wakes, moves itself there if it is elsewhere (`sched_setaffinity` of itself, only
on a change): from the second wake-up on, they are on one CPU.

A signer that falls behind (a window closed with jobs still queued: a disk that answers faster
than a job signs) may run on any CPU again, where a job started in one window goes on beside
the log's thread instead of waiting for its next fdatasync; it comes back once it has caught
up. Where the C library has no `sched_getcpu` or the OS no `sched_setaffinity` (not Linux),
nothing is done: placement stays the OS's. Placement changes no result, only where the same
jobs run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

ANYWHERE = -1


def _cpu_probe() -> Callable[[], int] | None:
    """sched_getcpu(3), or None where there is no such call or no way to use its answer."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        import ctypes

        probe = ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError):
        return None
    probe.restype, probe.argtypes = ctypes.c_int, []
    return probe


class Placement:
    """The CPU a worker thread should run on: `note` on the releasing thread, `settle` on
    the worker thread itself."""

    def __init__(self) -> None:
        self._probe: Callable[[], int] | None = None
        self._probed = False  # ctypes is loaded at the first release, not at import
        self._home = ANYWHERE  # the CPU the releasing thread was on, last time
        self._placed = ANYWHERE  # where the worker has put itself (ANYWHERE: not pinned)
        self._anywhere: set[int] | None = None  # the CPUs it may use, as it started

    def note(self) -> None:
        """On the releasing thread: remember the CPU it runs on."""
        if not self._probed:
            self._probe, self._probed = _cpu_probe(), True
        if self._probe is not None:
            self._home = self._probe()

    def settle(self, behind: bool) -> None:
        """On the worker thread, after it wakes: move to the releasing thread's CPU, or, if
        it is `behind`, allow every CPU it started with. A refusal (a CPU set changed under
        it) leaves it where it is, and it does not try again until the wish changes."""
        want = ANYWHERE if behind else self._home
        if want == self._placed or self._probe is None:
            return
        if self._anywhere is None:
            self._anywhere = os.sched_getaffinity(0)
        with contextlib.suppress(OSError):  # e.g. the CPU left the process's set
            os.sched_setaffinity(0, self._anywhere if want == ANYWHERE else {want})
        self._placed = want

    def forget(self) -> None:
        """The worker thread ends: a new one starts unpinned, with its own CPU set."""
        self._placed, self._anywhere = ANYWHERE, None
