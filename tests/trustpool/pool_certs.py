"""Certificates made on the spot for trustpool tests: CA roots with chosen names, keys and
validity, leaves, and bundles of them (PEM, PKCS#7 DER/PEM)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

UTC = dt.UTC
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def key(bits: int = 0) -> Key:
    return rsa.generate_private_key(65537, bits) if bits else ec.generate_private_key(
        ec.SECP256R1())


def ca(cn: str, start: dt.datetime, end: dt.datetime, *, k: Key | None = None,
       issuer: tuple[x509.Certificate, Key] | None = None, is_ca: bool = True,
       san_ip: str | None = None) -> tuple[x509.Certificate, Key]:
    k = k or key()
    iname, ikey = (issuer[0].subject, issuer[1]) if issuer else (name(cn), k)
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(iname)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if san_ip:
        import ipaddress

        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(san_ip))]), critical=False)
    return b.sign(ikey, hashes.SHA256()), k


def years(a: int, b: int) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime(a, 1, 1, tzinfo=UTC), dt.datetime(b, 1, 1, tzinfo=UTC)


def pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def p7b(certs: Sequence[x509.Certificate], encoding: str = "DER") -> bytes:
    if not certs:  # cryptography wants at least one: a certs-only SignedData with none
        from engine.scep.cms import certs_only

        return certs_only([])
    return pkcs7.serialize_certificates(list(certs), getattr(serialization.Encoding, encoding))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
