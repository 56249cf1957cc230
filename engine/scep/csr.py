"""PKCS#10 (RFC 2986) requests as SCEP carries them: challengePassword + extensionRequest.

`build_csr` makes the request a router sends: its subject (optionally with serialNumber
appended, as IOS `serial-number` does), SANs (dNSName, iPAddress) in an extensionRequest, and
the challenge password (RFC 2985 §5.4.1 DirectoryString; written as UTF8String).

`parse_csr` reads any such request completely, inside the core's error containment, so that
nothing a caller reads afterwards (subject, public key, extensions, attributes) can raise:

- the subject: every value a character string its attribute allows (X.520), read both by
  asn1crypto and by cryptography;
- the key: RSA or EC (the only keys SCEP can certify and envelope to);
- the proof of possession: verified here with the request's own key and signature algorithm,
  RSA PKCS#1 v1.5, RSASSA-PSS or ECDSA, with SHA-1, SHA-256, SHA-384 or SHA-512
  (`signature_digest` says which; refusing SHA-1 is the caller's policy). cryptography's
  `is_signature_valid` is not used: it reports sha1WithRSAEncryption requests as invalid;
- attributes: each type at most once, each with exactly one value; the challenge as
  PrintableString, UTF8String, IA5String, TeletexString, BMPString or UniversalString; the
  extensionRequest a well-formed Extensions whose subjectAltName both libraries can read.

Attribute order. `attributes` is a SET OF, which DER sorts by encoding; strongSwan's `pki
--req/--scep --san` writes its extensionRequest before its challengePassword, which is BER but
not DER. cryptography refuses that (InvalidSetOrdering), openssl and other CAs accept it. We are
liberal: the proof of possession is verified over the certificationRequestInfo exactly as
received (the requester signed its own encoding; a verifier that re-encodes first would
accept a signature over bytes nobody sent), and only the copy cryptography reads is re-encoded
with the attributes in DER order (the same bytes, permuted). `CertificationRequest.der` stays
the request as received.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import AttributeOID, ExtensionOID, NameOID

from engine.scep._der import (
    ber_elements,
    ber_encodings,
    complete_name,
    contained,
    header,
    load,
    to_name,
)
from engine.scep._fastcsr import OID_EXTENSION_REQUEST, read_request
from engine.scep.algorithms import RSASSA_PSS_OID, DigestAlgorithm, x509_signature_algorithm
from engine.scep.errors import ScepError, ScepErrorReason
from engine.scep.identity import SigningKey

__all__ = ["CertificationRequest", "build_csr", "parse_csr"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def build_csr(
    private_key: SigningKey,
    subject: x509.Name,
    *,
    challenge_password: str | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[IPAddress] = (),
    serial_number: str | None = None,
    extensions: Sequence[x509.Extension[x509.ExtensionType]] = (),
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
) -> x509.CertificateSigningRequest:
    """A signed PKCS#10 request for `private_key`'s public key."""
    if serial_number is not None:
        subject = x509.Name([
            *subject.rdns,
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number)]
            ),
        ])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(a) for a in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    for ext in extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    if challenge_password is not None:
        builder = builder.add_attribute(
            AttributeOID.CHALLENGE_PASSWORD, challenge_password.encode("utf-8")
        )
    return builder.sign(private_key, digest.x509_hash_algorithm())


