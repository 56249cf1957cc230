"""Shared test material for the SCEP core: a small PKI, deterministic randomness, vectors."""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from engine.scep import (
    CertificationRequest,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    MessageType,
    PkiStatus,
    build_self_signed_certificate,
)
from engine.scep import attributes as A
from engine.scep import cms as scep_cms
from tests.scep import raw_der as R

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "scep"
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)


def vector(name: str) -> bytes:
    """The bytes of one vector file (one loader for all)."""
    return (VECTORS / name).read_bytes()


def vector_manifest() -> dict[str, object]:
    return dict(json.loads(vector("micromdm.json")))


def vector_key(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(vector(name), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def vector_cert(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(vector(name))


def rng(seed: int = 1) -> random.Random:
    return random.Random(seed)


def random_bytes(seed: int = 1):  # type: ignore[no-untyped-def]
    """A deterministic `random_bytes` for the core (tests only)."""
    return rng(seed).randbytes


def name(cn: str, **extra: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if "o" in extra:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, extra["o"]))
    return x509.Name(attrs)


@functools.cache
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    """RSA-2048 keys, generated once per test session per label."""
    del label
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    del label
    return ec.generate_private_key(ec.SECP256R1())


AnyKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def ca_certificate(
    key: AnyKey, subject: x509.Name, issuer: x509.Name | None = None,
    issuer_key: AnyKey | None = None, serial: int = 1,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer or subject)
        .public_key(key.public_key()).serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ku(sign=True, encipher=False, ca=True), critical=True)
        .sign(issuer_key or key, hashes.SHA256())
    )


def leaf_certificate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, subject: x509.Name,
    issuer: Credential, serial: int, *, sign: bool = True, encipher: bool = True,
    key_usage: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer.certificate.subject)
        .public_key(key.public_key()).serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(_ku(sign=sign, encipher=encipher, ca=False), critical=True)
    return builder.sign(issuer.private_key, hashes.SHA256())


def _ku(*, sign: bool, encipher: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=encipher,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


@dataclass(frozen=True)
class Pki:
    ca: Credential
    ra_sign: Credential
    ra_encrypt: Credential
    client: Credential  # self-signed transient signer of the client key
    client_key: rsa.RSAPrivateKey


@functools.cache
def pki() -> Pki:
    ca_key = rsa_key("ca")
    ca = Credential(ca_certificate(ca_key, name("Test SCEP CA", o="Example")), ca_key)
    ra_sign = Credential(
        leaf_certificate(rsa_key("ra-sign"), name("RA sign"), ca, 10, encipher=False),
        rsa_key("ra-sign"))
    ra_encrypt = Credential(
        leaf_certificate(rsa_key("ra-enc"), name("RA encrypt"), ca, 11, sign=False),
        rsa_key("ra-enc"))
    client_key = rsa_key("client")
    client = Credential(build_self_signed_certificate(
        client_key, name("router1.example.com"), not_before=NOW,
        not_after=NOW + dt.timedelta(hours=1), serial_number=0x5EED), client_key)
    return Pki(ca=ca, ra_sign=ra_sign, ra_encrypt=ra_encrypt, client=client,
               client_key=client_key)


def issue(csr: x509.CertificateSigningRequest, issuer: Credential, serial: int) -> x509.Certificate:
    """A minimal CA for the tests: copy the CSR's subject and key."""
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject).issuer_name(issuer.certificate.subject)
        .public_key(csr.public_key()).serial_number(serial)  # type: ignore[arg-type]
        .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=365))
        .sign(issuer.private_key, hashes.SHA256())
    )


def crl(issuer: Credential, revoked_serials: list[int]) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(NOW).next_update(NOW + dt.timedelta(days=7))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build())
    return builder.sign(issuer.private_key, hashes.SHA256())


# --------------------------------------------------- hand-made messages and what callers read


def read_like_a_caller(req: CertificationRequest) -> None:
    """Read what the CA and the trustpoint code read from a parsed request (with cryptography,
    and the subject again with asn1crypto, as the CA's profile does); raises if any fails."""
    csr = req.csr
    _ = csr.subject.public_bytes(), csr.subject.rfc4514_string(), [a.value for a in csr.subject]
    _ = asn1_x509.Name.load(csr.subject.public_bytes()).native
    _ = csr.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    _ = [e.value for e in csr.extensions], [(a.oid, a.value) for a in csr.attributes]
    _ = req.dns_names, req.ip_addresses, req.challenge_password, req.der


def read_certificate_like_a_caller(cert: x509.Certificate) -> None:
    """Read what a trustpoint reads from a certificate the core handed out."""
    for name_ in (cert.subject, cert.issuer):
        _ = name_.public_bytes(), name_.rfc4514_string(), [a.value for a in name_]
    _ = [e.value for e in cert.extensions], cert.public_key(), cert.serial_number
    _ = cert.not_valid_before_utc, cert.not_valid_after_utc


def pkcs_req(body: bytes, transaction_id: str = "TX-CSR") -> bytes:
    """A PKCSReq around any body, as a device would send it (signed by the test client,
    enveloped to the test CA)."""
    p = pki()
    enveloped = scep_cms.envelope(body, recipient=p.ca.certificate,
                                  cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(9))
    attrs = [A.printable(A.OID_MESSAGE_TYPE, str(int(MessageType.PKCS_REQ))),
             A.printable(A.OID_TRANSACTION_ID, transaction_id),
             A.octets(A.OID_SENDER_NONCE, b"n" * 16)]
    return scep_cms.sign(enveloped, signer=p.client, digest=DigestAlgorithm.SHA256,
                         attributes=attrs, certificates=[p.client.certificate], signing_time=NOW)


def raw_certs_only(certificates: list[bytes]) -> bytes:
    """A degenerate certs-only SignedData around DER certificates, written byte by byte (no
    library re-encodes what it could not parse)."""
    signed_data = R.tlv(0x30, b"\x02\x01\x01" + R.tlv(0x31, b"")
                        + R.tlv(0x30, R.oid("1.2.840.113549.1.7.1"))
                        + R.tlv(0xA0, b"".join(certificates)) + R.tlv(0x31, b""))
    return R.tlv(0x30, R.oid("1.2.840.113549.1.7.2") + R.tlv(0xA0, signed_data))


def cert_rep_success_raw(payload: bytes, transaction_id: str = "TX",
                         recipient_nonce: bytes = b"N" * 16) -> bytes:
    """A CertRep SUCCESS from the test CA enveloping any payload to the test client."""
    p = pki()
    enveloped = scep_cms.envelope(payload, recipient=p.client.certificate,
                                  cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(10))
    attrs = [A.printable(A.OID_MESSAGE_TYPE, str(int(MessageType.CERT_REP))),
             A.printable(A.OID_TRANSACTION_ID, transaction_id),
             A.printable(A.OID_PKI_STATUS, str(int(PkiStatus.SUCCESS))),
             A.octets(A.OID_SENDER_NONCE, b"S" * 16),
             A.octets(A.OID_RECIPIENT_NONCE, recipient_nonce)]
    return scep_cms.sign(enveloped, signer=p.ca, digest=DigestAlgorithm.SHA256, attributes=attrs,
                         certificates=[p.ca.certificate], signing_time=NOW)
