"""Certificate and CRL profiles of the built-in CA: pure builders over explicit inputs.

Nothing here reads a clock or draws randomness: times, serials and keys are parameters. RSA
PKCS#1 v1.5 signatures are deterministic, so the same inputs give the same DER; every signed
artifact is recorded in the log anyway (`CertificateIssued`, `CRLIssued`), so replay never
signs again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import core as asn1_core
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, ObjectIdentifier

from engine.ports import PrivateKey, Randomness
from engine.scep._fastcsr import read_name

SIGNATURE_HASH = hashes.SHA256()
CLOCK_SKEW = timedelta(minutes=5)
"""Issued certificates start this much before the request was decided, for devices whose
clocks run a little behind."""

EKU_IPSEC_IKE = ObjectIdentifier("1.3.6.1.5.5.7.3.17")

REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}
"""RFC 5280 §5.3.1 CRLReason names (removeFromCRL only makes sense in delta CRLs)."""


def reason_name(text: str) -> str:
    """The canonical RFC 5280 reason name for `text` (case and `-`/`_` insensitive)."""
    wanted = text.replace("-", "").replace("_", "").lower()
    for name in REASONS:
        if name.lower() == wanted:
            return name
    raise ValueError(f"unknown revocation reason {text!r}; expected one of {', '.join(REASONS)}")


def parse_subject(text: str) -> x509.Name:
    """An RFC 4514 DN (`CN=CA,O=Example`) or an OpenSSL one (`/O=Example/CN=CA`)."""
    text = text.strip()
    if text.startswith("/"):
        parts = [p for p in text.split("/") if p]
        text = ",".join(reversed(parts))  # OpenSSL lists the most significant RDN first
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as e:
        raise ValueError(f"invalid subject {text!r}: {e}") from e
    if not len(name):
        raise ValueError("the subject is empty")
    return name


_TAG_TYPES = {
    asn1_core.PrintableString: _ASN1Type.PrintableString,
    asn1_core.UTF8String: _ASN1Type.UTF8String,
    asn1_core.IA5String: _ASN1Type.IA5String,
    asn1_core.TeletexString: _ASN1Type.T61String,
    asn1_core.BMPString: _ASN1Type.BMPString,
    asn1_core.UniversalString: _ASN1Type.UniversalString,
}


@functools.lru_cache(maxsize=256)
def name_from_der(der: bytes) -> x509.Name:
    """Rebuild a `cryptography` Name from DER, keeping each value's string type (cached: an
    enrollment checks and issues the same subject three times; a Name is immutable). The
    names requests carry are read by the DER walker of engine/scep/_fastcsr.py, others by
    asn1crypto."""
    fast = read_name(der)
    if fast is not None:
        return fast
    parsed = asn1_x509.Name.load(der)
    rdns: list[x509.RelativeDistinguishedName] = []
    for rdn in parsed.chosen:
        attrs: list[x509.NameAttribute[str]] = []
        for ava in rdn:
            oid = ObjectIdentifier(ava["type"].dotted)
            value = ava["value"]
            inner = value.chosen if isinstance(value, asn1_core.Choice) else value
            string_type = _TAG_TYPES.get(type(inner), _ASN1Type.UTF8String)
            attrs.append(x509.NameAttribute(oid, str(inner.native), _type=string_type))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def random_serial(randomness: Randomness) -> int:
    """A positive serial with 127 random bits (RFC 5280 §4.1.2.2: "The serial number MUST be a
    positive integer ... Conforming CAs MUST NOT use serialNumber values longer than 20
    octets"; CA/B Forum asks for at least 64 bits of randomness).

    A draw whose DER needs a leading 0x00 octet (its bit length a multiple of 8, about 1 in
    256) is drawn again. That DER is correct, but strongSwan 5.9.8's openssl plugin cannot open
    an envelope addressed to such a certificate: its PKCS#7 decryption looks the recipient's
    serial up with the 0x00 and its X.509 certificates report it without, so `pki --scep`
    renewing such a certificate fails with "no private key found to decrypt PKCS#7" (RFC 8894
    §3.3.2 envelopes the CertRep to the request's signer: the old certificate).
    tests/interop/test_interop_serials.py shows the quirk with the real peer."""
    while True:
        value = int.from_bytes(randomness.token_bytes(16), "big") >> 1
        if value >= 1 << 64 and value.bit_length() % 8:
            return value


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def _ski(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _ca_ski(ca_cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


def ca_certificate(key: PrivateKey, subject: x509.Name, serial: int, not_before: datetime,
                   not_after: datetime) -> x509.Certificate:
    """The self-signed CA certificate. digitalSignature is set because the CA signs CertReps
    (OpenSSL's purpose check rejects a CMS signer without it); keyEncipherment too for RSA,
    since SCEP clients encrypt their requests to the CA certificate without an RA."""
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    ski = _ski(key)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=is_rsa,
                                      cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, SIGNATURE_HASH))


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False,
               cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=key_encipherment, data_encipherment=False,
                         key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def ra_certificate(ca_key: PrivateKey, ca_cert: x509.Certificate, ra_key: rsa.RSAPrivateKey,
                   purpose: str, serial: int, not_before: datetime,
                   not_after: datetime) -> x509.Certificate:
    """An RA certificate as Windows NDES has them: one for signing CertReps (digitalSignature),
    one requests are encrypted to (keyEncipherment). `purpose` is "signing" or "encryption"."""
    if purpose not in ("signing", "encryption"):
        raise ValueError(f"unknown RA purpose {purpose!r}")
    cn = ca_cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    base = str(cn[0].value) if cn else "trustledger CA"
    others = [a for a in ca_cert.subject if a.oid != x509.NameOID.COMMON_NAME]
    subject = x509.Name([*others, x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                                       f"{base} RA {purpose}")])
    usage = (_key_usage(digital_signature=True) if purpose == "signing"
             else _key_usage(key_encipherment=True))
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(ra_key.public_key()).serial_number(serial)
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(_ski(ra_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                _ca_ski(ca_cert)), critical=False)
            .sign(ca_key, SIGNATURE_HASH))


@dataclass(frozen=True, slots=True)
class EndEntityRequest:
    subject: bytes  # DER Name
    public_key: bytes  # DER SubjectPublicKeyInfo
    requested_extensions: bytes  # DER Extensions, or b""


def requested_extensions(csr_der: bytes) -> bytes:
    """The DER Extensions of the PKCS#10 extensionRequest attribute (RFC 2985 §5.4.2), or b""."""
    info = asn1_csr.CertificationRequest.load(csr_der)["certification_request_info"]
    for attr in info["attributes"]:
        if attr["type"].dotted == "1.2.840.113549.1.9.14":
            values = list(attr["values"])
            return bytes(values[0].dump()) if values else b""
    return b""


def requested_san(extensions_der: bytes) -> bytes | None:
    """The DER GeneralNames of a requested subjectAltName, or None. It is the only requested
    extension the CA honours; a request cannot ask for CA:TRUE or a key usage of its choosing."""
    if not extensions_der:
        return None
    for ext in asn1_x509.Extensions.load(extensions_der):
        if ext["extn_id"].dotted == ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string:
            contents: bytes = ext["extn_value"].contents
            return contents
    return None


def general_names(san_der: bytes | None) -> frozenset[bytes]:
    """The set of DER GeneralName entries of a DER GeneralNames (empty for None); ValueError if
    it does not parse."""
    if san_der is None:
        return frozenset()
    try:
        names = asn1_x509.GeneralNames.load(san_der)
        names.native  # noqa: B018 - parse every entry now, not lazily later
        return frozenset(name.dump() for name in names)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"the subjectAltName does not parse ({e})") from None


def issued_subject(subject_der: bytes) -> bytes:
    """The DER subject `end_entity_certificate` writes for a requested DER subject."""
    return name_from_der(subject_der).public_bytes()


def certified_identity(certificate_der: bytes) -> tuple[bytes, frozenset[bytes]]:
    """(DER subject, set of DER subjectAltName entries) of a certificate; ValueError if it does
    not parse."""
    try:
        cert = asn1_x509.Certificate.load(certificate_der)
        san = cert.subject_alt_name_value
        return cert.subject.dump(), frozenset(name.dump() for name in san or ())
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"the certificate does not parse ({e})") from None


@functools.lru_cache(maxsize=256)
def check_issuable(request: EndEntityRequest) -> None:
    """Raise ValueError, saying why, unless `end_entity_certificate` can certify `request`: an
    RSA or EC key, a subject it can rewrite, and a subjectAltName that parses. Checked when a
    request arrives, so that an approved request can always be issued. (Cached: an enrollment
    checks the same request on arrival and at issuance; a refusal raises, and is not cached.)"""
    try:
        public_key = serialization.load_der_public_key(request.public_key)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("the subject public key cannot be read") from None
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("only RSA and EC subject keys are supported")
    try:
        subject = name_from_der(request.subject)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"the subject cannot be used ({e})") from None
    try:
        san = requested_san(request.requested_extensions)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"the requested extensions do not parse ({e})") from None
    if san is not None and not general_names(san):
        # RFC 5280 §4.2.1.6: "If the subjectAltName extension is present, the sequence MUST
        # contain at least one entry."
        raise ValueError("the requested subjectAltName is empty")
    if san is None and not len(subject):
        # RFC 5280 §4.1.2.6: an empty subject is allowed only with the identity in a
        # subjectAltName, which then "MUST be critical".
        raise ValueError("the request has an empty subject and no subjectAltName")


