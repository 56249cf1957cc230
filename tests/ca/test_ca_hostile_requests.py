"""`ca serve` against hostile clients, beyond test_ca_http: HTTP heads h11 refuses, signed
pkiMessages of a type no client sends, hundreds of idle or half-sent connections, a client
that never sends the body it announced. Each is answered 4xx (or a CertRep FAILURE), the CA's
log gets nothing for it, and the server goes on serving a well-behaved client meanwhile."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.ca.server import CAServer, serve
from engine.scep import (
    FailInfo,
    PkiStatus,
    ReplyTo,
    RequestParameters,
    build_cert_rep_pending,
    build_pkcs_req,
    new_nonce,
    parse_cert_rep,
)
from engine.scep import attributes as A
from engine.scep.cms import sign
from tests.ca.ca_support import ScepTestClient, http_request, make_ca, rsa_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "workers"])
def server(tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[CAServer]:
    with make_ca(tmp_path_factory.mktemp("hostile") / "ca") as ca, \
            serve(ca, challenge="pw", admin=False, workers=request.param) as srv:
        yield srv


def head_of(server: CAServer) -> tuple[int, bytes]:
    return server.ca._log.head  # the log the server appends to


def raw(server: CAServer, data: bytes) -> bytes:
    """Send `data` on a fresh connection; what comes back until the server closes it or
    (a connection kept alive) says nothing more for a second."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):  # the answer ends here
            while chunk := s.recv(65536):
                answer += chunk
                s.settimeout(1)
        return answer


def still_serving(server: CAServer) -> None:
    status, ctype, _ = http_request(f"{server.scep_url}?operation=GetCACaps")
    assert (status, ctype) == (200, "text/plain")


