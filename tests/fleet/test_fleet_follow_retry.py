"""`fleet follow` outlives its store going away: it says so once, retries with back-off, and
goes on from the views' position when the store is back; Ctrl-C still stops it cleanly.
The store "goes away" by a TCP relay in front of the test cluster being shut (its
connections cut), then opened again on the same port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from events.device import ConfigurationCommitted
from events.pgstore import PostgresEventStore
from events.store import PendingEvent
from tests.support.peer_support import free_port

pytestmark = pytest.mark.integration

T0 = 1_764_201_600_000_000


class Relay:
    """127.0.0.1:`port` -> `target`, byte for byte, until `close` (which cuts every
    connection it carries)."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self._conns: list[socket.socket] = []
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._server.accept()
            except OSError:
                return
            far = socket.create_connection(self.target)
            self._conns += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._conns.clear()


def _declare(n: int) -> PendingEvent:
    key = f"crypto ca trustpoint tp{n}"
    ev = ConfigurationCommitted(1000000001 + n, "tester", "", "", (((key,), None, key),))
    return PendingEvent(ev, "device", T0 + n)


def _seq(url: str, device: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT seq FROM trustledger_fleet_devices WHERE device = %s",
                           (device,)).fetchone()
    return None if row is None else int(row[0])


def _until(what, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _follow(store: str) -> subprocess.Popen[str]:
    """`trustledger fleet follow --store STORE`, once it has said what it follows."""
    child = subprocess.Popen([sys.executable, "-m", "engine.cli", "fleet", "follow",
                              "--store", store], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert child.stdout is not None
    first = child.stdout.readline()
    if not first.startswith("Following postgresql://"):
        child.kill()
        child.wait()
        raise AssertionError(first)
    return child


def test_follow_waits_for_a_lost_store_and_goes_on_when_it_is_back(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    port = free_port()
    relayed = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    relay = Relay(port, ("127.0.0.1", parts.port or 5432))
    with PostgresEventStore.open(pg_url, "edge-1") as s:
        s.append([_declare(0)])
    child = _follow(relayed)
    try:
        assert child.stdout is not None and child.stderr is not None
        _until(lambda: _seq(pg_url, "edge-1") == 1)
        relay.close()  # the store goes away
        lost = child.stderr.readline()
        assert lost.startswith("% Lost the event store postgresql://"), lost
        assert "Retrying every 1 s to 30 s until it is back; Ctrl-C stops." in lost
        with PostgresEventStore.open(pg_url, "edge-1") as s:  # committed while it is away
            s.append([_declare(1)])
        time.sleep(1.5)  # at least one retry fails
        assert child.poll() is None  # still there, waiting
        relay = Relay(port, ("127.0.0.1", parts.port or 5432))  # ... and comes back
        back = child.stderr.readline()
        assert back.startswith("The event store postgresql://") and " is back; " in back
        _until(lambda: _seq(pg_url, "edge-1") == 2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        relay.close()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert out.splitlines() == ["Stopped at position 2."]
    assert "Traceback" not in err and "Lost" not in err  # said once


def test_follow_waits_out_a_store_turned_read_only(pg_url: str) -> None:
    """The database turned read-only under `fleet follow` (a failover to a standby, a
    maintenance switch): it says so once and waits, as for a store that went away, instead
    of exiting; writable again, it goes on from the views' position."""
    name = pg_url.rsplit("/", 1)[1]

    def read_only(on: bool) -> None:
        with psycopg.connect(pg_url, autocommit=True,
                             options="-c default_transaction_read_only=off") as admin:
            admin.execute(f'ALTER DATABASE "{name}" '
                          + ("SET default_transaction_read_only = on" if on else
                             "RESET default_transaction_read_only"))
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "datname = %s AND pid <> pg_backend_pid()", (name,))

    with PostgresEventStore.open(pg_url, "edge-1") as s:
        s.append([_declare(0)])
    child = _follow(pg_url)
    try:
        assert child.stdout is not None and child.stderr is not None
        _until(lambda: _seq(pg_url, "edge-1") == 1)
        read_only(True)  # its sessions end; every new one is read-only
        said = child.stderr.readline()
        assert said.startswith("% Lost the event store postgresql://"), said
        assert said.endswith("Retrying every 1 s to 30 s until it is back; Ctrl-C stops.\n")
        time.sleep(2.5)  # retries meet the read-only database (it used to exit here)
        assert child.poll() is None  # still there, waiting
        read_only(False)
        with PostgresEventStore.open(pg_url, "edge-1") as s:
            s.append([_declare(1)])
        back = child.stderr.readline()
        assert back.startswith("The event store postgresql://") and " is back; " in back
        _until(lambda: _seq(pg_url, "edge-1") == 2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        assert out.splitlines()[-1].startswith("Stopped at position ")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert "Traceback" not in err
