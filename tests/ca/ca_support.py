"""Shared helpers for the CA tests: keys generated once per process, a fixed clock, seeded
randomness, and request builders."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.ca.decide import PKCS_REQ, Enroll
from engine.ca.ports import FixedClock, PrivateKey, SeededRandomness
from engine.ca.service import BuiltinCA

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@functools.cache
def rsa_key(index: int, bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(index: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class CachedKeys:
    """A KeyFactory handing out keys made once per process (keygen is slow; tests are not
    about it). Keys `base`, `base+1`, ... in order, so two CAs built alike get the same keys."""

    def __init__(self, base: int = 100) -> None:
        self.next = base

    def generate(self, spec: str) -> PrivateKey:
        self.next += 1
        if spec == "ecdsa:p256":
            return ec_key(self.next)
        return rsa_key(self.next, int(spec.split(":")[1]))


def make_ca(root: Path, *, seed: int = 1, clock: FixedClock | None = None,
            **kw: Any) -> BuiltinCA:
    return BuiltinCA.init(root, clock=clock or FixedClock(T0), randomness=SeededRandomness(seed),
                          keys=CachedKeys(), **kw)


def spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def make_csr(key: PrivateKey, cn: str, *, challenge: str | None = None,
             dns: tuple[str, ...] = (), ca_true: bool = False) -> x509.CertificateSigningRequest:
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string(f"CN={cn},O=Example"))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]),
                            critical=False)
    if ca_true:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if challenge is not None:
        b = b.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return b.sign(key, hashes.SHA256())


def requested_extensions(csr: x509.CertificateSigningRequest) -> bytes:
    req = asn1_csr.CertificationRequest.load(csr.public_bytes(serialization.Encoding.DER))
    for attr in req["certification_request_info"]["attributes"]:
        if attr["type"].native == "extension_request":
            return bytes(attr["values"][0].dump())
    return b""


def self_signed(key: PrivateKey, cn: str) -> bytes:
    name = x509.Name.from_rfc4514_string(f"CN={cn}")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(T0 - timedelta(days=1)).not_valid_after(T0 + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def enroll_cmd(key: PrivateKey, cn: str, *, txid: str | None = None,
               challenge: str | None = None, signer: bytes | None = None,
               message_type: int = PKCS_REQ, dns: tuple[str, ...] = (),
               ca_true: bool = False) -> Enroll:
    csr = make_csr(key, cn, dns=dns, ca_true=ca_true)
    return Enroll(
        transaction_id=txid or hashlib.sha256(spki(key)).hexdigest().upper(),
        message_type=message_type,
        subject=csr.subject.public_bytes(),
        subject_text=csr.subject.rfc4514_string(),
        public_key=spki(key),
        requested_extensions=requested_extensions(csr),
        signer_certificate=signer if signer is not None else self_signed(key, cn),
        challenge_sha256=hashlib.sha256(challenge.encode()).digest() if challenge else None,
    )
