"""A DER walker for the PKCS#10 requests SCEP peers send and their subject names: the fast
paths of `parse_csr` and of the CA's `profile.name_from_der`.

Theory of operation. `parse_csr` (engine/scep/csr.py) checks a request with asn1crypto (the
subject's values, each attribute) before cryptography loads it; asn1crypto builds an object
tree for that, and it was the largest cost of reading a pkiMessage after the RSA decryption.
This module walks the same bytes with plain slicing (the walker of engine/scep/_fastder.py) and
makes the same checks for the shapes peers send:

- strict DER: definite lengths, no trailing bytes, version 0, the attributes already in DER
  order (X.690 §11.6; strongSwan's are not, and go to the full parser, which reorders them);
- subject values: PrintableString, UTF8String or IA5String, for an attribute whose asn1crypto
  type is DirectoryString (commonName, serialNumber, countryName, ...) or that asn1crypto does
  not know (e.g. IOS's unstructuredName), decoded as asn1crypto decodes them, and accepted by
  `x509.NameAttribute` (what `_der.to_name` builds);
- attributes: challengePassword (the same three string types) and extensionRequest (checked by
  the same asn1crypto reading `csr._check_extension_request` does), each once with one value.

For anything else (another string type, an e-mail address or domainComponent, another
attribute, a value that does not decode) `read_request` returns None and `parse_csr` runs the
full parser, which also words the errors. So the fast path never accepts what the full parser
refuses, and for what it accepts it yields the same values (tests/scep/test_scep_fastcsr.py).

`read_name` rebuilds a requested subject as the CA's profile does with asn1crypto (each value
keeps its string type; a value of an attribute asn1crypto does not know is written back as a
UTF8String, as asn1crypto's `Any` gives the profile no type), for the same three string types;
None for any other name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import AttributeOID

from engine.scep._der import _PARSE_ERRORS
from engine.scep._fastder import _children, _expect, _Shape, oid_text

_SEQUENCE, _SET, _OID, _INTEGER, _BIT_STRING, _CTX0 = 0x30, 0x31, 0x06, 0x02, 0x03, 0xA0
_CHALLENGE = AttributeOID.CHALLENGE_PASSWORD.dotted_string
OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"

# The string types read here, decoded as asn1crypto decodes them (core.PrintableString is
# latin-1, IA5String ASCII, UTF8String UTF-8); all three are DirectoryString choices.
_DECODINGS = {0x13: "latin-1", 0x16: "ascii", 0x0C: "utf-8"}
_TYPES = {0x13: _ASN1Type.PrintableString, 0x16: _ASN1Type.IA5String,
          0x0C: _ASN1Type.UTF8String}
# Name attributes whose values asn1crypto reads as a DirectoryString, and all it knows.
_KNOWN = asn1_x509.NameType._map  # dotted OID -> asn1crypto's name for it
_DIRECTORY_STRING = frozenset(
    oid for oid, label in _KNOWN.items()
    if asn1_x509.NameTypeAndValue._oid_specs.get(label) is asn1_x509.DirectoryString)

ExtensionCheck = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class RawRequest:
    """What `parse_csr` needs of a plain-DER request besides cryptography's reading."""

    info: bytes  # certificationRequestInfo, exactly as received (what the signature covers)
    challenge_password: str | None
    extension_request: bytes  # the extensionRequest's Extensions (DER), b"" when absent


def read_request(der: bytes, check_extensions: ExtensionCheck) -> RawRequest | None:
    """The fields of PKCS#10 request `der` if it has the plain shape and passes the checks
    the full parser makes first (`check_extensions` reads an extensionRequest as it does),
    else None."""
    try:
        return _read(der, check_extensions)
    except (_Shape, *_PARSE_ERRORS):
        return None


