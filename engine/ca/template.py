"""End-entity certificates assembled from DER parts: the certificate
`profile.end_entity_certificate` builds, byte for byte, without its builder objects.

Theory of operation. A device certificate of this CA differs from the next only in its serial,
validity, subject, key (and the subjectKeyIdentifier made from it), requested subjectAltName
and CDP; everything else (version, signature algorithm, issuer, basicConstraints, key usage,
extended key usage, authorityKeyIdentifier) is the same bytes every time. `CertificateTemplate`
encodes those once per CA certificate, encodes what varies here, and signs the TBSCertificate
with `key.sign(tbs, PKCS1v15(), SHA256())`: the `cryptography` builder (a Python object per
extension, the Rust encoder, the same RSA signature) cost a third of an RSA operation more per
enrollment. RSA PKCS#1 v1.5 signatures are deterministic, so tests hold the two to the same
bytes for RSA and EC subject keys, with and without subjectAltName, subject and CDP names, and
validity on both sides of 2050 (tests/ca/test_ca_template.py). A CA key that is not RSA is
left to the builder (`for_ca` gives None).

The encodings followed (those of the builder, X.690 DER): extensions in the builder's order,
`critical` written only when TRUE (a DEFAULT FALSE is omitted); key usage as a named BIT
STRING without trailing zero bits; times as UTCTime through 2049 and GeneralizedTime from 2050
(RFC 5280 §4.1.2.5), to the second; the subject and key as `cryptography` re-encodes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from engine.ca.profile import (
    EKU_IPSEC_IKE,
    EndEntityRequest,
    _ca_ski,
    check_issuable,
    name_from_der,
    requested_san,
)
from engine.der import tlv
from engine.ports import PrivateKey

_SEQUENCE, _SET, _INTEGER, _BIT_STRING, _OCTET_STRING, _OID = 0x30, 0x31, 0x02, 0x03, 0x04, 0x06
_TRUE = b"\x01\x01\xff"
_VERSION_3 = b"\xa0\x03\x02\x01\x02"
# AlgorithmIdentifier sha256WithRSAEncryption with its NULL parameters (RFC 4055 §5).
_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
_KEY_USAGE_RSA = b"\x03\x02\x05\xa0"  # digitalSignature, keyEncipherment
_KEY_USAGE_EC = b"\x03\x02\x07\x80"  # digitalSignature


def _oid(oid: x509.ObjectIdentifier) -> bytes:
    return bytes(asn1_core.ObjectIdentifier(oid.dotted_string).dump())


_OIDS = {oid: _oid(oid) for oid in (
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.CRL_DISTRIBUTION_POINTS)}


def _extension(oid: x509.ObjectIdentifier, value: bytes, *, critical: bool) -> bytes:
    return tlv(_SEQUENCE, _OIDS[oid], _TRUE if critical else b"",
               tlv(_OCTET_STRING, value))


def _integer(value: int) -> bytes:
    return tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _time(at: datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), to the second."""
    at = at.astimezone(UTC)
    if 1950 <= at.year < 2050:
        return tlv(0x17, at.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(0x18, at.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


@dataclass(frozen=True, slots=True)
class Issued:
    """A signed certificate's DER and its validity as the certificate states it."""

    der: bytes
    not_before: datetime
    not_after: datetime


class CertificateTemplate:
    """The fixed parts of one CA certificate's end-entity certificates (module docstring)."""

    def __init__(self, ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate) -> None:
        self._key = ca_key
        self._issuer = ca_cert.subject.public_bytes()
        self._ca_not_after = ca_cert.not_valid_after_utc
        self._basic_constraints = _extension(ExtensionOID.BASIC_CONSTRAINTS,
                                             tlv(_SEQUENCE), critical=True)
        self._key_usage = {
            True: _extension(ExtensionOID.KEY_USAGE, _KEY_USAGE_RSA, critical=True),
            False: _extension(ExtensionOID.KEY_USAGE, _KEY_USAGE_EC, critical=True)}
        self._eku = _extension(ExtensionOID.EXTENDED_KEY_USAGE, tlv(_SEQUENCE, *(
            _oid(o) for o in (ExtendedKeyUsageOID.SERVER_AUTH,
                                            ExtendedKeyUsageOID.CLIENT_AUTH, EKU_IPSEC_IKE))),
                               critical=False)
        self._aki = _extension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, tlv(
            _SEQUENCE, tlv(0x80, _ca_ski(ca_cert).digest)), critical=False)

    @classmethod
    def for_ca(cls, ca_key: PrivateKey, ca_cert: x509.Certificate) -> CertificateTemplate | None:
        """The template of a CA whose key is RSA; None for another key (the builder signs)."""
        return cls(ca_key, ca_cert) if isinstance(ca_key, rsa.RSAPrivateKey) else None

    def issue(self, request: EndEntityRequest, serial: int, not_before: datetime,
              not_after: datetime, crl_url: str | None, ldap_url: str | None = None) -> Issued:
        """What `profile.end_entity_certificate` makes of the same arguments, as DER.
        ValueError for a request `check_issuable` refuses."""
        check_issuable(request)
        public_key = serialization.load_der_public_key(request.public_key)
        assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        spki = public_key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        subject = name_from_der(request.subject)
        not_after = min(not_after, self._ca_not_after)
        if not_after < not_before:  # a CA past its end: refused as the builder refuses it
            raise ValueError("The not valid after date must be after the not valid before date.")
        not_before = not_before.astimezone(UTC).replace(microsecond=0)
        not_after = not_after.astimezone(UTC).replace(microsecond=0)
        extensions = [self._basic_constraints,
                      self._key_usage[isinstance(public_key, rsa.RSAPublicKey)], self._eku,
                      _extension(ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                                 tlv(_OCTET_STRING, x509.SubjectKeyIdentifier.from_public_key(
                                     public_key).digest), critical=False),
                      self._aki]
        san = requested_san(request.requested_extensions)
        if san is not None:
            extensions.append(_extension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san,
                                         critical=not len(subject)))
        if crl_url:
            uris = [tlv(0x86, u.encode("ascii")) for u in (crl_url, ldap_url) if u]
            extensions.append(_extension(ExtensionOID.CRL_DISTRIBUTION_POINTS, tlv(
                _SEQUENCE, tlv(_SEQUENCE, tlv(0xA0, tlv(0xA0, *uris)))), critical=False))
        tbs = tlv(_SEQUENCE, _VERSION_3, _integer(serial), _SHA256_WITH_RSA, self._issuer,
                  tlv(_SEQUENCE, _time(not_before), _time(not_after)),
                  subject.public_bytes(), spki, tlv(0xA3, tlv(_SEQUENCE, *extensions)))
        signature = self._key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        der = tlv(_SEQUENCE, tbs, _SHA256_WITH_RSA, tlv(_BIT_STRING, b"\x00", signature))
        return Issued(der, not_before, not_after)

