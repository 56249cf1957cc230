"""`crypto ca authenticate` refuses a CA certificate whose signature cannot be right, before
asking the operator (issue 10 item 4): a self-signed one that does not verify with its own key,
by SCEP or pasted; a subordinate CA that does not verify with the issuer the CA sent. A
subordinate CA is legitimate: with its chain, or alone (nothing to check it against)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from engine import Engine
from engine.errors import TrustledgerError
from engine.pki import check_ca_signature
from engine.ports import FakeClock
from engine.scep import build_ca_certificates
from engine.scep_client import HttpReply
from engine.trustpoints import status_of
from tests.trustpoint.tp_support import (
    T0_US,
    ScriptedTransport,
    authenticate,
    declare,
    der,
    event_types,
    pem_lines,
    rsa_key,
    self_signed_ca,
)

QUESTION = "Do you accept this certificate??"
CAPS = HttpReply(200, "text/plain", b"POSTPKIOperation\nSHA-256\nAES\nSCEPStandard")


def broken_signature(cert: x509.Certificate) -> bytes:
    """The same certificate with one bit of its signature flipped: it still parses."""
    raw = bytearray(der(cert))
    raw[-1] ^= 0x01
    return bytes(raw)


def subordinate(root_key_index: int = 60) -> tuple[x509.Certificate, x509.Certificate]:
    """(root, intermediate CA issued by root)."""
    root = self_signed_ca(rsa_key(root_key_index), "Root of the chain")
    now = datetime.fromtimestamp(T0_US / 1e6, UTC)
    name = x509.Name.from_rfc4514_string("CN=Issuing CA,O=Elsewhere")
    inter = (x509.CertificateBuilder().subject_name(name).issuer_name(root.subject)
             .public_key(rsa_key(61).public_key()).serial_number(0x1A)
             .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=900))
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .sign(rsa_key(root_key_index), hashes.SHA256()))
    return root, inter


def scep_device(ctype: str, body: bytes) -> Engine:
    e = Engine.in_memory(clock=FakeClock(), scep=ScriptedTransport(
        {"GetCACaps": CAPS, "GetCACert": HttpReply(200, ctype, body)}))
    declare(e, url="http://127.0.0.1:9/")
    return e


def test_a_self_signed_ca_with_a_bad_signature_is_refused_before_the_question() -> None:
    e = scep_device("application/x-x509-ca-cert",
                    broken_signature(self_signed_ca(rsa_key(50), "Forged CA")))
    r = authenticate(e)
    assert r.error is not None and r.events == []
    assert r.error.message == ("% The CA certificate claims to be self-signed, but its "
                               "signature does not verify with its own key: refused, nothing "
                               "was stored.")
    assert QUESTION not in r.output
    assert status_of(e.state, "myca").ca_certificate is None


def test_a_pasted_ca_certificate_with_a_bad_signature_is_refused() -> None:
    e = Engine.in_memory(clock=FakeClock())
    declare(e, terminal=True)
    bad = broken_signature(self_signed_ca(rsa_key(50), "Forged CA"))
    r = authenticate(e, pasted=[*pem_lines(bad), ""])
    assert r.error is not None and "claims to be self-signed" in r.error.message
    assert QUESTION not in r.output and r.events == []


def test_a_sound_self_signed_ca_is_still_offered() -> None:
    e = scep_device("application/x-x509-ca-cert", der(self_signed_ca(rsa_key(50), "Good CA")))
    r = authenticate(e)
    assert QUESTION in r.output and event_types(r) == ["CACertificateAccepted"]


def test_a_subordinate_ca_with_its_chain_is_offered() -> None:
    root, inter = subordinate()
    ctype, body = build_ca_certificates(inter, (), [root])
    r = authenticate(scep_device(ctype, body))
    assert QUESTION in r.output and event_types(r) == ["CACertificateAccepted"]
    assert "CN=Issuing CA" in r.output or "cn=Issuing CA" in r.output


def test_a_subordinate_ca_sent_alone_is_offered() -> None:
    """Nothing to verify it against: the fingerprint the operator checks decides."""
    _, inter = subordinate()
    r = authenticate(scep_device("application/x-x509-ca-cert", der(inter)))
    assert QUESTION in r.output and event_types(r) == ["CACertificateAccepted"]


def test_a_subordinate_ca_that_its_sent_issuer_did_not_sign_is_refused() -> None:
    """The issuer the CA sent (same name, another key) does not verify the certificate."""
    _, inter = subordinate()
    impostor, _ = subordinate(root_key_index=62)
    with pytest.raises(TrustledgerError, match="does not verify with the key of its issuer"):
        check_ca_signature(inter, [impostor])
    check_ca_signature(inter, [subordinate()[0]])  # the real issuer: fine


def test_a_self_issued_rollover_certificate_verifies_with_the_old_key_sent_beside_it() -> None:
    """NewWithOld: self-issued (same name) but signed by the previous key, which the CA sent."""
    old = self_signed_ca(rsa_key(63), "Rolling CA")
    now = datetime.fromtimestamp(T0_US / 1e6, UTC)
    new_with_old = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.subject)
                    .public_key(rsa_key(64).public_key()).serial_number(0x2B)
                    .not_valid_before(now).not_valid_after(now + timedelta(days=30))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                   critical=True)
                    .sign(rsa_key(63), hashes.SHA256()))
    check_ca_signature(new_with_old, [old])
    with pytest.raises(TrustledgerError, match="claims to be self-signed"):
        check_ca_signature(new_with_old)
