"""Concurrent writers for the PostgreSQL benchmarks (fleet_bench, fleet_es, pg_append_bench):
start them all, let them go at once, time until the last one ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def run_together(work: Callable[[int], None], count: int, start: threading.Barrier) -> float:
    """Run `work(0)` ... `work(count - 1)` on threads of their own. Each calls `start.wait()`
    (a Barrier of `count + 1`) when it is ready; the clock starts when all are. Returns the
    seconds until the last one ended."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0