@dataclass(frozen=True, slots=True)
class CertificationRequest:
    """A parsed, signature-checked PKCS#10 request, read completely (see `parse_csr`)."""

    csr: x509.CertificateSigningRequest  # read from the DER-ordered copy (module docstring)
    challenge_password: str | None
    signature_digest: DigestAlgorithm  # the hash its proof-of-possession signature used
    signature_algorithm: str  # its signatureAlgorithm OID, e.g. sha1WithRSAEncryption
    der: bytes  # the request exactly as received
    extension_request: bytes = b""  # its extensionRequest's Extensions (DER), b"" if none

    @property
    def subject(self) -> x509.Name:
        return self.csr.subject

    @property
    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        key = self.csr.public_key()
        assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)  # parse_csr
        return key

    @property
    def dns_names(self) -> tuple[str, ...]:
        san = self._san()
        return tuple(san.get_values_for_type(x509.DNSName)) if san else ()

    @property
    def ip_addresses(self) -> tuple[IPAddress, ...]:
        san = self._san()
        if san is None:
            return ()
        return tuple(a for a in san.get_values_for_type(x509.IPAddress)
                     if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address))

    def _san(self) -> x509.SubjectAlternativeName | None:
        try:
            return self.csr.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None


_WHAT = "PKCS#10 request"


def parse_csr(der: bytes) -> CertificationRequest:
    """Parse a DER PKCS#10 request completely, verify its signature, extract its challenge.

    Raises only ScepError: BAD_CSR_SIGNATURE (badMessageCheck) when the signature does not
    verify, UNSUPPORTED_ALGORITHM (badAlg) for a key or signature algorithm we cannot check,
    MALFORMED or BAD_ATTRIBUTE (badRequest) for anything else a caller could trip over.

    A request of the plain shape every peer sends is checked by the DER walker of
    engine/scep/_fastcsr.py instead of asn1crypto (the same checks, see there); anything
    else, and every refusal, goes through asn1crypto."""
    raw = read_request(der, _check_extension_request) if isinstance(der, bytes) else None
    if raw is None:
        request = load(asn1_csr.CertificationRequest, der, _WHAT)
        with contained(_WHAT):
            info = request["certification_request_info"]
            to_name(info["subject"], f"{_WHAT} subject")
            challenge, extensions = _read_attributes(info["attributes"])
            signed, ordered = _signed_and_der_ordered(bytes(der))
    else:
        challenge, extensions = raw.challenge_password, raw.extension_request
        signed, ordered = raw.info, der
    with contained(_WHAT):
        csr = x509.load_der_x509_csr(ordered)
        algorithm, digest = _verify_proof_of_possession(csr, signed)
        parsed = CertificationRequest(csr=csr, challenge_password=challenge,
                                      signature_digest=digest, signature_algorithm=algorithm,
                                      der=bytes(der), extension_request=extensions)
        _read_everything(parsed)
        return parsed


def _signed_and_der_ordered(der: bytes) -> tuple[bytes, bytes]:
    """(the certificationRequestInfo exactly as received, the whole request with the SET OF
    attributes sorted as DER requires, X.690 §11.6). A request already in DER order comes back
    unchanged; other BER liberties (indefinite lengths...) are left for cryptography to refuse."""
    info, *rest = ber_encodings(load(asn1_csr.CertificationRequest, der, _WHAT).contents)
    *fields, attributes = ber_encodings(ber_elements(info)[0][3])
    cls, _, tag, attrs_contents = ber_elements(attributes)[0]
    if (cls, tag) != (2, 0):  # not the [0] attributes: nothing to reorder
        return info, der
    sorted_attrs = b"".join(sorted(ber_encodings(attrs_contents)))
    info_body = b"".join(fields) + header(0xA0, len(sorted_attrs)) + sorted_attrs
    body = header(0x30, len(info_body)) + info_body + b"".join(rest)
    return info, header(0x30, len(body)) + body


