"""What the global-position remedy of events/pgstore.py costs concurrent writers.

    python tools/bench/pg_append_bench.py                   # 50 writers x 40 commits, 3 rounds
    python tools/bench/pg_append_bench.py --writers 10 --commits 100 --rounds 1

Starts its own PostgreSQL (tests/support/postgres.py, PostgreSQL's default durability:
fsync and synchronous_commit on) on 127.0.0.1, then, in one run and on that one server, has
`--writers` threads each append `--commits` one-event batches to its own log through
`PostgresEventStore.append` (one connection each, as 50 device engines would), under four
append functions installed in four databases:

- ours: what events/pgstore.py installs (transaction id + positions under a short advisory
  lock);
- NOTIFY in the transaction: the same with a NOTIFY inside the append's transaction
  (PostgreSQL serializes the commits of notifying transactions);
- no remedy: no lock at all (readers could skip events: the floor the remedy costs against);
- table lock: `LOCK TABLE trustledger_events IN EXCLUSIVE MODE` held to the COMMIT, as
  pyeventsourcing's recorder does.

Every line's writers also send the store's NOTIFY after each commit (a statement of its own).

Each line prints the commits/s of its best round and the p50/p99 latency of one append in that
round, and its ratio to "no remedy". Rounds alternate the lines so a burst of load elsewhere
hits them all. Not a test: it never runs under pytest; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for p in (str(REPO), str(Path(__file__).resolve().parent)):
    if p not in sys.path:
        sys.path.insert(0, p)

import psycopg  # noqa: E402
from together import run_together  # noqa: E402

from events import pgstore  # noqa: E402
from events.pgstore import PostgresEventStore  # noqa: E402
from tests.events.eventlog_support import noted  # noqa: E402
from tests.support.postgres import fresh_database, start_cluster  # noqa: E402

_NOTIFY_SQL = f"    PERFORM pg_notify('{pgstore.CHANNEL}', p_log);\n"
_RETURN_SQL = "    RETURN last_position;\n"


def _variant(name: str) -> str:
    """The schema with the append function's critical section (advisory lock, EXCEPTION
    block, unlock) replaced as the line says."""
    sql = pgstore._SCHEMA
    head, rest = sql.split(f"    PERFORM pg_advisory_lock({pgstore._LOCK});\n")
    section, tail = rest.split(f"    END;\n    PERFORM pg_advisory_unlock({pgstore._LOCK});\n")
    body = section[section.index("        INSERT"):section.index("    EXCEPTION")]
    assert _RETURN_SQL in tail
    if name == "ours":
        return sql
    if name == "NOTIFY in the transaction":
        return sql.replace(_RETURN_SQL, _NOTIFY_SQL + _RETURN_SQL)
    if name == "no remedy":
        return head + body + tail
    assert name == "table lock"
    return head + "    LOCK TABLE trustledger_events IN EXCLUSIVE MODE;\n" + body + tail


LINES = ["ours", "NOTIFY in the transaction", "no remedy", "table lock"]


def _round(url: str, writers: int, commits: int) -> tuple[float, list[float]]:
    stores = [PostgresEventStore.open(url, f"device-{n}") for n in range(writers)]
    for s in stores:
        s.append([noted(0)])  # warm: the connection, the prepared statement
    latencies: list[list[float]] = [[] for _ in range(writers)]
    start = threading.Barrier(writers + 1)

    def write(n: int) -> None:
        store, out = stores[n], latencies[n]
        batches = [[noted(i)] for i in range(commits)]
        start.wait()
        for b in batches:
            t0 = time.perf_counter()
            store.append(b)
            out.append(time.perf_counter() - t0)

    elapsed = run_together(write, writers, start)
    for s in stores:
        s.close()
    return writers * commits / elapsed, [x for xs in latencies for x in xs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writers", type=int, default=50)
    ap.add_argument("--commits", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    best: dict[str, tuple[float, list[float]]] = {}
    with start_cluster(fast=False, extra=("max_connections=300",)) as cluster:
        for _ in range(args.rounds):
            for line in LINES:
                with fresh_database(cluster) as url:
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute(_variant(line).encode())
                    rate, lat = _round(url, args.writers, args.commits)
                if line not in best or rate > best[line][0]:
                    best[line] = rate, lat
    floor = best["no remedy"][0]
    print(f"{args.writers} writers x {args.commits} one-event commits, best of {args.rounds}")
    print(f"{'line':<26} {'commits/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'x no remedy':>12}")
    for line in LINES:
        rate, lat = best[line]
        q = statistics.quantiles(lat, n=100)
        print(f"{line:<26} {rate:>10.0f} {q[49] * 1000:>8.1f} {q[98] * 1000:>8.1f} "
              f"{rate / floor:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