def _read(der: bytes, check_extensions: ExtensionCheck) -> RawRequest:
    end = len(der)
    start, stop = _expect(der, 0, end, _SEQUENCE)
    if stop != end:
        raise _Shape  # trailing bytes
    outer = _children(der, start, stop)  # certificationRequestInfo, signatureAlgorithm, signature
    if [c[0] for c in outer] != [_SEQUENCE, _SEQUENCE, _BIT_STRING]:
        raise _Shape
    _, info_pos, info_start, info_end = outer[0]
    fields = _children(der, info_start, info_end)  # version, subject, subjectPKInfo, [0] attrs
    if [f[0] for f in fields] != [_INTEGER, _SEQUENCE, _SEQUENCE, _CTX0] \
            or der[fields[0][2]:fields[0][3]] != b"\x00":
        raise _Shape
    _check_subject(der, fields[1][2], fields[1][3])
    challenge, extensions = _attributes(der, fields[3][2], fields[3][3], check_extensions)
    return RawRequest(der[info_pos:info_end], challenge, extensions)


def _check_subject(der: bytes, start: int, stop: int) -> None:
    """RDNSequence: every RDN non-empty, every value a string `_der.to_name` accepts."""
    for rdn in _rdns(der, start, stop):
        for oid, _, text in rdn:
            x509.NameAttribute(x509.ObjectIdentifier(oid), text)


def read_name(der: bytes) -> x509.Name | None:
    """The Name (DER) `der` as `profile.name_from_der` builds it, or None if it is not the
    plain shape (see the module docstring)."""
    try:
        start, stop = _expect(der, 0, len(der), _SEQUENCE)
        if stop != len(der):
            raise _Shape
        return x509.Name([x509.RelativeDistinguishedName([
            x509.NameAttribute(x509.ObjectIdentifier(oid), text,
                               _type=_TYPES[tag] if oid in _KNOWN else _ASN1Type.UTF8String)
            for oid, tag, text in rdn]) for rdn in _rdns(der, start, stop)])
    except (_Shape, *_PARSE_ERRORS):
        return None


def _rdns(der: bytes, start: int, stop: int) -> list[list[tuple[str, int, str]]]:
    """The RDNs of an RDNSequence's contents as (OID, tag, text) each: every RDN non-empty,
    every value one of the three string types, of an attribute whose asn1crypto type is
    DirectoryString or that asn1crypto does not know."""
    rdns = []
    for tag, _, rdn_start, rdn_end in _children(der, start, stop):
        avas = _children(der, rdn_start, rdn_end)
        if tag != _SET or not avas:
            raise _Shape
        rdn = []
        for ava_tag, _, ava_start, ava_end in avas:
            parts = _children(der, ava_start, ava_end)
            if ava_tag != _SEQUENCE or len(parts) != 2 or parts[0][0] != _OID:
                raise _Shape
            oid = oid_text(der[parts[0][2]:parts[0][3]])
            if oid in _KNOWN and oid not in _DIRECTORY_STRING:
                raise _Shape  # e-mail, domainComponent, ...: asn1crypto has its own rules
            rdn.append((oid, parts[1][0], _text(der, parts[1])))
        rdns.append(rdn)
    return rdns


def _attributes(der: bytes, start: int, stop: int, check_extensions: ExtensionCheck,
                ) -> tuple[str | None, bytes]:
    """(challengePassword, extensionRequest DER) of the [0] attributes, in DER order, each
    attribute once with one value, no other attribute."""
    challenge: str | None = None
    extensions = b""
    seen: set[str] = set()
    previous = b""
    for tag, pos, attr_start, attr_end in _children(der, start, stop):
        encoding = der[pos:attr_end]
        if encoding < previous:
            raise _Shape  # not in DER order: the full parser reorders cryptography's copy
        previous = encoding
        parts = _children(der, attr_start, attr_end)
        if tag != _SEQUENCE or len(parts) != 2 or parts[0][0] != _OID or parts[1][0] != _SET:
            raise _Shape
        oid = oid_text(der[parts[0][2]:parts[0][3]])
        values = _children(der, parts[1][2], parts[1][3])
        if oid in seen or len(values) != 1:
            raise _Shape
        seen.add(oid)
        if oid == _CHALLENGE:
            challenge = _text(der, values[0])
        elif oid == OID_EXTENSION_REQUEST:
            extensions = der[values[0][1]:values[0][3]]
            check_extensions(extensions)
        else:
            raise _Shape
    return challenge, extensions


def _text(der: bytes, element: tuple[int, int, int, int]) -> str:
    tag, _, start, stop = element
    encoding = _DECODINGS.get(tag)
    if encoding is None:
        raise _Shape
    return der[start:stop].decode(encoding)
