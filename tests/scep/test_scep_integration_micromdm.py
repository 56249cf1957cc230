"""Live: our sans-I/O core enrolls against micromdm's real scepserver on loopback.

The HTTP here is plain `http.client` in the test; engine/scep itself does no I/O.
"""

from __future__ import annotations

import datetime as dt
import http.client
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.scep import (
    CACertificates,
    Capabilities,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    FailInfo,
    PkiStatus,
    RequestParameters,
    build_csr,
    build_pkcs_req,
    build_self_signed_certificate,
    encode_message_param,
    new_nonce,
    parse_ca_certificates,
    parse_capabilities,
    parse_cert_rep,
    transaction_id_for,
)
from tests.scep.scep_support import name
from tests.support.peer_support import free_port, peers_dir

pytestmark = pytest.mark.integration

CHALLENGE = "secret123"


@dataclass
class Peer:
    port: int

    def request(self, method: str, query: str, body: bytes | None = None,
                ) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, "/scep?" + query, body=body,
                         headers={"Content-Type": "application/x-pki-message"} if body else {})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def scepserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    peers = peers_dir("scepserver", "socat")
    # a short directory: the script puts a unix socket in it
    work = Path(tmp_path_factory.mktemp("scep", numbered=True))
    port = free_port()
    proc = subprocess.Popen(
        [str(peers / "scep-server.sh"), "run", str(work), str(port), CHALLENGE, "--",
         "-allowrenew", "0"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peer = Peer(port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if peer.request("GET", "operation=GetCACaps")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (work / "scepserver.log").read_text(errors="replace") if (
                    work / "scepserver.log").exists() else ""
                pytest.fail(f"scepserver did not start: {log[-2000:]}")
            time.sleep(0.05)
        yield peer
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@dataclass
class Enrollment:
    params: RequestParameters
    key: rsa.RSAPrivateKey
    cas: CACertificates
    der: bytes


def _enrollment(peer: Peer, challenge: str, cn: str) -> Enrollment:
    status, _, caps_body = peer.request("GET", "operation=GetCACaps")
    assert status == 200
    caps: Capabilities = parse_capabilities(caps_body)
    status, ctype, body = peer.request("GET", "operation=GetCACert")
    assert status == 200
    cas = parse_ca_certificates(ctype, body)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)  # test code may read the clock
    signer = Credential(build_self_signed_certificate(
        key, name("SCEP signer", o="trustledger"), not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(hours=1), serial_number=secrets.randbits(63) + 1), key)
    params = RequestParameters(
        signer=signer, recipient=cas.recipient, transaction_id=transaction_id_for(
            key.public_key()), sender_nonce=new_nonce(secrets.token_bytes),
        cipher=caps.strongest_cipher(), digest=caps.strongest_digest(), signing_time=now)
    csr = build_csr(key, name(cn, o="Example"), challenge_password=challenge, dns_names=[cn])
    return Enrollment(params, key, cas, build_pkcs_req(params, csr,
                                                       random_bytes=secrets.token_bytes))


def _answer(e: Enrollment, body: bytes):  # type: ignore[no-untyped-def]
    return parse_cert_rep(body, signers=[e.cas.signer], transaction_id=e.params.transaction_id,
                          sender_nonce=e.params.sender_nonce, recipient=e.params.signer)


def test_enroll_against_micromdm_with_post(scepserver: Peer) -> None:
    e = _enrollment(scepserver, CHALLENGE, f"it-{secrets.token_hex(4)}.example.com")
    assert (e.params.cipher, e.params.digest) == (ContentCipher.AES_128_CBC,
                                                   DigestAlgorithm.SHA256)
    status, ctype, body = scepserver.request("POST", "operation=PKIOperation", e.der)
    assert (status, ctype) == (200, "application/x-pki-message")
    rep = _answer(e, body)
    assert rep.status is PkiStatus.SUCCESS
    cert = rep.certificate_for(e.key.public_key())
    assert cert is not None
    assert cert.issuer == e.cas.ca.subject
    cert.verify_directly_issued_by(e.cas.ca)
    assert rep.cipher is ContentCipher.DES_CBC  # micromdm answers in DES whatever we sent


def test_enroll_against_micromdm_with_get(scepserver: Peer) -> None:
    e = _enrollment(scepserver, CHALLENGE, f"get-{secrets.token_hex(4)}.example.com")
    query = "operation=PKIOperation&message=" + urllib.parse.quote(
        encode_message_param(e.der), safe="")
    status, _, body = scepserver.request("GET", query)
    assert status == 200
    assert _answer(e, body).status is PkiStatus.SUCCESS


def test_wrong_challenge_is_failure_bad_request(scepserver: Peer) -> None:
    e = _enrollment(scepserver, "not-the-secret", f"bad-{secrets.token_hex(4)}.example.com")
    status, _, body = scepserver.request("POST", "operation=PKIOperation", e.der)
    assert status == 200
    rep = _answer(e, body)
    assert rep.status is PkiStatus.FAILURE
    assert rep.fail_info is FailInfo.BAD_REQUEST
    assert rep.certificates == ()
