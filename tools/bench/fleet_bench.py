"""Fleet benchmark (issue 19 item 6): device engines over PostgresEventStore against
eventsourcing 9.5's PostgreSQL recorder, the fleet views' catch-up latency, and a fleet
query over 10,000 devices x 100 events. One run, one PostgreSQL server.

    python tools/bench/fleet_bench.py [--devices 50] [--commits 40] [--rounds 3]
                                      [--fleet 10000] [--events 100] [--store URL]

The server is a temporary cluster like the tests' (tests/support/postgres.py: initdb,
`postgres` on 127.0.0.1, a free port), with PostgreSQL's default durability (fsync on,
synchronous_commit on), unless `--store` names an existing server's database (it must be
empty; it is used as it is). Rows: ours / baseline / ratio / target / PASS|FAIL; the exit
status is 0 only if every target passes. See tools/bench/README.md, "fleet_bench.py".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for p in (str(REPO), str(Path(__file__).resolve().parent)):
    if p not in sys.path:
        sys.path.insert(0, p)

from fleet_es import WriteRun, es_event_count, es_writers  # noqa: E402
from fleet_material import copy_fleet  # noqa: E402
from together import run_together  # noqa: E402

from engine.engine import Engine  # noqa: E402
from engine.ports import EngineClock, SystemClock  # noqa: E402
from engine.revocation.store import MemoryCrlBlobs  # noqa: E402
from engine.runtime import Ports  # noqa: E402
from engine.state import DeviceState  # noqa: E402
from events.pgstore import (  # noqa: E402
    PostgresEventStore,
    connect,
    ensure_schema,
    read_all,
    wait_for_append,
)
from projections.render import render  # noqa: E402

# -- the server --------------------------------------------------------------------------------


@contextlib.contextmanager
def server(url: str | None) -> Iterator[object]:
    """A database maker: `fresh()` gives a new empty database's URL."""
    from tests.support.postgres import cluster_from_env, fresh_database, start_cluster

    cm = contextlib.nullcontext(cluster_from_env(url)) if url else start_cluster(fast=False)
    with cm as cluster:
        class Maker:
            def fresh(self) -> contextlib.AbstractContextManager[str]:
                return fresh_database(cluster)
        yield Maker()


# -- ours: device engines over PostgresEventStore ----------------------------------------------


def device_engine(url: str, log_id: str) -> Engine:
    """A device engine whose log is the store's `log_id` (new and empty), as `Engine.open`
    builds one around a file log; no data directory (no keystore: these devices only
    commit configuration)."""
    store = PostgresEventStore.open(url, log_id)
    ports = Ports(clock=EngineClock(SystemClock()), render=render,
                  crl_blobs=MemoryCrlBlobs())
    return Engine(store, DeviceState(), ports, None, "bench")


def our_writers(url: str, devices: int, commits: int, tag: str,
                on_commit: list[list[tuple[str, int, float]]] | None = None) -> WriteRun:
    """`devices` threads, each its own engine: `configure`, then per change `crypto ca
    trustpoint tpK` and `commit` (one ConfigurationCommitted, one transaction), `exit`.
    The latency is the `commit` line's."""
    engines = [device_engine(url, f"{tag}-{i:03d}") for i in range(devices)]
    latencies: list[list[float]] = [[] for _ in range(devices)]
    start = threading.Barrier(devices + 1)
    errors: list[BaseException] = []

    def device(i: int) -> None:
        e = engines[i]
        try:
            assert e.execute("configure").ok
            start.wait()
            for k in range(commits):
                assert e.execute(f"crypto ca trustpoint tp{k}").ok
                t = time.perf_counter()
                r = e.execute("commit")
                done = time.perf_counter()
                assert r.ok and len(r.events) == 1, r.output
                latencies[i].append(done - t)
                if on_commit is not None:
                    on_commit[i].append((e.store.log_id, r.events[0].seq, time.time()))  # type: ignore[attr-defined]
                assert e.execute("exit").ok
        except BaseException as err:  # reported by the caller
            errors.append(err)
            start.abort()

    seconds = run_together(device, devices, start)
    for e in engines:
        e.store.close()
    if errors:
        raise errors[0]
    return WriteRun(devices * commits, seconds, [x for d in latencies for x in d])


