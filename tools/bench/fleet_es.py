"""The baseline of tools/bench/fleet_bench.py: eventsourcing 9.5's PostgreSQL recorder
(`PERSISTENCE_MODULE=eventsourcing.postgres`), one aggregate per device, saved by as many
threads as the fleet bench runs device engines.

Each device's thread creates its aggregate (one save), then per configuration change calls
the aggregate's command method, which records one `Committed` event carrying the same
change as our `ConfigurationCommitted` (the trustpoint line), and `app.save()`s it: one
transaction per save, as our engine commits one transaction per `commit`. The pool has a
connection per thread, so no thread waits for a connection (our engines each hold one).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from together import run_together


class Device(Aggregate):
    """A device as an eventsourcing aggregate: a name and its configuration commits."""

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.commits = 0

    @event("Committed")
    def commit(self, commit_id: int, user: str, changes: list[list[Any]]) -> None:
        self.commits += 1


class Fleet(Application):
    """The application every device's aggregate is saved through (one recorder)."""


def es_env(url: str, threads: int) -> dict[str, str]:
    """The settings eventsourcing reads, for the database at `url`."""
    u = urlsplit(url)
    return {"PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": u.path.lstrip("/"), "POSTGRES_HOST": u.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(u.port or 5432), "POSTGRES_USER": u.username or "postgres",
            "POSTGRES_PASSWORD": u.password or "", "POSTGRES_POOL_SIZE": str(threads),
            "POSTGRES_MAX_OVERFLOW": "10", "CREATE_TABLE": "y"}


@dataclass
class WriteRun:
    commits: int
    seconds: float
    latencies: list[float]  # seconds per save (or per engine `commit`)


def es_writers(url: str, devices: int, commits: int) -> WriteRun:
    """`devices` threads, each creating its aggregate and saving `commits` changes to it."""
    app = Fleet(env=es_env(url, devices))
    latencies: list[list[float]] = [[] for _ in range(devices)]
    start = threading.Barrier(devices + 1)
    errors: list[BaseException] = []

    def device(i: int) -> None:
        try:
            agg = Device(f"es-{os.getpid()}-{i}")
            app.save(agg)
            start.wait()
            mine = latencies[i]
            for k in range(commits):
                t = time.perf_counter()
                agg.commit(commit_id=1000000001 + k, user="bench",
                           changes=[[[f"crypto ca trustpoint tp{k}"], None,
                                     f"crypto ca trustpoint tp{k}"]])
                app.save(agg)
                mine.append(time.perf_counter() - t)
        except BaseException as e:  # reported by the caller
            errors.append(e)
            start.abort()

    seconds = run_together(device, devices, start)
    app.close()
    if errors:
        raise errors[0]
    return WriteRun(devices * commits, seconds, [x for d in latencies for x in d])


def es_event_count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM fleet_events").fetchone()
    return int(row[0]) if row else 0


