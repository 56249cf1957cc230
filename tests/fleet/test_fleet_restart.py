"""The fleet follower folds each event exactly once: a step that dies before its commit
leaves the views and the position as they were, a follower killed anywhere and started
again ends where one uninterrupted run ends, and an event committed late (its position
below one already committed) is not skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.adapters.scep_inprocess import InProcessTransport
from engine.fleet import follower as follower_module
from engine.fleet.follower import FleetFollower
from engine.ports import FakeClock
from events.device import ConfigurationCommitted
from events.pgstore import PostgresEventStore
from events.store import PendingEvent
from tests.fleet.fleet_support import Fleet, build_fleet, dump, interleaved, load
from tests.support.postgres import Cluster, fresh_database
from tests.trustpoint.tp_support import CAFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet(tmp_path: Path, clock: FakeClock, network: InProcessTransport,
          ca_factory: CAFactory) -> Iterator[Fleet]:
    f = build_fleet(tmp_path, clock, network, ca_factory)
    yield f
    for e in f.engines.values():
        e.store.close()


@pytest.fixture
def reference(pg_cluster: Cluster, fleet: Fleet) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """The views one uninterrupted follower leaves, on a database of its own."""
    with fresh_database(pg_cluster) as url:
        load(url, interleaved(fleet))
        with FleetFollower(url) as f:
            f.catch_up()
        with psycopg.connect(url) as conn:
            yield dump(conn)


def _views(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return dump(conn)


def _events_up_to(url: str, position: int) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM trustledger_events WHERE position <= %s",
                           (position,)).fetchone()
    return int(row[0]) if row else 0


def test_a_step_that_dies_before_its_commit_changes_nothing(
        pg_url: str, fleet: Fleet, reference: dict[str, list[tuple[Any, ...]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    total = load(pg_url, interleaved(fleet))
    real_write = follower_module._write
    calls = {"n": 0}

    def dies_on_fifth(*args: Any) -> None:
        real_write(*args)  # the rows are written inside the transaction...
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("killed between the rows and the position")  # ...then it dies

    monkeypatch.setattr(follower_module, "_write", dies_on_fifth)
    with FleetFollower(pg_url, batch=4) as f:
        for _ in range(4):
            assert f.step() is not None
        before, views = f.position, _views(pg_url)
        with pytest.raises(RuntimeError):
            f.step()
        assert f.position == before and _views(pg_url) == views  # nothing of the dead step
        devices = sum(r[2] for r in views["trustledger_fleet_devices"])
        assert devices == _events_up_to(pg_url, before) == 16  # exactly the events folded
    monkeypatch.setattr(follower_module, "_write", real_write)
    with FleetFollower(pg_url, batch=4) as again:  # a new process: nothing cached
        assert again.catch_up() == total - 16
    assert _views(pg_url) == reference


_KILLED = textwrap.dedent("""
    import sys, threading, time
    from engine.fleet.follower import FleetFollower
    def stepped(applied):
        print(applied.position, flush=True)
        time.sleep(0.05)  # so that the kill finds it mid-way, not done
    with FleetFollower(sys.argv[1], batch=3) as f:
        f.follow(threading.Event(), on_step=stepped)
""")


def test_a_follower_killed_mid_catch_up_and_restarted_ends_as_one_run(
        pg_url: str, fleet: Fleet, reference: dict[str, list[tuple[Any, ...]]]) -> None:
    load(pg_url, interleaved(fleet))
    child = subprocess.Popen([sys.executable, "-c", _KILLED, pg_url], cwd=REPO,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        seen = [int(child.stdout.readline()) for _ in range(4)]
        child.send_signal(signal.SIGKILL)  # wherever it is: reading, folding, writing
    finally:
        child.kill()
        child.wait()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT position FROM trustledger_fleet_position").fetchone()
    assert row is not None and row[0] >= seen[-1]
    assert _views(pg_url) != reference  # it was killed mid-way...
    with FleetFollower(pg_url, batch=3) as f:
        f.catch_up()
    assert _views(pg_url) == reference  # ...and the restart ends where one run ends


def _commit(n: int, old: int | None = None) -> PendingEvent:
    was = None if old is None else f"hostname h{old}"
    ev = ConfigurationCommitted(1000000001 + n, "tester", "", "",
                                ((("hostname",), was, f"hostname h{n}"),))
    return PendingEvent(ev, "device", 1_700_000_000_000_000 + n)


def test_an_event_committed_late_is_not_skipped(pg_url: str) -> None:
    early = PostgresEventStore.open(pg_url, "early")
    late = PostgresEventStore.open(pg_url, "late")
    try:
        early.append([_commit(0)])
        with FleetFollower(pg_url) as f:
            f.catch_up()
            # `late` takes its position and holds its transaction open (the store commits
            # each append at once; its connection is put out of autocommit to hold it)...
            late._conn.autocommit = False
            late.append([_commit(1)])
            early.append([_commit(2, old=0)])  # ...while `early` commits a later position
            f.catch_up()
            assert f.position == 1  # it waits below the open transaction...
            late._conn.commit()
            late._conn.autocommit = True
            f.catch_up()
            assert f.position == 3
            rows = {r[0]: r[2] for r in _views(pg_url)["trustledger_fleet_devices"]}
        assert rows == {"early": 2, "late": 1}  # ...and folds it once it commits
    finally:
        early.close()
        late.close()


def test_two_followers_taking_turns_end_as_one_run(
        pg_url: str, fleet: Fleet, reference: dict[str, list[tuple[Any, ...]]]) -> None:
    """A `fleet follow` and a query's catch-up side by side: each folds what the other has
    not, and a device state one holds is behind once the other folded that device's later
    events (it is rebuilt from the store, not folded on top of the old one)."""
    load(pg_url, interleaved(fleet))
    with FleetFollower(pg_url, batch=5) as a, FleetFollower(pg_url, batch=3) as b:
        turn = [a, b]
        while any([f.step() is not None for f in turn]):
            turn.reverse()
        assert a.position == b.position
    assert _views(pg_url) == reference