HEADS = {
    "not-http": b"GARBAGE\r\n\r\n",
    "binary": bytes(range(256)) + b"\r\n\r\n",
    "http-9": b"GET /scep?operation=GetCACaps HTTP/9.9\r\nHost: x\r\n\r\n",
    "no-host": b"GET /scep?operation=GetCACaps HTTP/1.1\r\n\r\n",
    "header-without-colon": (b"GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n"
                             b"nonsense\r\n\r\n"),
    "nul-in-target": b"GET /sc\x00ep?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n\r\n",
    "latin1-in-target": b"GET /scep?operation=GetCA\xffCaps HTTP/1.1\r\nHost: x\r\n\r\n",
    "space-before-colon": b"GET /scep?operation=GetCACaps HTTP/1.1\r\nHost : x\r\n\r\n",
    "two-content-lengths": (b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
    "negative-content-length": (b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: -1\r\n\r\n"),
    "huge-content-length": (b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 99999999999999999999999\r\n\r\n"),
    "unknown-method": b"BREW /scep?operation=GetCACaps HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute-form-other-host": (b"GET http://192.0.2.1/scep?operation=GetCACaps HTTP/1.1\r\n"
                                 b"Host: x\r\n\r\n"),
    "percent-garbage-operation": b"GET /scep?operation=%ff%fe%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "message-not-base64": (b"GET /scep?operation=PKIOperation&message=!!!! HTTP/1.1\r\n"
                           b"Host: x\r\n\r\n"),
    "message-missing": b"GET /scep?operation=PKIOperation&foo=bar HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(HEADS))
def test_heads_h11_or_we_refuse_are_4xx_and_append_nothing(server: CAServer,
                                                            case: str) -> None:
    before = head_of(server)
    answer = raw(server, HEADS[case])
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
    # absolute-form to another host is a valid target (RFC 9112 §3.2.2): the path decides;
    # HTTP/9.9 is served as 1.1 (RFC 9110 §2.5 says a 505 "ought to" answer it, no MUST)
    assert status[:1] == b"4" or (status == b"501" and case == "unknown-method") or (
        status == b"200" and case in ("absolute-form-other-host", "http-9")), answer[:200]
    assert head_of(server) == before
    still_serving(server)


def _signed(p: RequestParameters, message_type: int) -> bytes:
    """A pkiMessage signed by the client, well formed, of `message_type`, without content."""
    attrs = [A.printable(A.OID_MESSAGE_TYPE, str(message_type)),
             A.transaction_id_attribute(p.transaction_id),
             A.octets(A.OID_SENDER_NONCE, p.sender_nonce)]
    return sign(b"", signer=p.signer, digest=p.digest, attributes=attrs,
                certificates=[p.signer.certificate])


@pytest.mark.parametrize("message_type", [0, 3, 5, 18, 99, 2**31])
def test_a_message_type_no_client_sends_is_refused(server: CAServer, message_type: int) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(41), "odd-type", signing_time=None)
    p = client.params()
    before = head_of(server)
    status, ctype, body = http_request(f"{server.scep_url}?operation=PKIOperation", "POST",
                                       _signed(p, message_type))
    if status == 200:  # a CertRep FAILURE answering the transaction
        assert ctype == "application/x-pki-message"
        rep = parse_cert_rep(body, signers=[client.cas.signer],
                             transaction_id=client.transaction_id,
                             sender_nonce=p.sender_nonce, recipient=p.signer)
        assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    else:
        assert status == 400, status
    assert head_of(server) == before
    still_serving(server)


def test_a_certrep_sent_to_the_ca_is_refused(server: CAServer) -> None:
    """The CA's own kind of message, signed by a client, posted back at it."""
    client = ScepTestClient(server.scep_url, rsa_key(42), "mirror", signing_time=None)
    p = client.params()
    reply_to = ReplyTo(transaction_id=client.transaction_id,
                       recipient_nonce=new_nonce(os.urandom), digest=p.digest)
    der = build_cert_rep_pending(reply_to, signer=p.signer, sender_nonce=new_nonce(os.urandom))
    before = head_of(server)
    status, _, _ = http_request(f"{server.scep_url}?operation=PKIOperation", "POST", der)
    assert status in (200, 400)
    assert head_of(server) == before
    still_serving(server)


def test_idle_and_half_sent_connections_do_not_stop_a_real_client(server: CAServer) -> None:
    """300 connections that send nothing and 50 that stop mid-head or mid-body are held
    open while a client enrolls."""
    held: list[socket.socket] = []
    try:
        for i in range(350):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            held.append(s)
            if i >= 300 and i % 2:
                s.sendall(b"GET /scep?operation=GetCA")
            elif i >= 300:
                s.sendall(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 5000\r\n\r\n0\x82")
        started = time.monotonic()
        before = head_of(server)
        still_serving(server)
        client = ScepTestClient(server.scep_url, rsa_key(43), "patient", signing_time=None)
        rep = client.enroll("pw")
        assert rep.status is PkiStatus.SUCCESS, (rep.fail_info, rep.fail_info_text)
        assert time.monotonic() - started < 20
        assert head_of(server) != before  # (what the tests above watch does move)
    finally:
        for s in held:
            s.close()


def test_a_body_never_sent_is_cut_off_at_the_request_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.adapters import scep_server

    monkeypatch.setattr(scep_server, "REQUEST_TIMEOUT", 1.0)
    with make_ca(tmp_path / "ca") as ca, serve(ca, challenge="pw", admin=False) as srv:
        before = srv.ca._log.head
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 1000\r\n\r\n0\x82\x03")
            started = time.monotonic()
            s.settimeout(8)
            answer = b""
            with contextlib.suppress(ConnectionResetError):  # a reset ends it as well as a close
                while chunk := s.recv(4096):
                    answer += chunk
            assert time.monotonic() - started < 6  # closed at the deadline, not held
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]
        assert srv.ca._log.head == before
        client = ScepTestClient(srv.scep_url, rsa_key(44), "after", signing_time=None)
        rep = client.enroll("pw")
        assert rep.status is PkiStatus.SUCCESS, (rep.fail_info, rep.fail_info_text)


def test_a_pkcsreq_signed_after_the_body_was_mangled_appends_nothing(server: CAServer) -> None:
    """Garbage that parses as a signed message up to its signature: a 400, nothing logged."""
    client = ScepTestClient(server.scep_url, rsa_key(45), "mangled", signing_time=None)
    p = client.params()
    good = bytearray(build_pkcs_req(p, client.csr("pw"), random_bytes=os.urandom))
    good[-10] ^= 0xFF  # inside the signature value
    before = head_of(server)
    status, _, _ = http_request(f"{server.scep_url}?operation=PKIOperation", "POST", bytes(good))
    assert status in (200, 400)
    assert head_of(server) == before
