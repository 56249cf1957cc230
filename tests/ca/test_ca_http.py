"""The HTTP adapter under bad input: 4xx or a CertRep FAILURE, never a 500, never a crash."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.adapters.scep_server import message_from_query
from engine.ca.server import CAServer, serve
from engine.scep import Capability, FailInfo, PkiStatus, build_pkcs_req, parse_capabilities
from tests.ca.ca_support import (
    INTEGER_AVA_SUBJECT,
    RawCSR,
    ScepTestClient,
    http_request,
    make_ca,
    raw_csr,
    rsa_key,
)


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "workers"])
def server(tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[CAServer]:
    """The threaded server of one process, and the asyncio one of `ca serve --workers`."""
    with make_ca(tmp_path_factory.mktemp("http") / "ca") as ca, \
            serve(ca, challenge="pw", admin=False, workers=request.param) as srv:
        yield srv


@pytest.mark.integration
def test_caps_list_what_the_issue_requires(server: CAServer) -> None:
    status, ctype, body = http_request(f"{server.scep_url}?operation=GetCACaps")
    assert (status, ctype) == (200, "text/plain")
    caps = parse_capabilities(body)
    for cap in (Capability.POST_PKI_OPERATION, Capability.SHA256, Capability.SHA512,
                Capability.AES, Capability.RENEWAL, Capability.SCEP_STANDARD,
                Capability.SHA384, Capability.DES3):
        assert cap in caps.keywords


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/scep", "/cgi-bin/pkiclient.exe"])
def test_get_ca_cert_on_both_paths(server: CAServer, path: str) -> None:
    status, ctype, body = http_request(f"{server.url}{path}?operation=GetCACert")
    assert (status, ctype) == (200, "application/x-x509-ca-cert")
    assert x509.load_der_x509_certificate(body) == server.ca.ca_certificate


@pytest.mark.integration
def test_body_over_64k_is_413(server: CAServer) -> None:
    status, _, _ = http_request(f"{server.scep_url}?operation=PKIOperation", "POST",
                                b"\x30" * (64 * 1024 + 1))
    assert status == 413
    big = "A" * (100 * 1024)
    assert http_request(f"{server.scep_url}?operation=PKIOperation&message={big}")[0] in (
        413, 414)


@pytest.mark.integration
def test_post_without_content_length_is_411(server: CAServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 411")


@pytest.mark.integration
@pytest.mark.parametrize(("query", "status"), [
    ("operation=PKIOperation&message=%%%not-base64", 400),
    ("operation=PKIOperation&message=", 400),
    ("operation=PKIOperation", 400),
    ("operation=GetNextCACert", 400),
    ("", 400),
])
def test_malformed_queries_are_400(server: CAServer, query: str, status: int) -> None:
    assert http_request(f"{server.scep_url}?{query}")[0] == status


@pytest.mark.integration
def test_unknown_path_is_404(server: CAServer) -> None:
    assert http_request(f"{server.url}/admin/approve", "POST", b"{}")[0] == 404
    assert http_request(f"{server.url}/")[0] == 404


@pytest.mark.integration
def test_garbage_der_is_400(server: CAServer) -> None:
    for body in (b"\x00", b"\x30\x03\x02\x01", b"hello world", os.urandom(300)):
        status, _, _ = http_request(f"{server.scep_url}?operation=PKIOperation", "POST", body)
        assert status == 400


@pytest.mark.integration
def test_mutated_messages_never_get_a_500(server: CAServer) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(30), "fuzz", signing_time=None)
    p = client.params()
    good = build_pkcs_req(p, client.csr("pw"), random_bytes=os.urandom)
    rng = random.Random(8894)
    statuses = set()
    for _ in range(60):
        der = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            der[rng.randrange(len(der))] = rng.randrange(256)
        if rng.random() < 0.2:
            der = der[: rng.randrange(len(der))]
        status, ctype, _ = http_request(f"{server.scep_url}?operation=PKIOperation", "POST",
                                        bytes(der))
        assert status in (200, 400), status
        if status == 200:
            assert ctype == "application/x-pki-message"
        statuses.add(status)
    assert http_request(f"{server.scep_url}?operation=GetCACaps")[0] == 200  # still serving
    assert client.enroll("pw").status is PkiStatus.SUCCESS


def test_message_param_decoding_tolerates_client_quirks() -> None:
    der = bytes(range(256))
    import base64
    std = base64.b64encode(der).decode()
    assert message_from_query(std) == der  # raw '+' and '/'
    assert message_from_query(std.replace("+", "%2B").replace("/", "%2F")) == der
    assert message_from_query(base64.urlsafe_b64encode(der).decode().rstrip("=")) == der


@pytest.mark.integration
def test_crl_endpoint(server: CAServer) -> None:
    status, ctype, body = http_request(server.crl_url)
    assert (status, ctype) == (200, "application/pkix-crl")
    crl = x509.load_der_x509_crl(body)
    assert crl.issuer == server.ca.ca_certificate.subject


@pytest.mark.integration
def test_admin_endpoint_needs_the_token(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca") as ca, serve(ca) as srv:
        assert srv.admin_url is not None and (ca.root / "admin.json").exists()
        assert (ca.root / "admin.json").stat().st_mode & 0o077 == 0
        status, _, _ = http_request(f"{srv.admin_url}/admin/challenge", "POST", b"{}",
                                       {"Authorization": "Bearer wrong"})
        assert status == 403
        assert len(ca.state.challenges) == 0
    assert not (ca.root / "admin.json").exists()


def test_key_file_is_private_and_never_in_the_log(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca") as ca:
        key_path = ca.root / "ca.key"
        assert key_path.stat().st_mode & 0o777 == 0o600
        pem = key_path.read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
        key = serialization.load_pem_private_key(pem, None)
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        log_bytes = b"".join(p.read_bytes() for p in (ca.root / "log").iterdir())
        assert der[-64:] not in log_bytes and pem[40:100] not in log_bytes




@pytest.mark.integration
def test_certificate_with_invalid_version_is_400(server: CAServer) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(31), "badversion", signing_time=None)
    der = build_pkcs_req(client.params(), client.csr("pw"), random_bytes=os.urandom)
    version_v3 = b"\xa0\x03\x02\x01\x02"
    assert version_v3 in der
    bad = der.replace(version_v3, b"\xa0\x03\x02\x01\x3d", 1)
    status, _, _ = http_request(f"{server.scep_url}?operation=PKIOperation", "POST", bad)
    assert status == 400


# -- found in review: request heads and subjects that used to get a 500 or a dropped connection


def raw_exchange(server: CAServer, request: bytes) -> bytes:
    """Send `request` on a fresh connection; everything the server answers until it closes."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    return answer


