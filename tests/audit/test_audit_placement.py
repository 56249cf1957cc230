"""The signer thread runs on the CPU of the thread that releases it while it keeps up, and
anywhere once it falls behind (engine/audit/placement.py): a wake-up on one CPU is cheap, one
across CPUs is an inter-processor interrupt paid by the commit path."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pytest

import engine.audit.placement
from engine.audit.placement import Placement
from engine.audit.signer import Worker

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
real_placement = pytest.mark.skipif(
    len(CPUS) < 2 or engine.audit.placement._cpu_probe() is None,
    reason="needs sched_getcpu, sched_setaffinity and two CPUs")


def test_the_worker_follows_the_releasing_threads_cpu_and_lets_go_when_behind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = [3]
    calls: list[set[int]] = []
    monkeypatch.setattr(engine.audit.placement, "_cpu_probe", lambda: lambda: cpu[0])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: calls.append(set(cpus)))
    place = Placement()
    place.settle(behind=False)  # nothing released yet: left where it is
    assert calls == []
    place.note()
    place.settle(behind=False)
    place.settle(behind=False)  # already there: no system call
    assert calls == [{3}]
    cpu[0] = 1  # the releasing thread moved
    place.note()
    place.settle(behind=False)
    place.settle(behind=True)  # behind: every CPU it started with
    place.settle(behind=True)
    place.settle(behind=False)  # caught up: back beside the releasing thread
    assert calls == [{3}, {1}, {0, 1, 2, 3}, {1}]


def test_without_sched_getcpu_nothing_is_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[set[int]] = []
    monkeypatch.setattr(engine.audit.placement, "_cpu_probe", lambda: None)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: calls.append(set(cpus)))
    place = Placement()
    place.note()
    place.settle(behind=False)
    place.settle(behind=True)
    assert calls == []


def _on_cpu(cpu: int, step: Callable[[], None]) -> None:
    """Run `step` on a thread pinned to `cpu` (the test's own thread stays unpinned)."""
    def run() -> None:
        os.sched_setaffinity(0, {cpu})
        step()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)


def _started(name: str) -> Worker:
    """A worker whose thread was started by the test's own (unpinned) thread, as the log's
    thread starts it: it inherits that thread's CPUs."""
    worker = Worker(name)
    worker.submit(lambda: None)
    worker.drain()
    return worker


def _worker_cpus(worker: Worker) -> set[int]:
    [thread] = [t for t in threading.enumerate() if t.name == worker.name]
    assert thread.native_id is not None
    return os.sched_getaffinity(thread.native_id)


@real_placement
def test_the_signer_thread_moves_to_the_cpu_that_released_it() -> None:
    worker = _started("audit-signer-placement-test")
    for cpu in (CPUS[0], CPUS[1], CPUS[0]):
        ran = threading.Event()

        def release(ran: threading.Event = ran) -> None:
            worker.submit(ran.set)
            worker.release()

        _on_cpu(cpu, release)
        assert ran.wait(10)
        worker.hold()
        assert _worker_cpus(worker) == {cpu}
    worker.drain()


@real_placement
def test_a_signer_thread_left_behind_may_run_anywhere() -> None:
    """It went to sleep with jobs still queued (the window closed first): the next wake-up
    lets it run on every CPU it started with."""
    worker = _started("audit-signer-behind-test")
    started, go_on, done = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        go_on.wait(10)

    def first() -> None:
        worker.submit(slow)
        for _ in range(2):
            worker.submit(lambda: None)
        worker.release()

    _on_cpu(CPUS[0], first)
    assert started.wait(10)
    assert _worker_cpus(worker) == {CPUS[0]}
    worker.hold()  # the disk answered: the two jobs after `slow` wait for the next window
    go_on.set()
    deadline = time.monotonic() + 10
    while not worker._behind:
        assert time.monotonic() < deadline, "the worker never went to sleep behind"
        time.sleep(0.005)

    def again() -> None:
        worker.submit(done.set)
        worker.release()

    _on_cpu(CPUS[0], again)
    assert done.wait(10)
    assert _worker_cpus(worker) == set(CPUS)
    worker.drain()
