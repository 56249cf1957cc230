"""Hostile SCEP servers beyond test_tp_bad_peers: the answers a careless or malicious CA can
give at the HTTP level (odd GetCACaps bodies, redirects, oversize or trickled bodies, a
connection closed mid-body, a status line that is no HTTP) and the CertReps RFC 8894 allows
but an honest CA seldom sends (an unknown failInfo, SUCCESS with nothing inside, PENDING for
ever). Each must end in one `%` line naming what was wrong, nothing accepted, the shell still
usable: the next command runs."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509

from engine import Engine
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from engine.revocation.fetch import fetch_crl
from engine.scep import (
    FailInfo,
    PkiStatus,
    ScepRequest,
    build_ca_certificates,
    build_cert_rep_failure,
    build_cert_rep_pending,
    certs_only,
    new_nonce,
)
from engine.scep.certrep import _build
from engine.scep_client import MAX_REPLY, HttpxTransport
from events.revocation import CrlFetchFailed
from tests.revocation.revocation_support import record
from tests.support.crl_support import FakeCrlFetcher
from tests.trustpoint.test_tp_bad_peers import PKI, CraftingCA
from tests.trustpoint.tp_support import (
    authenticate,
    declare,
    enroll,
    event_types,
    identity_and_key,
    status,
)

pytestmark = pytest.mark.integration

Writer = Callable[[socket.socket], None]  # writes the whole raw answer (or misbehaves)
RawHandler = Callable[[str, bytes], Writer]  # (SCEP operation, request body) -> writer


def answer(status_line: str, ctype: str, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status_line}", f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}", "Connection: close", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def sends(raw: bytes) -> Writer:
    return lambda sock: sock.sendall(raw)


class RawServer:
    """HTTP on 127.0.0.1:ephemeral written by hand, so a test can send what no HTTP library
    would: a body cut short, one byte a second, no status line at all."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.requests: list[str] = []
        outer = self

        class H(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(65536).decode("latin-1")
                length = 0
                while (header := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = self.rfile.read(length)
                target = line.split(" ")[1] if line.count(" ") >= 2 else "/"
                operation = parse_qs(urlsplit(target).query).get("operation", [""])[0]
                outer.requests.append(operation)
                # OSError: the client gave up first (the point of some cases)
                with contextlib.suppress(OSError):
                    outer.handler(operation, body)(self.connection)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scep"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[RawHandler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: RawHandler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def short_deadline(device: Engine) -> None:
    """A real HTTP client whose exchanges end after 1.5 s (the product's is 60 s). Its
    per-read timeout is the product's 10 s, past the deadline: a trickle's gap stretched by a
    busy machine must not trip a read timeout first and change the message."""
    device.ports.scep = HttpxTransport(timeout=10.0, deadline=1.5)


def refused(e: Engine, line: str, answers: list[str]) -> str:
    """`line` fails with a `%` line as its last line, appending nothing; the shell goes on."""
    head, state = e.store.head, e.state
    r = e.execute(line, answers=answers)
    assert not r.ok, r.output
    assert r.events == []
    assert e.store.head == head and e.state is state
    assert "Traceback" not in r.output
    last = r.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("% "), r.output
    assert e.execute("show clock").ok  # still usable
    return last


def trickle(raw: bytes, every: float = 0.4) -> Writer:
    def write(sock: socket.socket) -> None:
        for i in range(len(raw)):
            sock.sendall(raw[i:i + 1])
            time.sleep(every)
    return write


def closes_after(raw: bytes, keep: int) -> Writer:
    def write(sock: socket.socket) -> None:
        sock.sendall(raw[:keep])
        sock.shutdown(socket.SHUT_RDWR)
    return write


def huge(ctype: str) -> Writer:
    """A body past MAX_REPLY, announced honestly: cut off once the limit is passed."""
    def write(sock: socket.socket) -> None:
        size = MAX_REPLY + 4096
        sock.sendall(answer("200 OK", ctype, b"")[:-len(b"\r\n\r\n")].replace(
            b"Content-Length: 0", f"Content-Length: {size}".encode()) + b"\r\n\r\n")
        chunk = b"\x00" * 65536
        sent = 0
        while sent < size:
            sock.sendall(chunk)
            sent += len(chunk)
    return write


# -- GetCACaps: any body is read, none is an error -----------------------------------------------


CAPS_BODIES = {
    "empty": b"",
    "crlf-lower-case": b"aes\r\npostpkioperation\r\nsha-256\r\n",
    "unknown-keywords": b"Frobnicate\nAES\n\n  \nX-Vendor-Thing=1\nSHA-256\n",
    "nul-and-controls": b"AES\x00\nSHA-256\x1b[2J\n",
    "a-long-line": b"A" * 200_000 + b"\nSHA-256\n",
    "many-lines": b"AES\n" * 100_000,
}


@pytest.mark.parametrize("case", sorted(CAPS_BODIES))
def test_any_getcacaps_body_still_authenticates(device: Engine, crafting: CraftingCA,
                                                raw_server: Callable[[RawHandler], RawServer],
                                                case: str) -> None:
    ctype, cacert = build_ca_certificates(crafting.ca_cert)

    def handler(op: str, body: bytes) -> Writer:
        if op == "GetCACaps":
            return sends(answer("200 OK", "text/plain", CAPS_BODIES[case]))
        return sends(answer("200 OK", ctype, cacert))

    server = raw_server(handler)
    declare(device, url=server.url)
    r = authenticate(device)
    assert event_types(r) == ["CACertificateAccepted"], r.output
    assert "Traceback" not in r.output


def test_a_getcacaps_body_that_is_not_text_is_named_once(
        device: Engine, crafting: CraftingCA,
        raw_server: Callable[[RawHandler], RawServer]) -> None:
    server = raw_server(lambda op, body: sends(answer("200 OK", "text/plain",
                                                      b"AES\n\xff\xfe\x80junk\n")))
    declare(device, url=server.url)
    message = refused(device, "crypto ca authenticate myca", ["yes"])
    assert message == "% GetCACaps: the body is not UTF-8 text"


# -- GetCACert: HTTP-level hostility --------------------------------------------------------------


def _cacert_writers(c: CraftingCA) -> dict[str, tuple[Writer, str]]:
    ctype, body = build_ca_certificates(c.ca_cert)
    good = answer("200 OK", ctype, body)
    two_roots = certs_only([c.ca_cert, c.other_ca])
    return {
        "http-404-with-body": (sends(answer("404 Not Found", "text/html", b"<h1>no</h1>" * 50)),
                               "answered HTTP 404"),
        "redirect-to-another-host": (sends(answer(
            "302 Found", "text/plain", b"", "Location: http://192.0.2.1/scep")),
            "answered HTTP 302"),
        "redirect-to-https": (sends(answer(
            "301 Moved Permanently", "text/plain", b"", "Location: https://127.0.0.1/scep")),
            "answered HTTP 301"),
        "zero-certificates": (sends(answer("200 OK", "application/x-x509-ca-ra-cert",
                                           certs_only([]))),
                              "% GetCACert: cannot tell the CA among 0 CA certificates"),
        "two-cas-no-ra": (sends(answer("200 OK", "application/x-x509-ca-ra-cert",
                                       two_roots)), "cannot tell the CA among 2"),
        "no-content-type": (sends(good.replace(f"Content-Type: {ctype}\r\n".encode(), b"")),
                            "% GetCACert: unexpected Content-Type ''"),
        "not-http": (sends(b"SSH-2.0-OpenSSH_9.6\r\n"), "Unable to reach the CA"),
        "bad-status-line": (sends(b"HTTP/1.1 two hundred OK\r\n\r\n"),
                            "/scep: the answer is not HTTP (illegal status line)"),
        "header-without-colon": (sends(b"HTTP/1.1 200 OK\r\nnonsense\r\n\r\n"),
                                 "/scep: the answer is not HTTP (illegal header line)"),
        "closed-mid-body": (closes_after(good, len(good) - 100), "Unable to reach the CA"),
        "closed-before-answering": (lambda sock: sock.shutdown(socket.SHUT_RDWR),
                                    "Unable to reach the CA"),
        "larger-than-any-answer": (huge(ctype), f"/scep sent a reply larger than {MAX_REPLY} "
                                   "bytes: not a SCEP reply."),
        "trickled": (trickle(good), "deadline"),
    }


CACERT_CASES = ["http-404-with-body", "redirect-to-another-host", "redirect-to-https",
                "zero-certificates", "two-cas-no-ra", "no-content-type", "not-http",
                "bad-status-line", "header-without-colon", "closed-mid-body",
                "closed-before-answering", "larger-than-any-answer", "trickled"]


@pytest.mark.parametrize("case", CACERT_CASES)
def test_authenticate_against_hostile_http(device: Engine, crafting: CraftingCA,
                                           raw_server: Callable[[RawHandler], RawServer],
                                           case: str) -> None:
    writer, words = _cacert_writers(crafting)[case]

    def handler(op: str, body: bytes) -> Writer:
        if op == "GetCACaps":
            return sends(answer("200 OK", "text/plain", crafting.caps))
        return writer

    server = raw_server(handler)
    short_deadline(device)
    declare(device, url=server.url)
    message = refused(device, "crypto ca authenticate myca", ["yes"])
    assert words in message, message
    assert "bytearray" not in message and message.count("GetCACert") <= 1, message
    assert status(device).lifecycle is Lifecycle.DECLARED


# -- PKIOperation: what a CertRep may say, and HTTP-level hostility -------------------------------


def _pki_writers(c: CraftingCA) -> dict[str, tuple[Callable[[bytes], Writer], str]]:
    def certrep(build: Callable[[ScepRequest], bytes]) -> Callable[[bytes], Writer]:
        return lambda body: sends(answer("200 OK", PKI, build(c.open(body))))

    def unknown_fail_info(req: ScepRequest) -> bytes:
        return _build(req.reply_to, PkiStatus.FAILURE, b"", signer=c.cred,
                      sender_nonce=new_nonce(os.urandom), signing_time=None,
                      extra_certificates=(), fail_info=99)  # type: ignore[arg-type]

    def success_without_content(req: ScepRequest) -> bytes:
        return _build(req.reply_to, PkiStatus.SUCCESS, b"", signer=c.cred,
                      sender_nonce=new_nonce(os.urandom), signing_time=None,
                      extra_certificates=())

    def good(body: bytes) -> bytes:
        req = c.open(body)
        return answer("200 OK", PKI, c.success(req, c.certificate(req)))

    def failure_with_hostile_text(req: ScepRequest) -> bytes:
        return build_cert_rep_failure(
            req.reply_to, signer=c.cred, sender_nonce=new_nonce(os.urandom),
            fail_info=FailInfo.BAD_REQUEST,
            fail_info_text="\x1b[2Jrejected\r\n% fake line\x00" + "x" * 5000)

    return {
        "unknown-fail-info": (certrep(unknown_fail_info), "unknown failInfo 99"),
        "success-without-content": (certrep(success_without_content), "SUCCESS without"),
        "failure-with-hostile-text": (certrep(failure_with_hostile_text), "rejected"),
        "redirect": (lambda body: sends(answer("307 Temporary Redirect", "text/plain", b"",
                                               "Location: http://192.0.2.1/x")),
                     "answered HTTP 307"),
        "http-404-with-body": (lambda body: sends(answer("404 Not Found", "text/plain",
                                                         b"x" * 10_000)), "answered HTTP 404"),
        "closed-mid-body": (lambda body: closes_after(good(body), 200), "Unable to reach"),
        "larger-than-any-answer": (lambda body: huge(PKI),
                                   f"/scep sent a reply larger than {MAX_REPLY} bytes"),
        "trickled": (lambda body: trickle(good(body)), "deadline"),
    }


PKI_CASES = ["unknown-fail-info", "success-without-content", "failure-with-hostile-text",
             "redirect", "http-404-with-body", "closed-mid-body", "larger-than-any-answer",
             "trickled"]


def _ca_front(crafting: CraftingCA, pki: Callable[[bytes], Writer]) -> RawHandler:
    """A CA that answers GetCACaps and GetCACert as it should, and PKIOperation with
    `pki(request body)`."""
    ctype, cacert = build_ca_certificates(crafting.ca_cert)

    def handler(op: str, body: bytes) -> Writer:
        if op == "GetCACaps":
            return sends(answer("200 OK", "text/plain", crafting.caps))
        if op == "GetCACert":
            return sends(answer("200 OK", ctype, cacert))
        return pki(body)

    return handler


@pytest.mark.parametrize("case", PKI_CASES)
def test_enroll_against_hostile_certrep(device: Engine, crafting: CraftingCA,
                                        raw_server: Callable[[RawHandler], RawServer],
                                        case: str) -> None:
    pki, words = _pki_writers(crafting)[case]
    server = raw_server(_ca_front(crafting, pki))
    identity_and_key(device)
    declare(device, url=server.url)
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    short_deadline(device)
    r = device.execute("crypto ca enroll myca", answers=["cisco123", "cisco123"])
    assert "Traceback" not in r.output
    last = r.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("%"), r.output
    assert words in r.output, r.output
    assert "\x1b" not in r.output and "\x00" not in r.output, repr(r.output)
    st = status(device)
    assert st.certificates == ()
    assert device.execute("show clock").ok


def test_pending_forever_gives_up_after_the_retry_count(
        device: Engine, crafting: CraftingCA, raw_server: Callable[[RawHandler], RawServer],
        clock: FakeClock) -> None:
    def pending(body: bytes) -> Writer:
        req = crafting.open(body)
        return sends(answer("200 OK", PKI, build_cert_rep_pending(
            req.reply_to, signer=crafting.cred, sender_nonce=new_nonce(os.urandom))))

    server = raw_server(_ca_front(crafting, pending))
    identity_and_key(device)
    declare(device, url=server.url, period=1, count=3)
    authenticate(device)
    assert event_types(enroll(device)) == ["EnrollmentRequested", "EnrollmentPending"]
    outputs = []
    for _ in range(6):
        clock.advance(60)
        outputs += [r.output for r in device.run_due()]
    assert device.run_due() == []
    st = status(device)
    assert st.lifecycle is not Lifecycle.ENROLLING, outputs
    assert st.certificates == ()
    assert len([op for op in server.requests if op == "PKIOperation"]) == 4, server.requests
    assert all("Traceback" not in o for o in outputs)


def test_a_getcrl_failure_text_is_shown_as_text(device: Engine, crafting: CraftingCA,
                                               raw_server: Callable[[RawHandler], RawServer],
                                               clock: FakeClock) -> None:
    """GetCRL answered FAILURE with a failInfoText full of terminal escapes and 5000 bytes
    long: the attempt the log records names it printable and cut at 200 characters, as the
    enrollment's refusal does."""
    mode = ["enroll"]

    def pki(body: bytes) -> Writer:
        req = crafting.open(body)
        if mode[0] == "enroll":
            return sends(answer("200 OK", PKI, crafting.success(req, crafting.certificate(req))))
        return sends(answer("200 OK", PKI, build_cert_rep_failure(
            req.reply_to, signer=crafting.cred, sender_nonce=new_nonce(os.urandom),
            fail_info=FailInfo.BAD_CERT_ID,
            fail_info_text="\x1b]0;owned\x07no CRL\r\n" + "y" * 5000)))

    server = raw_server(_ca_front(crafting, pki))
    identity_and_key(device)
    declare(device, url=server.url)
    authenticate(device)
    assert event_types(enroll(device))[-1] == "CertificateReceived"
    st = status(device)
    assert st.ca_certificate is not None
    mine = x509.load_der_x509_certificate(st.certificates[0].der)
    mode[0] = "getcrl"
    device.ports.crls = FakeCrlFetcher()
    (ev,) = record(device, fetch_crl(device.state, mine,
                                     x509.load_der_x509_certificate(st.ca_certificate), clock.us))
    assert isinstance(ev, CrlFetchFailed), ev
    ((_, why),) = [a for a in ev.attempts if a[0] == "scep:myca"]
    assert why.isprintable() and "no CRL" in why, repr(why[:100])
    assert len(why) < 400, len(why)
