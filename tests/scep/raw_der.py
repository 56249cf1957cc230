"""Hand-made DER for the SCEP tests: correctly signed requests and certificates whose names,
attributes or extensions hold what no library builder would write (an INTEGER in a subject, a
truncated subjectAltName, a two-valued attribute), and PKCS#10 signed with any algorithm
(SHA-1 included, which cryptography's builders refuse)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from asn1crypto import core
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

OID_CN = "2.5.4.3"
OID_SAN = "2.5.29.17"
OID_CHALLENGE = "1.2.840.113549.1.9.7"
OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"

_RSA_SIGNATURES = {"sha1": ("1.2.840.113549.1.1.5", hashes.SHA1),
                   "sha256": ("1.2.840.113549.1.1.11", hashes.SHA256),
                   "sha384": ("1.2.840.113549.1.1.12", hashes.SHA384),
                   "sha512": ("1.2.840.113549.1.1.13", hashes.SHA512)}
_ECDSA_SIGNATURES = {"sha1": ("1.2.840.10045.4.1", hashes.SHA1),
                     "sha256": ("1.2.840.10045.4.3.2", hashes.SHA256),
                     "sha384": ("1.2.840.10045.4.3.3", hashes.SHA384),
                     "sha512": ("1.2.840.10045.4.3.4", hashes.SHA512)}


def tlv(tag: int, body: bytes) -> bytes:
    """One DER element: tag, definite length, contents."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def oid(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def name(*rdns: Sequence[tuple[str, int, bytes]]) -> bytes:
    """A Name: each RDN a list of (attribute OID, value tag, value contents)."""
    return tlv(0x30, b"".join(
        tlv(0x31, b"".join(sorted(tlv(0x30, oid(t) + tlv(tag, v)) for t, tag, v in rdn)))
        for rdn in rdns))


def cn(text: str) -> bytes:
    return name([(OID_CN, 0x0C, text.encode())])


def attribute(type_oid: str, *values: bytes) -> bytes:
    """An Attribute: SEQUENCE { type, SET OF value } (values given as whole DER elements)."""
    return tlv(0x30, oid(type_oid) + tlv(0x31, b"".join(sorted(values))))


def extension(extn_id: str, value: bytes, critical: bool = False) -> bytes:
    return tlv(0x30, oid(extn_id) + (b"\x01\x01\xff" if critical else b"") + tlv(0x04, value))


def extension_request(*extensions: bytes) -> bytes:
    return attribute(OID_EXTENSION_REQUEST, tlv(0x30, b"".join(extensions)))


def challenge(text: str, tag: int = 0x13) -> bytes:
    return attribute(OID_CHALLENGE, tlv(tag, text.encode()))


def spki(key: Key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _algorithm(key: Key, digest: str) -> tuple[bytes, hashes.HashAlgorithm]:
    """The AlgorithmIdentifier `key` signs with (PKCS#1 v1.5 for RSA, ECDSA for EC)."""
    if isinstance(key, rsa.RSAPrivateKey):
        algo_oid, hash_class = _RSA_SIGNATURES[digest]
        return tlv(0x30, oid(algo_oid) + b"\x05\x00"), hash_class()
    algo_oid, hash_class = _ECDSA_SIGNATURES[digest]
    return tlv(0x30, oid(algo_oid)), hash_class()


def _signed(key: Key, tbs: bytes, digest: str) -> bytes:
    """SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }."""
    algorithm, hash_algorithm = _algorithm(key, digest)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hash_algorithm)
    else:
        signature = key.sign(tbs, ec.ECDSA(hash_algorithm))
    return tlv(0x30, tbs + algorithm + tlv(0x03, b"\x00" + signature))


def csr(key: Key, subject: bytes, attributes: Sequence[bytes] = (), *,
        digest: str = "sha256", subject_key: bytes | None = None) -> bytes:
    """A PKCS#10 request signed by `key` (over whatever it holds)."""
    info = tlv(0x30, b"\x02\x01\x00" + subject + (subject_key or spki(key))
               + tlv(0xA0, b"".join(sorted(attributes))))  # DER: a SET OF is sorted
    return _signed(key, info, digest)


def _time(when: dt.datetime) -> bytes:
    return tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode())


def certificate(key: Key, subject: bytes, *, not_before: dt.datetime, not_after: dt.datetime,
                issuer: bytes | None = None, extensions: Sequence[bytes] = (),
                issuer_key: Key | None = None, serial: int = 7,
                subject_key: bytes | None = None) -> bytes:
    """A v3 certificate for `key`'s public key (or `subject_key`, a raw SPKI), signed with
    SHA-256 by `issuer_key` (or itself)."""
    signer = issuer_key or key
    exts = tlv(0xA3, tlv(0x30, b"".join(extensions))) if extensions else b""
    tbs = tlv(0x30, tlv(0xA0, b"\x02\x01\x02") + bytes(core.Integer(serial).dump())
              + _algorithm(signer, "sha256")[0] + (issuer or subject)
              + tlv(0x30, _time(not_before) + _time(not_after))
              + subject + (subject_key or spki(key)) + exts)
    return _signed(signer, tbs, "sha256")


def crl(issuer_key: Key, issuer: bytes, *, this_update: dt.datetime,
        revoked: Sequence[tuple[int, Sequence[bytes]]] = ()) -> bytes:
    """A v2 CRL: (serial, entry extensions) per revoked certificate, all revoked at
    this_update."""
    entries = b"".join(
        tlv(0x30, bytes(core.Integer(serial).dump()) + _time(this_update)
            + (tlv(0x30, b"".join(exts)) if exts else b""))
        for serial, exts in revoked)
    tbs = tlv(0x30, b"\x02\x01\x01" + _algorithm(issuer_key, "sha256")[0] + issuer
              + _time(this_update) + (tlv(0x30, entries) if entries else b""))
    return _signed(issuer_key, tbs, "sha256")