@pytest.mark.integration
@pytest.mark.parametrize("target", [b"http://[::1/scep?operation=GetCACaps",
                                    b"//[/scep?operation=GetCACaps"])
def test_a_target_urlsplit_cannot_read_is_a_4xx(server: CAServer, target: bytes) -> None:
    answer = raw_exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                                     b"Connection: close\r\n\r\n")
    # http.server turns a leading '//' into '/' (then: no such path, 404); ours reads it as is
    assert answer.split(b"\r\n")[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 404 Not Found")
    if target.startswith(b"http:"):
        assert answer.startswith(b"HTTP/1.1 400")


@pytest.mark.integration
@pytest.mark.parametrize("lengths", [["\u00b2"], ["1_0"], ["+4"], ["4", "4"], ["4", "400"],
                                     ["400", "4"]],
                         ids=["superscript", "underscore", "plus", "repeated", "conflicting",
                              "conflicting-reversed"])
def test_content_length_is_one_ascii_number(server: CAServer, lengths: list[str]) -> None:
    head = "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"Content-Length: {n}\r\n" for n in lengths) + "\r\n"
    answer = raw_exchange(server, head.encode("latin-1") + b"0\x03\x02\x01" + b"\x00" * 6)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b"Content-Length\n" in answer  # refused for its framing, not for a bad body
    assert answer.count(b"HTTP/1.1 ") == 1  # answered once, then closed: no smuggled request
    assert http_request(f"{server.scep_url}?operation=GetCACaps")[0] == 200


@pytest.mark.integration
def test_a_subject_that_cannot_be_read_is_bad_request(server: CAServer) -> None:
    """A subject attribute with an INTEGER value: cryptography raises KeyError when asked for
    the subject. The answer is a CertRep FAILURE (badRequest), not a 500."""
    client = ScepTestClient(server.scep_url, rsa_key(32), "intava", signing_time=None)
    der = raw_csr(client.key, INTEGER_AVA_SUBJECT, "pw")
    p = client.params()
    rep = client.send(build_pkcs_req(p, RawCSR(der), random_bytes=os.urandom),  # type: ignore[arg-type]
                      p)
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)


