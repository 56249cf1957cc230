"""`ca serve --workers N`: worker processes serve SCEP while one decider owns the log.

The in-process tests make this test process the decider (`serve(ca, workers=2)`), so they can
look at the CA's live state; the CLI tests run `ca serve` as the operator would, to kill and
signal it."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509

from engine.ca import Approval, BuiltinCA, CAError
from engine.ca.server import CAServer, serve
from engine.ca.service import replay
from engine.ca.state import RequestStatus
from engine.scep import FailInfo, PkiStatus
from events.filelog import FileEventLog
from tests.ca.ca_support import ScepTestClient, http_request, make_ca, rsa_key
from tests.ca.cli_support import served

pytestmark = pytest.mark.integration

PW = "workers-secret"


def wait_for(condition: object, timeout: float = 15.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone). A process
    reaped between the open and the read makes the read fail with ESRCH: gone too."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[BuiltinCA]:
    with make_ca(tmp_path / "ca", subject="CN=Workers CA,O=Example") as ca:
        yield ca


@pytest.fixture
def server(ca: BuiltinCA) -> Iterator[CAServer]:
    with serve(ca, challenge=PW, workers=2) as srv:
        yield srv


def client(srv: CAServer, index: int) -> ScepTestClient:
    # the workers check signingTime against the real clock, not the CA's fixed one
    return ScepTestClient(srv.scep_url, rsa_key(index), f"w{index}", signing_time=None)


def test_twenty_parallel_enrollments_and_replay_equals_live(ca: BuiltinCA,
                                                            server: CAServer) -> None:
    assert server.pool is not None and len(server.pool.pids()) == 2
    clients = [client(server, 200 + i) for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        reps = list(pool.map(lambda c: c.enroll(PW), clients))
    assert [r.status for r in reps] == [PkiStatus.SUCCESS] * 20
    serials = set()
    for c, rep in zip(clients, reps, strict=True):
        cert = rep.certificate_for(c.key.public_key())
        assert cert is not None
        cert.verify_directly_issued_by(ca.ca_certificate)
        serials.add(format(cert.serial_number, "x"))
        assert ca.state.requests[c.transaction_id].serial == format(cert.serial_number, "x")
    assert len(serials) == 20 and serials <= set(ca.state.certificates)
    assert all(n > 0 for n in server.pool.connections_handed())  # both workers served
    # a re-sent PKCSReq gets the recorded certificate, not a second one
    again = clients[0].enroll(PW)
    assert again.certificate_for(clients[0].key.public_key()) == reps[0].certificate_for(
        clients[0].key.public_key())
    assert len(ca.state.certificates) == 20
    log = FileEventLog.open(ca.root / "log", readonly=True)
    assert replay(log.read()) == ca.state


def test_refusals_polls_and_get_cert_through_the_decider(ca: BuiltinCA,
                                                         server: CAServer) -> None:
    wrong = client(server, 230).enroll("not-the-password")
    assert (wrong.status, wrong.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert wrong.fail_info_text == "wrong challenge password"
    unknown = client(server, 231).poll()
    assert (unknown.status, unknown.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID)
    c = client(server, 232)
    cert = c.enroll(PW).certificate_for(c.key.public_key())
    assert cert is not None
    assert c.poll().certificate_for(c.key.public_key()) == cert
    got = client(server, 233).get_cert(cert.serial_number)
    assert got.status is PkiStatus.SUCCESS and cert in got.certificates
    assert ca.state.requests[c.transaction_id].status is RequestStatus.ISSUED


def test_the_decider_enforces_renewal_rules(ca: BuiltinCA, server: CAServer) -> None:
    c = client(server, 235)
    first = c.enroll(PW).certificate_for(c.key.public_key())
    assert first is not None
    other = client(server, 236)  # another identity (w236), signed by w235's certificate
    rep = other.renew(first, current_key=c.key)
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert rep.fail_info_text is not None and "not a renewal" in rep.fail_info_text
    assert c.renew(first).status is PkiStatus.SUCCESS
    again = ScepTestClient(server.scep_url, rsa_key(237), "w235", signing_time=None).renew(
        first, current_key=c.key)
    assert (again.status, again.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert again.fail_info_text is not None and "renewed before" in again.fail_info_text
    assert len(ca.state.certificates) == 2


def test_workers_serve_the_crl_the_decider_publishes(ca: BuiltinCA, server: CAServer) -> None:
    c = client(server, 234)
    cert = c.enroll(PW).certificate_for(c.key.public_key())
    assert cert is not None
    before = x509.load_der_x509_crl(http_request(server.crl_url)[2])
    assert before.get_revoked_certificate_by_serial_number(cert.serial_number) is None
    ca.revoke(format(cert.serial_number, "x"), "keyCompromise")
    for _ in range(4):  # whichever worker answers, it has re-read DIR/ca.crl
        after = x509.load_der_x509_crl(http_request(server.crl_url)[2])
        assert after.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    rep = c.get_crl(cert.serial_number)
    assert rep.status is PkiStatus.SUCCESS
    assert rep.crls[0].get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_a_killed_worker_is_replaced(ca: BuiltinCA, server: CAServer) -> None:
    assert server.pool is not None
    first, second = server.pool.pids()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: server.pool is not None and first not in server.pool.pids()
             and len(server.pool.pids()) == 2)
    assert server.pool.restarts == 1 and second in server.pool.pids()
    clients = [client(server, 240 + i) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        reps = list(pool.map(lambda c: c.enroll(PW), clients))
    assert all(r.status is PkiStatus.SUCCESS for r in reps)
    assert not alive(first)


def test_manual_approval_with_workers(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca") as ca, serve(ca, approval=Approval.MANUAL, workers=2,
                                               admin=False) as srv:
        c = client(srv, 250)
        assert c.enroll(None).status is PkiStatus.PENDING
        assert c.enroll(None).status is PkiStatus.PENDING  # re-sent: still one request
        ca.approve(c.transaction_id)
        cert = c.poll().certificate_for(c.key.public_key())
        assert cert is not None
        assert [r.transaction_id for r in ca.requests()] == [c.transaction_id]


def test_ra_mode_workers_sign_with_the_ra_key(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ra", ra=True, key="ecdsa:p256") as ca, \
            serve(ca, challenge=PW, workers=2, admin=False) as srv:
        ra = ca.ra_certificates()
        assert ra is not None
        c = client(srv, 251)
        rep = c.enroll(PW)  # enveloped to the RA encryption cert; CertRep by RA signing
        assert rep.status is PkiStatus.SUCCESS and rep.signer_certificate == ra[0]
        cert = rep.certificate_for(c.key.public_key())
        assert cert is not None
        cert.verify_directly_issued_by(ca.ca_certificate)


def test_workers_that_cannot_start_fail_serve_and_leave_nothing(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca") as ca:
        # the decider holds the key in memory; the workers read it from DIR and find none
        (ca.root / "ca.key").rename(ca.root / "elsewhere.key")
        with pytest.raises(CAError, match="worker process failed to start"):
            serve(ca, workers=2)
        assert not (ca.root / "admin.json").exists()
        assert not [p for p in live_children() if "engine.ca.worker" in p]


def live_children() -> list[str]:
    """Command lines of this process's live children. A thread or child that ends while
    they are read is skipped (a thread's children pass to another of its threads)."""
    out = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                pids = f.read().split()
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
        for pid in pids:
            try:
                if alive(int(pid)):
                    with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                        out.append(cmd.read().replace(b"\0", b" ").decode())
            except (FileNotFoundError, ProcessLookupError):  # the child was reaped meanwhile
                continue
    return out


# -- the operator's process: signals and crashes --------------------------------------------------


def worker_pids(output: str) -> list[int]:
    m = re.search(r"workers: ([\d, ]+)", output)
    assert m, output
    return [int(p) for p in m.group(1).split(",")]


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workers-cli") / "ca"
    make_ca(root).close()
    return root


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_decider_and_reap_the_workers(ca_dir: Path,
                                                       sig: signal.Signals) -> None:
    with served(ca_dir, "--workers", "2", "--challenge", PW) as srv:
        pids = worker_pids(srv.banner)
        assert len(pids) == 2 and all(alive(p) for p in pids)
        assert (ca_dir / "admin.json").exists()
        srv.proc.send_signal(sig)
        assert srv.proc.wait(timeout=15) == 0
        assert not any(alive(p) for p in pids)
        assert not (ca_dir / "admin.json").exists()


def test_a_dead_decider_takes_the_workers_down(ca_dir: Path) -> None:
    with served(ca_dir, "--workers", "2", "--challenge", PW) as srv:
        pids = worker_pids(srv.banner)
        c = ScepTestClient(srv.scep_url, rsa_key(260), "d260", signing_time=None)
        assert c.enroll(PW).status is PkiStatus.SUCCESS
        srv.proc.kill()  # no clean shutdown: the log's writer is simply gone
        srv.proc.wait(timeout=10)
        wait_for(lambda: not any(alive(p) for p in pids))
        with pytest.raises(OSError):
            http_request(f"{srv.scep_url}?operation=GetCACaps")
    (ca_dir / "admin.json").unlink(missing_ok=True)  # left behind by the killed server


# -- the workers' HTTP/1.1 adapter on the wire ---------------------------------------------------


class Wire:
    """A raw HTTP connection: send bytes, read responses one at a time."""

    def __init__(self, srv: CAServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed; got {self.buf[:200]!r}"
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            assert self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        return not self.buf and not self._fill()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(server: CAServer) -> Iterator[Wire]:
    w = Wire(server)
    yield w
    w.close()


CAPS = b"GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: ca\r\n\r\n"


def test_pipelined_requests_are_answered_in_order(wire: Wire) -> None:
    wire.send(CAPS + b"GET /scep?operation=GetCACert HTTP/1.1\r\nHost: ca\r\n\r\n" + CAPS)
    first, second, third = wire.response(), wire.response(), wire.response()
    assert (first[0], second[0], third[0]) == (200, 200, 200)
    assert b"SCEPStandard" in first[2] and first[2] == third[2]
    assert second[1]["content-type"] == "application/x-x509-ca-cert"
    assert "connection" not in first[1]  # HTTP/1.1 keeps the connection


def test_http10_closes_and_head_has_no_body(wire: Wire, server: CAServer) -> None:
    wire.send(b"HEAD /scep?operation=GetCACert HTTP/1.1\r\nHost: ca\r\n\r\n")
    status, headers, _ = wire.response(head_only=True)
    assert status == 200 and int(headers["content-length"]) > 500
    wire.send(b"GET /scep?operation=GetCACaps HTTP/1.0\r\n\r\n")
    status, headers, body = wire.response()  # the HEAD sent no body before this answer
    assert (status, headers["connection"]) == (200, "close") and b"AES" in body
    assert wire.closed()


def test_expect_100_continue_and_bare_newlines(wire: Wire) -> None:
    wire.send(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: ca\r\n"
              b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert wire.response()[0] == 100
    wire.send(b"hello")
    assert wire.response()[0] == 400  # not a pkiMessage
    wire.send(b"GET /scep?operation=GetCACaps HTTP/1.1\nHost: ca\n\n")
    assert wire.response()[0] == 200


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"PUT /scep?operation=GetCACaps HTTP/1.1\r\nHost: ca\r\n\r\n", 501),
    (b"POST /scep?operation=PKIOperation HTTP/1.1\r\nContent-Length: x1\r\n\r\n", 400),
    (b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: ca\r\n\r\n", 411),
    (b"GET /scep?operation=GetCACaps HTTP/1.1\r\n\r\n", 400),  # RFC 9112 §3.2: no Host
    (b"GET /scep?operation=GetCACaps&message=" + b"A" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /scep?operation=GetCACaps HTTP/1.1\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
    (b"GET /scep?operation=GetCACaps HTTP/1.1\r\n bad header\r\n\r\n", 400),
])
def test_bad_heads_get_an_error_and_a_close(wire: Wire, request_bytes: bytes,
                                            status: int) -> None:
    wire.send(request_bytes)
    got, headers, _ = wire.response()
    assert (got, headers.get("connection")) == (status, "close")
    assert wire.closed()


def test_answers_wait_for_their_fdatasync_while_the_decider_goes_on(
        ca: BuiltinCA, server: CAServer, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fdatasync
    release = threading.Event()

    def stalled(fd: int) -> None:
        assert release.wait(20)
        real(fd)

    c1, c2 = client(server, 240), client(server, 241)
    c1.enroll(PW)  # the workers are up and the log takes appends
    monkeypatch.setattr(os, "fdatasync", stalled)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client(server, 242).enroll, PW)
        wait_for(lambda: any(r.subject_text.startswith("CN=w242")
                             for r in ca.state.requests.values()))
        second = pool.submit(c2.enroll, PW)  # decided while the first one's sync hangs ...
        wait_for(lambda: c2.transaction_id in ca.state.requests)
        time.sleep(0.3)
        assert not first.done() and not second.done()  # ... but nobody is answered yet
        release.set()
        assert first.result(20).status is PkiStatus.SUCCESS
        assert second.result(20).status is PkiStatus.SUCCESS