class PositionReader(threading.Thread):
    """Follows the store's global position while the writers commit (read_all after the
    last position it got, woken by notifications), and records every (log_id, seq) in
    the order it read them: a skipped event would be a hole in some log's seqs."""

    def __init__(self, url: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.url, self.expected = url, expected
        self.seen: list[tuple[str, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            reader, listener = connect(self.url), connect(self.url)
            after = 0
            deadline = None
            while len(self.seen) < self.expected:
                rows = read_all(reader, after, 5000)
                for r in rows:
                    self.seen.append((r.log_id, r.record.seq))
                    after = r.position
                if not rows:
                    wait_for_append(listener, 0.2)
                    deadline = deadline or time.monotonic() + 600
                    if time.monotonic() > deadline:
                        return
            reader.close()
            listener.close()
        except BaseException as err:  # reported by the caller
            self.error = err

    def skipped(self, commits: int) -> int:
        """Events the reader did not get in seq order, per log (0: none skipped)."""
        by_log: dict[str, list[int]] = {}
        for log_id, seq in self.seen:
            by_log.setdefault(log_id, []).append(seq)
        return sum(commits - sum(1 for i, s in enumerate(seqs, 1) if s == i)
                   for seqs in by_log.values())


# -- catch-up: commit -> fleet view ------------------------------------------------------------

_FOLLOWER = textwrap.dedent("""
    import json, sys, threading, time
    from engine.fleet.follower import FleetFollower
    import engine.engine  # every fold registered, as the CLI has them
    def out(applied):
        print(json.dumps([time.time(), applied.events]), flush=True)
    with FleetFollower(sys.argv[1]) as f:
        f.catch_up()
        print("ready", flush=True)
        f.follow(threading.Event(), on_step=out)
""")


def catch_up_latency(url: str, devices: int, commits: int) -> list[float]:
    """`devices` engines commit while `trustledger fleet follow`'s follower (a child
    process) keeps the views: per commit, wall time from the commit's return to the end
    of the follower's transaction that folded it."""
    with connect(url) as conn:
        ensure_schema(conn)
    child = subprocess.Popen([sys.executable, "-c", _FOLLOWER, url], cwd=REPO,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    folded: dict[tuple[str, int], float] = {}
    done = threading.Event()

    def collect() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            t, events = json.loads(line)
            for log_id, seq in events:
                folded[(log_id, seq)] = t
            if len(folded) >= devices * commits:
                done.set()

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    committed: list[list[tuple[str, int, float]]] = [[] for _ in range(devices)]
    our_writers(url, devices, commits, "lag", committed)
    done.wait(300)
    child.terminate()  # a measuring child: no clean stop needed (the CLI's is tested)
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    return [folded[(log_id, seq)] - t for d in committed for log_id, seq, t in d
            if (log_id, seq) in folded]


# -- the big fleet ----------------------------------------------------------------------------


def big_fleet(url: str, devices: int, events: int) -> dict[str, float]:
    conn = connect(url)
    ensure_schema(conn)
    t = time.perf_counter()
    loaded = copy_fleet(conn, devices, events)
    load_s = time.perf_counter() - t
    size = conn.execute("SELECT pg_total_relation_size('trustledger_events')").fetchone()
    conn.close()
    t = time.perf_counter()
    first = subprocess.run([sys.executable, "-m", "engine.cli", "fleet", "devices", "--store",
                            url, "--json"], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    catch_s = time.perf_counter() - t
    listed = len(json.loads(first.stdout)["devices"])
    assert listed == devices, listed
    walls, cpus, answered = [], [], 0
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        got = subprocess.run([sys.executable, "-m", "engine.cli", "fleet", "certificates",
                              "--expiring", "30d", "--store", url], cwd=REPO,
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        answered = len(got.stdout.splitlines()) - 1
    return {"events": loaded, "load_s": load_s, "mb": (size[0] if size else 0) / 2**20,
            "catch_up_s": catch_s, "query_s": min(walls), "query_cpu_s": min(cpus),
            "query_max_s": max(walls), "rows": answered}


# -- the table ---------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def row(label: str, ours: float, base: float | None, target: float | None, unit: str,
        higher_is_better: bool = True) -> bool:
    """ours / baseline / ratio / target / PASS|FAIL (with no baseline the target bounds
    ours itself; with no target the row is a figure, `-`, and passes)."""
    ratio = ours / base if base else ours
    b = f"{base:>10,.1f}" if base else f"{'-':>10}"
    r = f"{ratio:>7.2f}x" if base else f"{ours:>7.2f}{unit}"
    if target is None:
        print(f"  {label:<50} {ours:>10,.1f} {b} {r:>9}  {'-':<10} -")
        return True
    ok = ratio >= target if higher_is_better else ratio < target
    cmp = ">=" if higher_is_better else "<"
    t = f"{cmp} {target:g}{'x' if base else unit}"
    print(f"  {label:<50} {ours:>10,.1f} {b} {r:>9}  {t:<10} {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=50, help="concurrent device engines")
    ap.add_argument("--commits", type=int, default=40, help="commits per device per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fleet", type=int, default=10_000, help="devices of the big fleet")
    ap.add_argument("--events", type=int, default=100, help="events per big-fleet device")
    ap.add_argument("--store", default=None, help="an existing server (default: a temp one)")
    args = ap.parse_args()
    n = args.devices * args.commits
    ours: list[WriteRun] = []
    theirs: list[WriteRun] = []
    skipped = 0
    with server(args.store) as srv:
        for r in range(args.rounds):  # alternate, so a burst of load hits both sides
            with srv.fresh() as url:  # type: ignore[attr-defined]
                PostgresEventStore.open(url, "warm-up").close()  # makes the schema
                reader = PositionReader(url, n)
                reader.start()
                ours.append(our_writers(url, args.devices, args.commits, f"r{r}"))
                reader.join(120)
                if reader.error:
                    raise reader.error
                skipped += reader.skipped(args.commits) + (n - len(reader.seen))
            with srv.fresh() as url:  # type: ignore[attr-defined]
                theirs.append(es_writers(url, args.devices, args.commits))
                assert es_event_count(url) == n + args.devices  # + each aggregate's Created
            print(f"  .. round {r + 1}: ours {ours[-1].commits / ours[-1].seconds:,.0f}/s, "
                  f"eventsourcing {theirs[-1].commits / theirs[-1].seconds:,.0f}/s",
                  file=sys.stderr)
        with srv.fresh() as url:  # type: ignore[attr-defined]
            lags = catch_up_latency(url, args.devices, args.commits)
        with srv.fresh() as url:  # type: ignore[attr-defined]
            fleet = big_fleet(url, args.fleet, args.events)
    best_ours = max(ours, key=lambda w: w.commits / w.seconds)
    best_es = max(theirs, key=lambda w: w.commits / w.seconds)
    print(f"fleet_bench: {args.devices} devices x {args.commits} commits, best of "
          f"{args.rounds} rounds; catch-up with {args.devices} writers; "
          f"{args.fleet:,} devices x {args.events} events")
    print(f"  {'measurement':<50} {'ours':>10} {'baseline':>10} {'ratio':>9}  "
          f"{'target':<10} result")
    oks = [
        row(f"commits/s, {args.devices} engines vs eventsourcing",
            best_ours.commits / best_ours.seconds, best_es.commits / best_es.seconds,
            1.0, "x"),
        row("commit p99 latency (ms), ours vs eventsourcing",
            pct(best_ours.latencies, 0.99) * 1000, pct(best_es.latencies, 0.99) * 1000,
            None, "x"),
        row("events skipped by a reader following position", skipped, None, 1, "",
            higher_is_better=False),
        row("catch-up: commits seen folded into the views", len(lags), None, n, ""),
        row("commit -> fleet view p50 (ms)", pct(lags, 0.5) * 1000, None, None, "ms"),
        row("commit -> fleet view p99 (ms)", pct(lags, 0.99) * 1000, None, None, "ms"),
        row(f"fleet certificates --expiring 30d, {args.fleet:,} devices (s)",
            fleet["query_s"], None, 1.0, " s", higher_is_better=False),
    ]
    print(f"  (every round, commits/s) ours: "
          f"{', '.join(f'{w.commits / w.seconds:,.0f}' for w in ours)}; eventsourcing: "
          f"{', '.join(f'{w.commits / w.seconds:,.0f}' for w in theirs)}")
    print(f"  (p50 commit ms) ours {pct(best_ours.latencies, 0.5) * 1000:.1f}, "
          f"eventsourcing {pct(best_es.latencies, 0.5) * 1000:.1f}")
    print(f"  (big fleet) {fleet['events']:,.0f} events loaded by COPY in "
          f"{fleet['load_s']:.1f} s ({fleet['mb']:,.0f} MB with indexes); first `fleet "
          "devices` caught the views up in "
          f"{fleet['catch_up_s']:.1f} s ({fleet['events'] / fleet['catch_up_s']:,.0f} "
          f"events/s); `fleet certificates --expiring 30d`: {fleet['rows']:.0f} rows, "
          f"{fleet['query_s']:.2f}-{fleet['query_max_s']:.2f} s over 3 runs (wall, "
          f"process start included; its CPU time {fleet['query_cpu_s']:.2f} s)")
    return 0 if all(oks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