# -- deadlines ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_a_request_trickled_past_the_deadline_is_cut_off(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A request must arrive whole within REQUEST_TIMEOUT of its first byte: a peer sending a
    byte now and then (each well inside the timeout) no longer holds the connection forever.
    The bound under test: closed at the 1 s deadline, long before the >= 12 s the request
    takes to trickle in; 8 s leaves a busy machine its slack."""
    from engine.adapters import scep_server

    monkeypatch.setattr(scep_server, "REQUEST_TIMEOUT", 1.0)
    request = b"GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    with make_ca(tmp_path / "ca") as ca, serve(ca, admin=False) as srv, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                s.sendall(bytes([byte]))
            except OSError:  # reset: the server closed on us
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > 8:
                break
        if not closed:
            s.settimeout(5)
            try:
                closed = s.recv(4096) == b""
            except TimeoutError:  # still open: the deadline did not hold
                closed = False
            except OSError:  # reset: closed
                closed = True
        assert closed and time.monotonic() - started < 8


# -- the one-process server (`start`) --------------------------------------------------------------


class _Recording:
    """A SCEP application that counts its blocking calls (CRL downloads); `gate` holds the
    first one."""

    def __init__(self) -> None:
        import threading

        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def get_ca_caps(self) -> bytes:
        return b"POSTPKIOperation\n"

    def get_ca_cert(self) -> tuple[str, bytes]:
        raise AssertionError("not asked")

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        raise AssertionError("not asked")

    def pki_operation(self, message: bytes, peer: str) -> bytes:
        raise AssertionError("not asked")

    def crl(self) -> bytes:
        self.calls += 1
        if self.calls == 1:
            assert self.gate.wait(10)
        return b"CRL"


_CAPS = b"GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n\r\n"
_CRL = b"GET /crl/ca.crl HTTP/1.1\r\nHost: x\r\n\r\n"


def _answer(s: socket.socket, body: bytes) -> bytes:
    """One whole answer whose body is `body`."""
    data = b""
    while not data.endswith(body):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _wait_for_a_call(app: _Recording) -> None:
    deadline = time.monotonic() + 5
    while not app.calls and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.integration
def test_a_slow_call_does_not_hold_up_another_connection() -> None:
    """The application's blocking calls run beside the connections and beside each other:
    while one connection's call is held in the application, another connection's call is
    made and answered."""
    from engine.adapters import scep_server

    app = _Recording()
    running = scep_server.start(app)
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as slow, \
                socket.create_connection(("127.0.0.1", running.port), timeout=10) as quick:
            app.gate.clear()
            slow.sendall(_CRL)
            _wait_for_a_call(app)
            quick.sendall(_CRL)
            assert _answer(quick, b"CRL").startswith(b"HTTP/1.1 200")  # while `slow` is held
            app.gate.set()
            assert _answer(slow, b"CRL").startswith(b"HTTP/1.1 200")
        assert app.calls == 2
    finally:
        app.gate.set()
        running.stop()


@pytest.mark.integration
def test_stop_closes_open_connections_and_the_listener() -> None:
    from engine.adapters import scep_server

    running = scep_server.start(_Recording())
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as idle:
        idle.sendall(_CAPS)
        assert _answer(idle, b"POSTPKIOperation\n").startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        running.stop()
        assert time.monotonic() - started < 3
        assert idle.recv(4096) == b""  # closed by the server, not left to the idle timeout
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", running.port), timeout=2).close()


@pytest.mark.integration
def test_stop_waits_for_a_call_in_progress() -> None:
    """`stop` returns once the application calls in progress have (within 5 s): `ca serve`
    closes the CA next, and must not close it under an enrollment being recorded."""
    import threading

    from engine.adapters import scep_server

    app = _Recording()
    app.gate.clear()
    running = scep_server.start(app)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as s:
        s.sendall(_CRL)
        _wait_for_a_call(app)
        stopping = threading.Thread(target=running.stop)
        stopping.start()
        stopping.join(0.3)
        assert stopping.is_alive()  # the call holds it
        app.gate.set()
        stopping.join(5)
        assert not stopping.is_alive()
