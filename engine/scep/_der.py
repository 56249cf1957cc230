"""Internal helpers over asn1crypto: strict loading, error containment, conversions.

asn1crypto parses lazily, so a malformed inner field can raise on *any* later access. Every
public parse function therefore runs its whole body inside `contained(...)`, which turns the
exceptions a malformed input can provoke in asn1crypto or cryptography into `ScepError`.

cryptography is lazy too: a certificate, CRL or PKCS#10 request that loads can still raise
(KeyError, ValueError, UnsupportedAlgorithm...) when a caller first reads its subject, its
extensions or its public key. What a parse function hands out is therefore read completely
inside the containment first (`load_certificate`, `complete_certificate`, `load_crl`,
`complete_name`), so a caller never meets a parse error outside the core.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator
from typing import Any, TypeVar

from asn1crypto import core, parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from engine.scep.errors import ScepError, ScepErrorReason

T = TypeVar("T", bound=core.Asn1Value)

# What asn1crypto/cryptography raise on bad input (UnicodeDecodeError is a ValueError;
# cryptography's InvalidVersion, DuplicateExtension, UnsupportedGeneralNameType are not).
_PARSE_ERRORS = (
    ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError,
    x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
)


@contextlib.contextmanager
def contained(what: str) -> Iterator[None]:
    """Re-raise library parse errors inside the block as ScepError(MALFORMED/...)."""
    try:
        yield
    except ScepError:
        raise
    except UnsupportedAlgorithm as e:
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM, f"{what}: {e}") from None
    except _PARSE_ERRORS as e:
        first_line = str(e).strip().split("\n", 1)[0]  # asn1crypto appends "while parsing" lines
        if isinstance(e, KeyError):  # cryptography looking up a tag it has no type for
            first_line = f"unexpected ASN.1 type or value {first_line}"
        raise ScepError(ScepErrorReason.MALFORMED, f"{what}: malformed ({first_line})") from None


def load(spec: type[T], der: bytes, what: str) -> T:
    """Parse DER strictly (no trailing bytes) and force the outer parse."""
    if not isinstance(der, bytes | bytearray | memoryview):
        raise TypeError(f"{what}: expected bytes, got {type(der).__name__}")
    with contained(what):
        value = spec.load(bytes(der), strict=True)
        _ = value.contents  # header and length are checked here
        return typing.cast(T, value)


def ber_elements(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split concatenated BER elements into (class, method, tag, contents)."""
    out = []
    pos = 0
    while pos < len(data):
        cls, method, tag, head, contents, trailer = parser.parse(data[pos:], strict=False)
        out.append((cls, method, tag, contents))
        pos += len(head) + len(contents) + len(trailer)
    return out


def ber_encodings(data: bytes) -> list[bytes]:
    """Split concatenated BER elements into their complete encodings, byte for byte."""
    out = []
    pos = 0
    while pos < len(data):
        _, _, _, head, contents, trailer = parser.parse(data[pos:], strict=False)
        size = len(head) + len(contents) + len(trailer)
        out.append(data[pos:pos + size])
        pos += size
    return out


def ber_octets(method: int, contents: bytes, depth: int = 0) -> bytes:
    """The value of an OCTET STRING in primitive or (BER) constructed form.

    Go's pkcs7 (micromdm) sends EnvelopedData's encryptedContent constructed: [0] holding
    OCTET STRING segments; asn1crypto refuses that, so the segments are joined here."""
    if method == 0:
        return contents
    if depth > 8:
        raise ValueError("OCTET STRING nested too deeply")
    parts = []
    for cls, sub_method, tag, sub in ber_elements(contents):
        if cls != 0 or tag != 4:
            raise ValueError("constructed OCTET STRING holds a non-OCTET STRING")
        parts.append(ber_octets(sub_method, sub, depth + 1))
    return b"".join(parts)