def end_entity_certificate(ca_key: PrivateKey, ca_cert: x509.Certificate,
                           request: EndEntityRequest, serial: int, not_before: datetime,
                           not_after: datetime, crl_url: str | None,
                           ldap_url: str | None = None) -> x509.Certificate:
    """A device certificate: subject and key from the request, SAN copied, KU/EKU/SKI/AKI and a
    CRL distribution point (`crl_url`, and `ldap_url` as a second name of it). Validity is
    clipped to the CA certificate's. ValueError for a request `check_issuable` refuses."""
    check_issuable(request)
    public_key = serialization.load_der_public_key(request.public_key)
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    subject = name_from_der(request.subject)
    not_after = min(not_after, ca_cert.not_valid_after_utc)
    usage = _key_usage(digital_signature=True,
                       key_encipherment=isinstance(public_key, rsa.RSAPublicKey))
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(public_key).serial_number(serial)
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(usage, critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH,
                                                     EKU_IPSEC_IKE]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                   _ca_ski(ca_cert)), critical=False))
    san = requested_san(request.requested_extensions)
    if san is not None:
        # RFC 5280 §4.2.1.6: "If the subject field contains an empty sequence, then the issuing
        # CA MUST include a subjectAltName extension that is marked as critical."
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san),
            critical=not len(subject))
    if crl_url:
        # RFC 5280 §4.2.1.13: "If the DistributionPointName contains multiple values, each
        # name describes a different mechanism to obtain the same CRL": HTTP first, then LDAP.
        names = [x509.UniformResourceIdentifier(u) for u in (crl_url, ldap_url) if u]
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=names, relative_name=None, reasons=None, crl_issuer=None)]),
            critical=False)
    return builder.sign(ca_key, SIGNATURE_HASH)


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: str  # a key of REASONS


def certificate_revocation_list(ca_key: PrivateKey, ca_cert: x509.Certificate, number: int,
                                this_update: datetime, next_update: datetime,
                                revoked: Sequence[RevokedEntry],
                                ) -> x509.CertificateRevocationList:
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca_cert.subject)
               .last_update(this_update).next_update(next_update)
               # RFC 5280 §5.2.3: "conforming CRL issuers MUST include this extension [CRL
               # number] in all CRLs"; §5.2.1: they "MUST use the key identifier method, and
               # MUST include this extension [AKI] in all CRLs issued".
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                   _ca_ski(ca_cert)), critical=False))
    for entry in revoked:
        rb = (x509.RevokedCertificateBuilder()
              .serial_number(entry.serial).revocation_date(entry.revoked_at))
        if entry.reason != "unspecified":
            # RFC 5280 §5.3.1: "the reason code CRL entry extension SHOULD be absent instead of
            # using the unspecified (0) reasonCode value".
            rb = rb.add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
        builder = builder.add_revoked_certificate(rb.build())
    return builder.sign(ca_key, SIGNATURE_HASH)
