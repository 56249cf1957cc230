"""Certificates that parse but break later (cryptography parses lazily) are refused up front
with a `%` error at authenticate and at import, and nothing is stored."""

from __future__ import annotations

import base64
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509

from engine.ports import FakeClock
from tests.trustpoint.tp_support import (
    CHALLENGE,
    declare,
    der,
    identity_and_key,
    issue,
    open_device,
    printed_requests,
    rsa_key,
    self_signed_ca,
)


def paste(data: bytes) -> list[str]:
    return [*textwrap.wrap(base64.b64encode(data).decode(), 64), ""]


def duplicate_extension(cert_der: bytes) -> bytes:
    a = asn1_x509.Certificate.load(cert_der)
    exts = a["tbs_certificate"]["extensions"]
    exts.append(exts[0].copy())
    return bytes(a.dump(force=True))


def unknown_key_algorithm(cert_der: bytes) -> bytes:
    a = asn1_x509.Certificate.load(cert_der)
    a["tbs_certificate"]["subject_public_key_info"]["algorithm"]["algorithm"] = "1.2.643.2.2.19"
    return bytes(a.dump(force=True))


def test_broken_ca_certificates_are_refused_at_authenticate(tmp_path: Path) -> None:
    e = open_device(tmp_path, FakeClock())
    identity_and_key(e)
    declare(e, terminal=True)
    ca = der(self_signed_ca(rsa_key(50), "Paste CA"))
    for bad, words in ((duplicate_extension(ca), "Duplicate"),
                       (unknown_key_algorithm(ca), "Unknown key type")):
        r = e.execute("crypto ca authenticate myca", answers=[*paste(bad), "yes"])
        assert r.error is not None and r.events == [], r.output
        assert "not a valid X.509 certificate" in r.output and words in r.output
    assert e.execute("crypto ca authenticate myca", answers=[*paste(ca), "yes"]).events


def test_broken_router_certificates_are_refused_at_import(tmp_path: Path) -> None:
    clock = FakeClock()
    e = open_device(tmp_path, clock)
    identity_and_key(e)
    declare(e, terminal=True)
    key = rsa_key(50)
    ca = self_signed_ca(key, "Paste CA")
    assert e.execute("crypto ca authenticate myca", answers=[*paste(der(ca)), "yes"]).ok
    r = e.execute("crypto ca enroll myca", answers=[CHALLENGE, CHALLENGE])
    csr = x509.load_der_x509_csr(printed_requests(r.output)[0])
    now = datetime.fromtimestamp(clock.us / 1e6, UTC)
    good = der(issue(key, ca, csr.public_key(), csr.subject, now - timedelta(hours=1),
                     now + timedelta(days=30)))
    for bad in (duplicate_extension(good), unknown_key_algorithm(good)):
        r = e.execute("crypto ca import myca certificate", answers=paste(bad))
        assert r.error is not None and r.events == [], r.output
    r = e.execute("crypto ca import myca certificate", answers=paste(good))
    assert [x.type for x in r.events] == ["CertificateReceived"], r.output