def header(tag: int, length: int) -> bytes:
    """A DER tag + definite length."""
    if length < 0x80:
        return bytes([tag, length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body


def to_certificate(value: asn1_x509.Certificate, what: str) -> x509.Certificate:
    return load_certificate(value.dump(), what)


def load_certificate(der: bytes, what: str) -> x509.Certificate:
    """A DER certificate, parsed completely (see `complete_certificate`)."""
    with contained(what):
        return complete_certificate(x509.load_der_x509_certificate(der), what)


def complete_certificate(cert: x509.Certificate, what: str) -> x509.Certificate:
    """Read every part of `cert` that cryptography parses lazily (version, names, validity,
    extensions, public key), so a malformed one fails here as a ScepError."""
    with contained(what):
        _ = cert.version, cert.serial_number, cert.signature_algorithm_oid
        _ = cert.not_valid_before_utc, cert.not_valid_after_utc
    with contained(f"{what} issuer"):
        complete_name(cert.issuer)
    with contained(f"{what} subject"):
        complete_name(cert.subject)
    with contained(f"{what} extensions"):
        _ = [ext.value for ext in cert.extensions]
    with contained(f"{what} public key"):
        _ = cert.public_key()
    return cert


def load_crl(der: bytes, what: str) -> x509.CertificateRevocationList:
    """A DER CRL, parsed completely: issuer, times, extensions and every revoked entry."""
    with contained(what):
        crl = x509.load_der_x509_crl(der)
    with contained(f"{what} issuer"):
        complete_name(crl.issuer)
    with contained(what):
        _ = crl.last_update_utc, crl.next_update_utc, crl.signature_algorithm_oid
        _ = [ext.value for ext in crl.extensions]
        for revoked in crl:
            _ = revoked.serial_number, revoked.revocation_date_utc
            _ = [ext.value for ext in revoked.extensions]
        return crl


def complete_name(name: x509.Name) -> None:
    """Read each attribute value and both renderings of a cryptography Name (raises on a
    value cryptography cannot represent; call inside `contained`)."""
    _ = [attr.value for attr in name]
    _ = name.rfc4514_string(), name.public_bytes()


def to_asn1_certificate(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def to_asn1_name(name: x509.Name) -> asn1_x509.Name:
    return asn1_x509.Name.load(name.public_bytes())


def to_name(name: asn1_x509.Name, what: str) -> x509.Name:
    """asn1crypto Name -> cryptography Name (values kept; string types may normalise).

    Every value must be a character string of a type its attribute allows (X.520: e.g. a
    DirectoryString for commonName) that decodes; anything else is MALFORMED, naming the
    attribute and what it holds."""
    with contained(what):
        rdns: list[x509.RelativeDistinguishedName] = []
        for rdn in name.chosen:
            attrs = []
            for ava in rdn:
                oid = x509.ObjectIdentifier(ava["type"].dotted)
                value = _string_value(ava, what)
                try:  # cryptography checks sizes, e.g. countryName is two letters (X.520)
                    attrs.append(x509.NameAttribute(oid, value))
                except ValueError as e:
                    raise ScepError(ScepErrorReason.MALFORMED,
                                    f"{what}: attribute {ava['type'].native}: {e}") from None
            if not attrs:
                # X.501: RelativeDistinguishedName ::= SET SIZE (1..MAX) OF ...
                raise ScepError(ScepErrorReason.MALFORMED,
                                f"{what}: an empty relative distinguished name")
            rdns.append(x509.RelativeDistinguishedName(attrs))
        return x509.Name(rdns)


_UNIVERSAL_TYPES = {
    1: "BOOLEAN", 2: "INTEGER", 3: "BIT STRING", 4: "OCTET STRING", 5: "NULL",
    6: "OBJECT IDENTIFIER", 10: "ENUMERATED", 12: "UTF8String", 16: "SEQUENCE", 17: "SET",
    18: "NumericString", 19: "PrintableString", 20: "TeletexString", 22: "IA5String",
    23: "UTCTime", 24: "GeneralizedTime", 26: "VisibleString", 27: "GeneralString",
    28: "UniversalString", 30: "BMPString",
}
_STRING_TAGS = {12, 18, 19, 20, 22, 26, 27, 28, 30}


def _string_value(ava: asn1_x509.NameTypeAndValue, what: str) -> str:
    """The text of one AttributeTypeAndValue, or a clear MALFORMED."""
    try:
        value: Any = ava["value"].native
    except ValueError:  # a type the attribute does not allow, or bytes that do not decode
        value = None
    if isinstance(value, str):
        return value
    label = ava["type"].native
    elements = ber_elements(ava.contents)
    cls, _, tag, _ = elements[1] if len(elements) == 2 else (0, 0, -1, b"")
    kind = _UNIVERSAL_TYPES.get(tag, f"[{tag}]") if cls == 0 else f"[class {cls} tag {tag}]"
    problem = ("that does not decode or that this attribute does not allow"
               if cls == 0 and tag in _STRING_TAGS else "instead of a character string")
    raise ScepError(ScepErrorReason.MALFORMED,
                    f"{what}: attribute {label} has a value of type {kind} {problem}")


def cert_matches(
    cert: asn1_x509.Certificate, issuer: asn1_x509.Name | None, serial: int | None,
    ski: bytes | None,
) -> bool:
    """Does `cert` match a CMS SignerIdentifier / RecipientIdentifier?

    Names are compared as RFC 5280 §7.1 says (asn1crypto's prepared comparison: case, spaces
    and string types folded), which costs more than the rest of finding a recipient; the same
    encoding, byte for byte (what every client we meet sends: it copies the certificate's
    issuer), is equal without it."""
    if ski is not None:
        return bool(cert.key_identifier == ski)
    if cert.serial_number != serial or issuer is None:
        return False
    return cert.issuer.dump() == issuer.dump() or bool(cert.issuer == issuer)

