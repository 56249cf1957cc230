"""`trustledger fleet follow` keeps the views current as devices commit (woken by the
store's notifications) and stops cleanly on Ctrl-C; a CA's log is listed, counted, not
folded as a device."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from engine.fleet import queries
from engine.fleet.follower import FleetFollower
from events.ca import ChallengeMinted
from events.device import ConfigurationCommitted
from events.pgstore import PostgresEventStore
from events.store import PendingEvent

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0 = 1_764_201_600_000_000  # 2025-11-27 00:00:00 UTC, µs


def _declare(n: int, name: str) -> PendingEvent:
    key = f"crypto ca trustpoint {name}"
    ev = ConfigurationCommitted(1000000001 + n, "tester", "", "", (((key,), None, key),))
    return PendingEvent(ev, "device", T0 + n)


def _device_row(url: str, device: str) -> tuple[int, int] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT seq, trustpoints FROM trustledger_fleet_devices "
                           "WHERE device = %s", (device,)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _until(what, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (got := what()) is None or got is False:
        assert time.monotonic() < deadline, "the views did not catch up"
        time.sleep(0.05)
    return got


def test_follow_keeps_the_views_current_and_stops_on_ctrl_c(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "edge-1") as s:
        s.append([_declare(0, "tp0")])
    child = subprocess.Popen([sys.executable, "-m", "engine.cli", "fleet", "follow"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                             "TRUSTLEDGER_STORE": pg_url})
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith("Following postgresql://") and "Ctrl-C stops." in first
        _until(lambda: _device_row(pg_url, "edge-1") == (1, 1))
        with PostgresEventStore.open(pg_url, "edge-1") as s:  # a later commit...
            s.append([_declare(1, "tp1")])
        with PostgresEventStore.open(pg_url, "edge-2") as s:  # ...and a new device
            s.append([_declare(0, "tp0")])
        _until(lambda: _device_row(pg_url, "edge-1") == (2, 2))
        _until(lambda: _device_row(pg_url, "edge-2") == (1, 1))
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    assert out.splitlines() == ["Stopped at position 3."]
    assert "Traceback" not in err


def test_a_ca_log_is_counted_not_folded(pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "ca-main", kind="ca") as ca:
        ca.append([PendingEvent(ChallengeMinted(bytes(32), T0 + 10), "ca", T0 + 5)])
        ca.append([PendingEvent(ChallengeMinted(bytes(32), T0 + 20), "ca", T0 + 6)])
    with PostgresEventStore.open(pg_url, "edge-1") as s:
        s.append([_declare(0, "tp0")])
    with FleetFollower(pg_url) as f:
        f.catch_up()
        rows = f.answer(queries.devices, T0).rows
    assert [(d.device, d.kind, d.events, d.last_at, d.trustpoints) for d in rows] == [
        ("ca-main", "ca", 2, T0 + 6, 0), ("edge-1", "device", 1, T0, 1)]


def test_follow_names_a_released_log_again_when_it_is_quarantined_again(pg_url: str) -> None:
    """`fleet follow` names each quarantined log once; once released, a new quarantine of
    the same log is news and is named again."""
    import psycopg

    from engine.cli import main
    from tests.fleet.test_fleet_quarantine import _append_foreign

    def damage(seq: int) -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE trustledger_events SET hash = %s WHERE log_id = 'dmg' AND "
                         "seq = %s", (bytes(32), seq))

    def repair(seq: int) -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE trustledger_events SET hash = sha256(prev || core) WHERE "
                         "log_id = 'dmg' AND seq = %s", (seq,))

    with PostgresEventStore.open(pg_url, "dmg") as s:
        s.append([_declare(0, "tp0")])
        s.append([_declare(1, "tp1")])
    damage(2)
    child = subprocess.Popen([sys.executable, "-m", "engine.cli", "fleet", "follow"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                             "TRUSTLEDGER_STORE": pg_url})
    import queue
    import threading

    lines: queue.Queue[str] = queue.Queue()
    assert child.stderr is not None
    threading.Thread(target=lambda: [lines.put(ln) for ln in child.stderr],  # type: ignore[union-attr]
                     daemon=True).start()
    try:
        first = lines.get(timeout=30)
        assert first == ("% Quarantined, not folded from there on (see fleet devices): dmg "
                         "at seq 2 (hash chain broken).\n")
        repair(2)
        assert main(["fleet", "release", "dmg", "--store", pg_url]) == 0
        with PostgresEventStore.open(pg_url, "dmg") as s:
            s.append([_declare(2, "tp2")])
        _append_foreign(pg_url, "dmg")  # seq 4, a newer writer's: quarantined again
        with PostgresEventStore.open(pg_url, "edge") as s:  # a wake-up after it
            s.append([_declare(0, "tp0")])
        again = lines.get(timeout=30)
        assert again == ("% Quarantined, not folded from there on (see fleet devices): dmg "
                         "at seq 4 (event type FromTheFuture is not one this build folds as "
                         "a device's).\n")
        child.send_signal(signal.SIGINT)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0
