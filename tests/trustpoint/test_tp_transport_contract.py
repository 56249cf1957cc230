"""The contract of the device's SCEP transport port (engine/scep_client.py `ScepTransport`):
what every implementation answers for the same built-in CA. The httpx transport against the
CA over real loopback HTTP and the in-process transport against the same CA attached without
sockets must pass every case alike; this is what lets most device <-> CA tests run in process.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.server import serve, serve_in_process
from engine.ca.service import BuiltinCA
from engine.ports import FakeClock
from engine.scep import (
    Capability,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    PkiStatus,
    RequestParameters,
    build_csr,
    build_pkcs_req,
    build_self_signed_certificate,
    new_nonce,
    parse_ca_certificates,
    parse_capabilities,
    parse_cert_rep,
)
from engine.scep_client import HttpxTransport, ScepTransport, TransportError
from tests.trustpoint.tp_support import make_ca, rsa_key

PW = "contract-pw"


@dataclass
class Served:
    transport: ScepTransport
    url: str  # base URL of the CA
    ca: BuiltinCA
    stop: object  # () -> None: the CA goes away


@pytest.fixture(params=[pytest.param("httpx", marks=pytest.mark.integration), "in-process"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    ca = make_ca(tmp_path / "ca", FakeClock())
    try:
        if request.param == "httpx":
            server = serve(ca, challenge=PW, admin=False, crl_check_interval=3600)
            try:
                yield Served(HttpxTransport(timeout=10), server.url, ca, server.stop)
            finally:
                server.stop()
        else:
            network = InProcessTransport()
            inproc = serve_in_process(ca, network, "http://ca.invalid", challenge=PW)
            yield Served(network, inproc.url, ca, inproc.stop)
    finally:
        ca.close()


def pkcs_req(s: Served, index: int) -> tuple[bytes, RequestParameters]:
    reply = s.transport.get(s.url + "/cgi-bin/pkiclient.exe", {"operation": "GetCACert"})
    cas = parse_ca_certificates(reply.content_type, reply.body)
    key = rsa_key(40 + index)
    now = datetime(2025, 11, 27, tzinfo=UTC)
    signer = build_self_signed_certificate(
        key, x509.Name.from_rfc4514_string(f"CN=contract-{index}"),
        not_before=now - timedelta(days=1), not_after=now + timedelta(days=1), serial_number=7)
    params = RequestParameters(
        signer=Credential(signer, key), recipient=cas.recipient,
        transaction_id=f"CONTRACT{index}", sender_nonce=new_nonce(os.urandom),
        cipher=ContentCipher.AES_128_CBC, digest=DigestAlgorithm.SHA256)
    csr = build_csr(key, x509.Name.from_rfc4514_string(f"CN=contract-{index}.example"),
                    challenge_password=PW)
    return build_pkcs_req(params, csr, random_bytes=os.urandom), params


def issued(s: Served, body: bytes, params: RequestParameters) -> bool:
    rep = parse_cert_rep(body, signers=[s.ca.ca_certificate],
                         transaction_id=params.transaction_id,
                         sender_nonce=params.sender_nonce, recipient=params.signer)
    return rep.status is PkiStatus.SUCCESS and rep.certificate_for(
        params.signer.private_key.public_key()) is not None  # type: ignore[arg-type]


def test_get_ca_caps(served: Served) -> None:
    reply = served.transport.get(served.url + "/cgi-bin/pkiclient.exe",
                                 {"operation": "GetCACaps"})
    assert (reply.status, reply.content_type) == (200, "text/plain")
    assert Capability.POST_PKI_OPERATION in parse_capabilities(reply.body).keywords


@pytest.mark.parametrize("path", ["/scep", "/cgi-bin/pkiclient.exe"])
def test_get_ca_cert(served: Served, path: str) -> None:
    reply = served.transport.get(served.url + path, {"operation": "GetCACert"})
    assert (reply.status, reply.content_type) == (200, "application/x-x509-ca-cert")
    assert x509.load_der_x509_certificate(reply.body) == served.ca.ca_certificate


def test_post_pki_operation_enrolls(served: Served) -> None:
    der, params = pkcs_req(served, 1)
    reply = served.transport.post(served.url + "/cgi-bin/pkiclient.exe",
                                  {"operation": "PKIOperation"}, der)
    assert (reply.status, reply.content_type) == (200, "application/x-pki-message")
    assert issued(served, reply.body, params)


def test_get_pki_operation_enrolls(served: Served) -> None:
    der, params = pkcs_req(served, 2)
    reply = served.transport.get(served.url + "/scep", {
        "operation": "PKIOperation", "message": base64.b64encode(der).decode()})
    assert (reply.status, reply.content_type) == (200, "application/x-pki-message")
    assert issued(served, reply.body, params)


@pytest.mark.parametrize(("path", "params", "body", "status"), [
    ("/scep", {"operation": "GetNextCACert"}, None, 400),
    ("/scep", {}, None, 400),
    ("/nowhere", {"operation": "GetCACaps"}, None, 404),
    ("/scep", {"operation": "PKIOperation", "message": "%%%"}, None, 400),
    ("/scep", {"operation": "PKIOperation"}, b"not a pkiMessage", 400),
    ("/scep", {"operation": "PKIOperation"}, b"\x30" * (64 * 1024 + 1), 413),
])
def test_refusals(served: Served, path: str, params: dict[str, str], body: bytes | None,
                  status: int) -> None:
    url = served.url + path
    reply = (served.transport.get(url, params) if body is None
             else served.transport.post(url, params, body))
    assert (reply.status, reply.content_type) == (status, "text/plain")


def test_crl(served: Served) -> None:
    reply = served.transport.get(served.url + "/crl/ca.crl", {})
    assert (reply.status, reply.content_type) == (200, "application/pkix-crl")
    assert x509.load_der_x509_crl(reply.body).issuer == served.ca.ca_certificate.subject


def test_a_stopped_ca_is_unreachable(served: Served) -> None:
    served.stop()  # type: ignore[operator]
    fresh = HttpxTransport(timeout=5) if isinstance(served.transport, HttpxTransport) \
        else served.transport  # no connection kept alive to the stopped server
    with pytest.raises(TransportError):
        fresh.get(served.url + "/scep", {"operation": "GetCACaps"})