def _verify_proof_of_possession(
    csr: x509.CertificateSigningRequest, signed: bytes,
) -> tuple[str, DigestAlgorithm]:
    """Check the request's signature over `signed` (its certificationRequestInfo as received)
    with its own public key (RFC 2986 §4.2: the signature is made "with the certification
    request subject's private key"); return (signatureAlgorithm OID, digest)."""
    key = csr.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        kind = type(key).__name__.removesuffix("PublicKey").lstrip("_")
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        f"{_WHAT}: its key is {kind}; only RSA and EC keys can be certified")
    oid = csr.signature_algorithm_oid.dotted_string
    signature = csr.signature
    try:
        if oid == RSASSA_PSS_OID:
            digest = DigestAlgorithm.from_hash(csr.signature_hash_algorithm)
            pss = csr.signature_algorithm_parameters
            if not isinstance(key, rsa.RSAPublicKey) or not isinstance(pss, padding.PSS):
                raise _misfit(oid, key)
            key.verify(signature, signed, pss, digest.hash_algorithm())
            return oid, digest
        family, digest = x509_signature_algorithm(oid)
        if family == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), digest.hash_algorithm())
        elif family == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(digest.hash_algorithm()))
        else:
            raise _misfit(oid, key)
    except InvalidSignature:
        raise ScepError(ScepErrorReason.BAD_CSR_SIGNATURE,
                        f"{_WHAT}: the signature does not verify "
                        "(no proof of possession)") from None
    return oid, digest


def _misfit(oid: str, key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> ScepError:
    kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "EC"
    return ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                     f"{_WHAT}: signature algorithm {oid} does not fit its {kind} key")


def _read_attributes(attributes: asn1_csr.CRIAttributes) -> tuple[str | None, bytes]:
    """Check every attribute; return the challenge password, if any, and the extensionRequest's
    Extensions (DER; b"" if none)."""
    seen: set[str] = set()
    challenge: str | None = None
    extensions = b""
    for attr in attributes:
        oid = attr["type"].dotted
        label = attr["type"].native
        _, values = ber_elements(attr.contents)  # type OID, SET OF value
        # RFC 2985 §5.4.1/§5.4.2: challengePassword and extensionRequest are "SINGLE VALUE
        # TRUE"; other attributes are refused with more than one value too, as cryptography
        # (whose CertificateSigningRequest our callers read) cannot represent them.
        if oid in seen or len(ber_elements(values[3])) != 1:
            raise ScepError(ScepErrorReason.BAD_ATTRIBUTE,
                            f"{_WHAT}: attribute {label} must occur once, with one value")
        seen.add(oid)
        if oid == AttributeOID.CHALLENGE_PASSWORD.dotted_string:
            challenge = _challenge(attr["values"])
        elif oid == OID_EXTENSION_REQUEST:
            with contained(f"{_WHAT} extensionRequest"):
                extensions = attr["values"][0].dump()
                _check_extension_request(extensions)
    return challenge, extensions


def _challenge(values: asn1_csr.SetOfDirectoryString) -> str:
    try:
        value: object = values[0].native
    except ValueError:  # not a DirectoryString choice, or bytes that do not decode
        value = None
    if not isinstance(value, str):
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE,
                        f"{_WHAT}: challengePassword is not a character string")
    return value


def _check_extension_request(extensions: bytes) -> None:
    """Read the extensionRequest's Extensions (DER) as our callers do (asn1crypto: OIDs,
    criticality, raw values; the subjectAltName decoded), besides cryptography's parse in
    `_read_everything`."""
    for ext in asn1_x509.Extensions.load(extensions, strict=True):
        _ = ext["extn_id"].dotted, ext["critical"].native, ext["extn_value"].contents
        if ext["extn_id"].dotted == ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string:
            _ = ext["extn_value"].parsed.native


def _read_everything(parsed: CertificationRequest) -> None:
    """Read with cryptography whatever a caller may read (it parses all of these lazily)."""
    csr = parsed.csr
    with contained(f"{_WHAT} subject"):
        complete_name(csr.subject)
    _ = parsed.public_key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    with contained(f"{_WHAT} extensionRequest"):
        _ = [ext.value for ext in csr.extensions]
        _ = parsed.dns_names, parsed.ip_addresses
    with contained(f"{_WHAT} attributes"):
        _ = [(attr.oid, attr.value) for attr in csr.attributes]
