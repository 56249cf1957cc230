"""Bad peers (issue 6 item 7): a scripted SCEP server on 127.0.0.1 that answers like a CA but
gets one thing wrong per case. Its replies are crafted with the real SCEP core and a real
built-in CA key (engine.scep build functions), then tampered with. Each case must give a clear
`%` error and accept nothing: no event appended, the trustpoint's state unchanged."""

from __future__ import annotations

import base64
import dataclasses
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from engine import Engine
from engine.ca.scep_frontend import CAPABILITIES
from engine.ca.service import BuiltinCA
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from engine.scep import (
    ContentCipher,
    Credential,
    DigestAlgorithm,
    ScepRequest,
    build_ca_certificates,
    build_cert_rep_pending,
    build_cert_rep_success,
    certs_only,
    new_nonce,
    parse_request,
)
from tests.trustpoint.tp_support import (
    authenticate,
    declare,
    der,
    enroll,
    event_types,
    identity_and_key,
    issue,
    rsa_key,
    self_signed_ca,
    status,
)

pytestmark = pytest.mark.integration

Reply = tuple[int, str, bytes]  # HTTP status, Content-Type, body
Handler = Callable[[str, bytes], Reply]  # (operation, request body) -> reply
PKI = "application/x-pki-message"


class ScriptedServer:
    """HTTP on 127.0.0.1:ephemeral; `handler` decides every answer."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str]] = []  # (HTTP method, SCEP operation)
        outer = self

        class H(BaseHTTPRequestHandler):
            def _answer(self, body: bytes) -> None:
                operation = parse_qs(urlsplit(self.path).query).get("operation", [""])[0]
                outer.requests.append((self.command, operation))
                status, ctype, out = outer.handler(operation, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                message = query.get("message", [""])[0]
                operation = query.get("operation", [""])[0]
                self._answer(base64.b64decode(message) if operation == "PKIOperation" else b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/scep"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class CraftingCA:
    """A real CA key and certificate, and a SCEP 'frontend' whose replies tests can spoil."""

    def __init__(self, ca: BuiltinCA, clock: FakeClock) -> None:
        cert, key = ca.signer()
        self.cred = Credential(cert, key)
        self.ca_cert = cert
        self.clock = clock
        other_key = rsa_key(200)
        self.other_ca = self_signed_ca(other_key, "Another CA", clock.us)
        self.other = Credential(self.other_ca, other_key)
        self.seen: list[ScepRequest] = []
        self.caps = CAPABILITIES.render()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.us / 1e6, UTC)

    def open(self, body: bytes) -> ScepRequest:
        req = parse_request(body, recipients=[self.cred])
        self.seen.append(req)
        return req

    def certificate(self, req: ScepRequest, *, public_key: object = None,
                    signer: Credential | None = None, days: tuple[int, int] = (-1, 365),
                    ca: bool = False) -> x509.Certificate:
        # A CertPoll carries no CSR: it asks about the PKCSReq we saw first.
        csr = req.csr if req.csr is not None else self.seen[0].csr
        assert csr is not None
        who = signer or self.cred
        key = public_key if public_key is not None else csr.csr.public_key()
        return issue(who.private_key, who.certificate, key,  # type: ignore[arg-type]
                     csr.subject, self.now() + timedelta(days=days[0]),
                     self.now() + timedelta(days=days[1]), ca=ca)

    def success(self, req: ScepRequest, cert: x509.Certificate, *,
                signer: Credential | None = None, **reply_changes: object) -> bytes:
        reply_to = dataclasses.replace(req.reply_to, **reply_changes)  # type: ignore[arg-type]
        return build_cert_rep_success(reply_to, signer=signer or self.cred,
                                      sender_nonce=new_nonce(os.urandom),
                                      random_bytes=os.urandom, certificates=[cert])

    def get(self, operation: str) -> Reply:
        if operation == "GetCACaps":
            return 200, "text/plain", self.caps
        ctype, body = build_ca_certificates(self.ca_cert)
        return 200, ctype, body


@pytest.fixture
def scripted() -> Iterator[Callable[[Handler], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(handler: Handler) -> ScriptedServer:
        servers.append(ScriptedServer(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/scep"  # bound once, closed now: nothing listens


def refused_cleanly(e: Engine, r_line: str, answers: list[str]) -> str:
    head, state = e.store.head, e.state
    r = e.execute(r_line, answers=answers)
    assert not r.ok, r.output
    assert r.events == []
    assert e.store.head == head and e.state is state
    last = r.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("% "), r.output
    return last


# -- authentication: GetCACert gone wrong ----------------------------------------------------------


def _ca_cases(c: CraftingCA) -> dict[str, tuple[Handler, str]]:
    ctype, body = build_ca_certificates(c.ca_cert)
    chain = certs_only([c.ca_cert, c.other_ca])
    end_entity = issue(c.cred.private_key, c.ca_cert, rsa_key(1).public_key(),  # type: ignore[arg-type]
                       x509.Name.from_rfc4514_string("CN=not a CA"), c.now() - timedelta(1),
                       c.now() + timedelta(30))
    expired = self_signed_ca(rsa_key(201), "Old CA", c.clock.us - 4000 * 86_400_000_000, 30)

    def answer(reply: Reply) -> Handler:
        return lambda op, _: (200, "text/plain", CAPABILITIES.render()) \
            if op == "GetCACaps" else reply

    return {
        "http-500": (answer((500, "text/plain", b"internal error")), "answered HTTP 500"),
        "wrong-content-type": (answer((200, "text/html", body)), "Content-Type"),
        "garbage": (answer((200, ctype, b"\x30\x82garbage, not DER")), "GetCACert"),
        "truncated-pkcs7": (answer((200, "application/x-x509-ca-ra-cert",
                                    chain[: len(chain) // 2])), "GetCACert"),
        "not-a-ca": (answer((200, ctype, der(end_entity))), "not a CA certificate"),
        "expired-ca": (answer((200, ctype, der(expired))), "has expired"),
    }


CA_CASES = ["http-500", "wrong-content-type", "garbage", "truncated-pkcs7", "not-a-ca",
            "expired-ca"]


@pytest.mark.parametrize("case", CA_CASES)
def test_authenticate_against_bad_peer(device: Engine, crafting: CraftingCA,
                                       scripted: Callable[[Handler], ScriptedServer],
                                       case: str) -> None:
    handler, words = _ca_cases(crafting)[case]
    server = scripted(handler)
    declare(device, url=server.url)
    message = refused_cleanly(device, "crypto ca authenticate myca", ["yes"])
    assert words in message, message
    assert status(device).lifecycle is Lifecycle.DECLARED
    assert status(device).ca_certificate is None


def test_authenticate_ca_unreachable(device: Engine) -> None:
    url = closed_port_url()
    declare(device, url=url)
    message = refused_cleanly(device, "crypto ca authenticate myca", ["yes"])
    assert message.startswith("% Unable to reach the CA at http://127.0.0.1:"), message
    assert message.endswith(": Connection refused"), message  # no "[Errno 111]"


# -- enrollment: PKIOperation gone wrong ------------------------------------------------


def _enroll_cases(c: CraftingCA) -> dict[str, tuple[Callable[[bytes], Reply], str]]:
    def good(body: bytes) -> bytes:
        req = c.open(body)
        return c.success(req, c.certificate(req))

    def same_name_other_key(body: bytes) -> Reply:
        # A signer that claims the CA's issuer and serial but holds another key.
        impostor_key = rsa_key(202)
        impostor = (x509.CertificateBuilder().subject_name(c.ca_cert.subject)
                    .issuer_name(c.ca_cert.issuer).public_key(impostor_key.public_key())
                    .serial_number(c.ca_cert.serial_number)
                    .not_valid_before(c.ca_cert.not_valid_before_utc)
                    .not_valid_after(c.ca_cert.not_valid_after_utc)
                    .sign(impostor_key, hashes.SHA256()))
        req = c.open(body)
        return 200, PKI, c.success(req, c.certificate(req),
                                   signer=Credential(impostor, impostor_key))

    def with_req(build: Callable[[ScepRequest], bytes]) -> Callable[[bytes], Reply]:
        return lambda body: (200, PKI, build(c.open(body)))

    return {
        "http-500": (lambda body: (500, "text/plain", b"oops"), "answered HTTP 500"),
        "wrong-content-type": (lambda body: (200, "text/html", good(body)),
                               "answered text/html, not application/x-pki-message"),
        "garbage": (lambda body: (200, PKI, b"<html>not a pkiMessage</html>"),
                    "CertRep refused"),
        "truncated-pkcs7": (lambda body: (200, PKI, good(body)[:-300]), "CertRep refused"),
        "signed-by-another-certificate": (
            with_req(lambda req: c.success(req, c.certificate(req), signer=c.other)),
            "not signed by the CA/RA certificate we trust"),
        "signed-by-impostor-with-ca-name": (same_name_other_key, "CertRep refused"),
        "transaction-id-mismatch": (
            with_req(lambda req: c.success(req, c.certificate(req), transaction_id="4242")),
            "transactionID"),
        "recipient-nonce-mismatch": (
            with_req(lambda req: c.success(req, c.certificate(req),
                                           recipient_nonce=new_nonce(os.urandom))),
            "recipientNonce does not match"),
        "certificate-for-another-key": (
            with_req(lambda req: c.success(req, c.certificate(
                req, public_key=rsa_key(203).public_key()))),
            "without a certificate for our key"),
        "our-key-but-another-ca": (
            with_req(lambda req: c.success(req, c.certificate(req, signer=c.other))),
            "not issued by the trustpoint's CA"),
        "expired-certificate": (
            with_req(lambda req: c.success(req, c.certificate(req, days=(-400, -35)))),
            "has expired"),
        "a-ca-certificate-for-our-key": (
            with_req(lambda req: c.success(req, c.certificate(req, ca=True))),
            "is a CA certificate (basicConstraints cA is TRUE), not the end-entity "
            "certificate requested"),
    }


ENROLL_CASES = ["http-500", "wrong-content-type", "garbage", "truncated-pkcs7",
                "signed-by-another-certificate", "signed-by-impostor-with-ca-name",
                "transaction-id-mismatch", "recipient-nonce-mismatch",
                "certificate-for-another-key", "our-key-but-another-ca", "expired-certificate",
                "a-ca-certificate-for-our-key"]


def _authenticated(device: Engine, crafting: CraftingCA,
                   scripted: Callable[[Handler], ScriptedServer],
                   pki: Callable[[bytes], Reply]) -> ScriptedServer:
    server = scripted(lambda op, body: pki(body) if op == "PKIOperation" else crafting.get(op))
    identity_and_key(device)
    declare(device, url=server.url, period=1, count=5)
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    return server


def test_the_crafting_ca_itself_is_accepted(device: Engine, crafting: CraftingCA,
                                            scripted: Callable[[Handler], ScriptedServer]
                                            ) -> None:
    """The control case: untampered replies from the scripted CA enroll. (So each refusal
    below is due to its one tampering, not to the harness.)"""
    def good(body: bytes) -> Reply:
        req = crafting.open(body)
        return 200, PKI, crafting.success(req, crafting.certificate(req))

    _authenticated(device, crafting, scripted, good)
    r = enroll(device)
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    assert crafting.seen[0].csr is not None
    assert crafting.seen[0].csr.challenge_password == "cisco123"


@pytest.mark.parametrize("case", ENROLL_CASES)
def test_enroll_against_bad_peer(device: Engine, crafting: CraftingCA,
                                 scripted: Callable[[Handler], ScriptedServer], case: str) -> None:
    pki, words = _enroll_cases(crafting)[case]
    _authenticated(device, crafting, scripted, pki)
    message = refused_cleanly(device, "crypto ca enroll myca", ["cisco123", "cisco123"])
    assert words in message, message
    st = status(device)
    assert st.lifecycle is Lifecycle.AUTHENTICATED
    assert st.certificates == () and st.enrollment is None


def test_enroll_ca_gone(device: Engine, crafting: CraftingCA,
                        scripted: Callable[[Handler], ScriptedServer]) -> None:
    server = _authenticated(device, crafting, scripted, lambda body: (500, "text/plain", b""))
    server.stop()
    device.ports.scep = None  # a fresh HTTP client: no connection kept alive to the old server
    message = refused_cleanly(device, "crypto ca enroll myca", ["cisco123", "cisco123"])
    assert message.startswith("% Unable to reach the CA at "), message
    assert status(device).lifecycle is Lifecycle.AUTHENTICATED


@pytest.mark.parametrize("case", ENROLL_CASES)
def test_bad_poll_reply_accepts_nothing(device: Engine, crafting: CraftingCA,
                                        scripted: Callable[[Handler], ScriptedServer],
                                        clock: FakeClock, case: str) -> None:
    """PENDING first; then a poll answered badly counts as a failed attempt and installs
    nothing; polling goes on, and a good answer afterwards is accepted."""
    tampered, words = _enroll_cases(crafting)[case]
    mode = ["pending"]

    def pki(body: bytes) -> Reply:
        if mode[0] == "pending":
            req = crafting.open(body)
            return 200, PKI, build_cert_rep_pending(req.reply_to, signer=crafting.cred,
                                                    sender_nonce=new_nonce(os.urandom))
        if mode[0] == "tampered":
            return tampered(body)
        req = crafting.open(body)
        assert req.issuer_and_subject is not None  # a CertPoll
        return 200, PKI, crafting.success(req, crafting.certificate(req))

    _authenticated(device, crafting, scripted, pki)
    assert event_types(enroll(device)) == ["EnrollmentRequested", "EnrollmentPending"]
    mode[0] = "tampered"
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["EnrollmentPending"], res.output
    assert device.run_due() == []  # the failed attempt counted: not due again until a period
    assert res.output.startswith("%PKI-4-POLL_FAILED: trustpoint myca: "), res.output
    assert words in res.output, res.output
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLING and st.certificates == ()
    assert st.enrollment is not None and st.enrollment.polls == 1

    mode[0] = "good"
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["CertificateReceived"], res.output
    assert status(device).lifecycle is Lifecycle.ENROLLED


# -- the algorithms the CA advertises --------------------------------------------------------------


@pytest.mark.parametrize(("caps", "cipher", "digest"), [
    (b"AES\nSHA-256\nPOSTPKIOperation\n", ContentCipher.AES_128_CBC, DigestAlgorithm.SHA256),
    (b"DES3\nSHA-1\nPOSTPKIOperation\n", ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA1),
    (b"SCEPStandard\n", ContentCipher.AES_128_CBC, DigestAlgorithm.SHA256),
    (b"", ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA1),
], ids=["aes-sha256", "des3-sha1", "scep-standard", "nothing"])
def test_strongest_advertised_algorithms(device: Engine, crafting: CraftingCA,
                                         scripted: Callable[[Handler], ScriptedServer],
                                         caps: bytes, cipher: ContentCipher,
                                         digest: DigestAlgorithm) -> None:
    """AES/SHA-256 when offered; DES3/SHA-1 only when the CA advertises nothing better. Without
    POSTPKIOperation the request goes by GET."""
    crafting.caps = caps

    def handler(op: str, body: bytes) -> Reply:
        if op != "PKIOperation":
            return crafting.get(op)
        req = crafting.open(body)
        return 200, PKI, crafting.success(req, crafting.certificate(req))

    server = scripted(handler)
    identity_and_key(device)
    declare(device, url=server.url)
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    r = enroll(device)
    assert event_types(r)[-1] == "CertificateReceived", r.output
    (req,) = crafting.seen
    assert (req.cipher, req.digest) == (cipher, digest)
    post = b"POSTPKIOperation" in caps or b"SCEPStandard" in caps
    assert server.requests[-1] == ("POST" if post else "GET", "PKIOperation")


@pytest.mark.parametrize(("configured", "digest", "csr_hash"), [
    ("sha384", DigestAlgorithm.SHA384, "sha384"),
    ("sha256", DigestAlgorithm.SHA256, "sha256"),
    ("sha1", DigestAlgorithm.SHA1, "sha256"),  # SHA-1 cannot sign the PKCS#10 itself
])
def test_message_digest_is_used(device: Engine, crafting: CraftingCA,
                                scripted: Callable[[Handler], ScriptedServer],
                                configured: str, digest: DigestAlgorithm, csr_hash: str) -> None:
    def pki(body: bytes) -> Reply:
        req = crafting.open(body)
        return 200, PKI, crafting.success(req, crafting.certificate(req))

    server = scripted(lambda op, body: pki(body) if op == "PKIOperation" else crafting.get(op))
    identity_and_key(device)
    declare(device, url=server.url, extra=(f"message-digest {configured}",))
    authenticate(device)
    assert event_types(enroll(device))[-1] == "CertificateReceived"
    (req,) = crafting.seen
    assert req.digest is digest
    assert req.csr is not None
    assert req.csr.csr.signature_hash_algorithm is not None
    assert req.csr.csr.signature_hash_algorithm.name == csr_hash


def test_message_digest_md5_refused(device: Engine, crafting: CraftingCA,
                                    scripted: Callable[[Handler], ScriptedServer]) -> None:
    server = scripted(lambda op, body: crafting.get(op))
    identity_and_key(device)
    declare(device, url=server.url, extra=("message-digest md5",))
    authenticate(device)
    message = refused_cleanly(device, "crypto ca enroll myca", ["cisco123", "cisco123"])
    assert "MD5" in message
    assert server.requests[-1][1] != "PKIOperation"  # nothing was sent
