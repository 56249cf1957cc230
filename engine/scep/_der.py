"""Internal helpers over asn1crypto: strict loading, error containment, conversions.

asn1crypto parses lazily, so a malformed inner field can raise on *any* later access. Every
public parse function therefore runs its whole body inside `contained(...)`, which turns the
exceptions a malformed input can provoke in asn1crypto or cryptography into `ScepError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
        raise ScepError(ScepErrorReason.MALFORMED, f"{what}: malformed ({e})") from None


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
    with contained(what):
        return x509.load_der_x509_certificate(value.dump())


def to_asn1_certificate(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def to_asn1_name(name: x509.Name) -> asn1_x509.Name:
    return asn1_x509.Name.load(name.public_bytes())


def to_name(name: asn1_x509.Name, what: str) -> x509.Name:
    """asn1crypto Name -> cryptography Name (values kept; string types may normalise)."""
    with contained(what):
        rdns: list[x509.RelativeDistinguishedName] = []
        for rdn in name.chosen:
            attrs = []
            for ava in rdn:
                oid = x509.ObjectIdentifier(ava["type"].dotted)
                value: Any = ava["value"].native
                if not isinstance(value, str):
                    raise ScepError(ScepErrorReason.MALFORMED,
                                    f"{what}: non-string name attribute {oid.dotted_string}")
                attrs.append(x509.NameAttribute(oid, value))
            rdns.append(x509.RelativeDistinguishedName(attrs))
        return x509.Name(rdns)


def cert_matches(
    cert: asn1_x509.Certificate, issuer: asn1_x509.Name | None, serial: int | None,
    ski: bytes | None,
) -> bool:
    """Does `cert` match a CMS SignerIdentifier / RecipientIdentifier?"""
    if ski is not None:
        return bool(cert.key_identifier == ski)
    return bool(cert.issuer == issuer and cert.serial_number == serial)


def cms_time(when: dt.datetime) -> dict[str, dt.datetime]:
    """RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    if when.tzinfo is None:
        raise ValueError("signing_time must be timezone-aware")
    when = when.astimezone(dt.UTC)
    return {"utc_time" if 1950 <= when.year < 2050 else "general_time": when}
