"""A CA that trickles or hangs: every SCEP exchange ends at its deadline with a `%` error, and a
scheduled poll stuck on such a CA never holds the operator's prompt (issue 10 item 4)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from engine import Engine
from engine.ca.decide import Approval
from engine.frontends import Scheduler
from engine.ports import FakeClock
from engine.scep_client import HttpxTransport, TransportError
from engine.trustpoints import status_of
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    configure,
    declare,
    enroll,
    event_types,
    identity_and_key,
)

REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
         b"Connection: close\r\n\r\n"
         b"POSTPKIOpe")


class SlowCA:
    """A loopback "CA" that reads a request, then either trickles a reply one byte every
    `interval` seconds (`trickle`) or says nothing until `release` is set."""

    def __init__(self, *, trickle: bool, interval: float = 0.2) -> None:
        self.trickle = trickle
        self.interval = interval
        self.release = threading.Event()
        self.requested = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.requested.set()
            if not self.trickle:
                self.release.wait(60)
                return
            for i in range(len(REPLY)):
                if self.release.wait(self.interval):
                    return
                try:
                    conn.sendall(REPLY[i:i + 1])
                except OSError:
                    return  # the client gave up

    def close(self) -> None:
        self.release.set()
        self.sock.close()


@contextmanager
def slow_ca(*, trickle: bool, interval: float = 0.2) -> Iterator[SlowCA]:
    ca = SlowCA(trickle=trickle, interval=interval)
    try:
        yield ca
    finally:
        ca.close()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_authenticate_against_a_trickling_ca_ends_at_the_deadline() -> None:
    """The reply takes 14 s at one byte per 0.2 s (10 s read timeout never trips); the 1 s
    deadline of the exchange ends it with a `%` error and nothing stored."""
    with slow_ca(trickle=True) as ca:
        e = Engine.in_memory(clock=FakeClock(), scep=HttpxTransport(deadline=1.0))
        configure(e, "crypto ca trustpoint t1", f"enrollment url {ca.url}")
        r = e.execute("crypto ca authenticate t1")
    assert r.error is not None and r.events == []
    assert r.error.message == (f"% Unable to reach the CA at {ca.url}/cgi-bin/pkiclient.exe: "
                               "no complete answer within the 1 s deadline of the exchange")
    assert status_of(e.state, "t1").ca_certificate is None


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_the_deadline_covers_getcacaps_and_getcacert_together() -> None:
    """Each reply takes about 1.2 s, under the 2 s deadline alone; GetCACaps then GetCACert
    take 2.4 s, so the exchange ends at its deadline (a per-request deadline would instead
    reach GetCACert's content-type check)."""
    with slow_ca(trickle=True, interval=1.2 / len(REPLY)) as ca:
        e = Engine.in_memory(clock=FakeClock(), scep=HttpxTransport(deadline=2.0))
        configure(e, "crypto ca trustpoint t1", f"enrollment url {ca.url}")
        r = e.execute("crypto ca authenticate t1")
    assert r.error is not None and r.error.message.endswith(
        "no complete answer within the 2 s deadline of the exchange")


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_pki_operation_post_ends_at_the_deadline() -> None:
    """Enrollment and polls are PKIOperation POSTs: the same deadline holds."""
    with slow_ca(trickle=True) as ca:
        transport = HttpxTransport(deadline=0.5)
        with pytest.raises(TransportError, match=r"within the 0\.5 s deadline"):
            transport.post(ca.url + "/scep", {"operation": "PKIOperation"}, b"\x30\x00")


def test_the_default_deadline_is_a_minute() -> None:
    assert HttpxTransport().deadline.seconds == 60.0


# -- a scheduled poll against a CA that hangs ---------------------------------------------------


def pending_on(device: Engine, ca_factory: CAFactory, hanging_url: str) -> None:
    """An enrollment pending at a real CA (manual approval), then pointed at `hanging_url`."""
    ca, server = ca_factory(Approval.MANUAL)
    identity_and_key(device)
    declare(device, url=server.url, period=1, count=5)
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    assert event_types(enroll(device, password=ca.mint_challenge())) == [
        "EnrollmentRequested", "EnrollmentPending"]
    configure(device, "crypto ca trustpoint myca", f"enrollment url {hanging_url}")
    device.ports.scep = HttpxTransport(timeout=30, deadline=30)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_hung_poll_never_holds_the_prompt(device: Engine, ca_factory: CAFactory,
                                            clock: FakeClock) -> None:
    with slow_ca(trickle=False) as hung:
        pending_on(device, ca_factory, hung.url)
        clock.advance(60)  # the poll is due
        scheduler = Scheduler(device)
        ticker = threading.Thread(target=scheduler.tick, daemon=True)
        ticker.start()
        assert hung.requested.wait(30)  # the poll is in flight, and stays so
        answered: list[str] = []
        typed = threading.Thread(target=lambda: answered.append(
            scheduler.execute("show crypto ca trustpoint myca").output), daemon=True)
        typed.start()
        typed.join(timeout=30)
        assert answered and "State               :enrolling" in answered[0]
        assert not hung.release.is_set() and ticker.is_alive()  # the CA still holds the poll
        hung.release.set()  # the CA hangs up: the poll failed, and counts
        ticker.join(timeout=60)
    st = status_of(device.state, "myca").enrollment
    assert st is not None and st.polls == 1


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_poll_overtaken_by_a_command_is_dropped(device: Engine, ca_factory: CAFactory,
                                                  clock: FakeClock) -> None:
    """cancel-enroll typed while the poll hangs wins; the poll's outcome is not appended."""
    with slow_ca(trickle=False) as hung:
        pending_on(device, ca_factory, hung.url)
        clock.advance(60)
        scheduler = Scheduler(device)
        ticker = threading.Thread(target=scheduler.tick, daemon=True)
        ticker.start()
        assert hung.requested.wait(30)
        cancelled = scheduler.execute("crypto ca cancel-enroll myca")
        assert cancelled.ok, cancelled.output
        seq = device.state.seq
        hung.release.set()
        ticker.join(timeout=60)
    assert device.state.seq == seq
    assert status_of(device.state, "myca").enrollment is None
