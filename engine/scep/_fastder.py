"""A minimal DER walker for the one shape every SCEP peer sends: a strict-DER SignedData.

Theory of operation. asn1crypto builds a lazy object tree and pays Python calls for every
field it touches; reading a pkiMessage that way was the largest single cost of an enrollment
on the CA's side. This module walks the same bytes with plain slicing and hands back the
pieces `read_signed` needs as bytes. It understands only definite lengths, single-byte tags
and the field layout of RFC 5652 §5.1/§5.3 with one SignerInfo and signed attributes: for
anything else (BER indefinite lengths, a constructed eContent, two signers, no signed
attributes, a duplicated attribute, trailing bytes, a certificate choice other than
Certificate) it returns None, and the caller parses with asn1crypto as before, which also
produces the error messages. So this is only a fast path: it never accepts what the full
parser refuses, and for what it accepts it yields the same values (tests/scep check both
paths give equal results).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from engine.der import DerShape as _Shape  # not the shape this walker reads: the full parser's
from engine.der import element as _element

_SEQUENCE, _SET, _OID, _OCTETS, _INTEGER = 0x30, 0x31, 0x06, 0x04, 0x02
_CTX0, _CTX1 = 0xA0, 0xA1
_SKI = 0x80  # SignerIdentifier subjectKeyIdentifier [0] IMPLICIT


@dataclass(frozen=True, slots=True)
class RawSignedData:
    """The fields of a one-signer SignedData, as the bytes the sender encoded."""

    content_type: str  # eContentType, dotted
    content: bytes  # eContent's value; b"" when absent
    certificates: tuple[bytes, ...]  # each Certificate's DER
    signer_info: bytes  # the SignerInfo's DER
    digest_oid: str
    signature_oid: str
    signed_attrs: bytes  # the contents of [0] IMPLICIT signedAttrs
    attributes: dict[str, bytes]  # single-valued signed attributes: OID -> value DER
    signature: bytes


def _expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _element(buf, pos, end)
    if got != tag:
        raise _Shape
    return start, stop


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, contents start, contents end) of each element in [start, end)."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = _element(buf, pos, end)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


@functools.lru_cache(maxsize=256)
def oid_text(contents: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's contents (X.690 §8.19)."""
    if not contents or contents[-1] & 0x80:
        raise _Shape
    arcs: list[int] = []
    value = 0
    for byte in contents:
        if value == 0 and byte == 0x80:
            raise _Shape  # non-minimal arc encoding
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def _oid(buf: bytes, pos: int, end: int) -> str:
    start, stop = _expect(buf, pos, end, _OID)
    return oid_text(buf[start:stop])


def read_signed_data(der: bytes, signed_data_oid: str) -> RawSignedData | None:
    """The fields of ContentInfo(SignedData) `der`, or None if it is not the plain shape."""
    try:
        return _read(der, signed_data_oid)
    except (_Shape, IndexError, ValueError):
        return None


def _read(der: bytes, signed_data_oid: str) -> RawSignedData:
    end = len(der)
    start, stop = _expect(der, 0, end, _SEQUENCE)
    if stop != end:
        raise _Shape  # trailing bytes
    info = _children(der, start, stop)
    if len(info) != 2 or info[0][0] != _OID or info[1][0] != _CTX0:
        raise _Shape
    if oid_text(der[info[0][2]:info[0][3]]) != signed_data_oid:
        raise _Shape
    wrapper = _children(der, info[1][2], info[1][3])
    if len(wrapper) != 1 or wrapper[0][0] != _SEQUENCE:
        raise _Shape
    fields = _children(der, wrapper[0][2], wrapper[0][3])
    # version, digestAlgorithms, encapContentInfo, [0] certificates?, [1] crls?, signerInfos
    if len(fields) < 4 or [f[0] for f in fields[:3]] != [_INTEGER, _SET, _SEQUENCE] \
            or fields[-1][0] != _SET:
        raise _Shape
    middle = [f[0] for f in fields[3:-1]]
    if middle not in ([], [_CTX0], [_CTX1], [_CTX0, _CTX1]):
        raise _Shape
    content_type, content = _encapsulated(der, fields[2])
    certificates: tuple[bytes, ...] = ()
    if middle[:1] == [_CTX0]:
        certs = _children(der, fields[3][2], fields[3][3])
        if any(tag != _SEQUENCE for tag, *_ in certs):
            raise _Shape  # an attribute certificate or other choice
        certificates = tuple(der[pos:cend] for _, pos, _, cend in certs)
    signers = _children(der, fields[-1][2], fields[-1][3])
    if len(signers) != 1 or signers[0][0] != _SEQUENCE:
        raise _Shape
    _, si_pos, si_start, si_end = signers[0]
    return _signer_info(der, si_pos, si_start, si_end, content_type, content, certificates)


def _encapsulated(der: bytes, field: tuple[int, int, int, int]) -> tuple[str, bytes]:
    parts = _children(der, field[2], field[3])
    if not parts or parts[0][0] != _OID or len(parts) > 2:
        raise _Shape
    content_type = oid_text(der[parts[0][2]:parts[0][3]])
    if len(parts) == 1:
        return content_type, b""
    if parts[1][0] != _CTX0:
        raise _Shape
    inner = _children(der, parts[1][2], parts[1][3])
    if len(inner) != 1 or inner[0][0] != _OCTETS:
        raise _Shape  # constructed (BER) OCTET STRING: the full parser joins it
    return content_type, der[inner[0][2]:inner[0][3]]


def _signer_info(der: bytes, si_pos: int, start: int, end: int, content_type: str,
                 content: bytes, certificates: tuple[bytes, ...]) -> RawSignedData:
    # version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature, [1]?
    parts = _children(der, start, end)
    if len(parts) not in (6, 7) or parts[0][0] != _INTEGER \
            or parts[1][0] not in (_SEQUENCE, _SKI) or parts[2][0] != _SEQUENCE \
            or parts[3][0] != _CTX0 or parts[4][0] != _SEQUENCE or parts[5][0] != _OCTETS \
            or (len(parts) == 7 and parts[6][0] != _CTX1):
        raise _Shape
    digest_oid = _oid(der, parts[2][2], parts[2][3])
    signature_oid = _oid(der, parts[4][2], parts[4][3])
    attributes: dict[str, bytes] = {}
    for tag, _, astart, aend in _children(der, parts[3][2], parts[3][3]):
        if tag != _SEQUENCE:
            raise _Shape
        pieces = _children(der, astart, aend)
        if len(pieces) != 2 or pieces[0][0] != _OID or pieces[1][0] != _SET:
            raise _Shape
        oid = oid_text(der[pieces[0][2]:pieces[0][3]])
        values = _children(der, pieces[1][2], pieces[1][3])
        if oid in attributes or len(values) != 1:
            raise _Shape  # the full parser refuses it with its message
        attributes[oid] = der[values[0][1]:values[0][3]]
    return RawSignedData(
        content_type=content_type, content=content, certificates=certificates,
        signer_info=der[si_pos:end], digest_oid=digest_oid, signature_oid=signature_oid,
        signed_attrs=der[parts[3][2]:parts[3][3]], attributes=attributes,
        signature=der[parts[5][2]:parts[5][3]])


def signer_issuer_and_serial(signer_info: bytes) -> tuple[bytes, int] | None:
    """The issuer Name (DER) and serial number a SignerInfo's sid names, if it is an
    IssuerAndSerialNumber (None for a subjectKeyIdentifier or another shape)."""
    try:
        start, stop = _expect(signer_info, 0, len(signer_info), _SEQUENCE)
        parts = _children(signer_info, start, stop)
        if len(parts) < 2 or parts[1][0] != _SEQUENCE:
            return None
        return _name_and_serial(signer_info, parts[1][2], parts[1][3])
    except (_Shape, IndexError, ValueError):
        return None


def certificate_issuer_and_serial(certificate: bytes) -> tuple[bytes, int] | None:
    """The issuer Name (DER, as the certificate encodes it) and serial number of a
    certificate, or None if it is not plain DER."""
    try:
        start, stop = _expect(certificate, 0, len(certificate), _SEQUENCE)
        tbs_start, tbs_stop = _expect(certificate, start, stop, _SEQUENCE)
        # TBSCertificate: [0] version?, serialNumber, signature, issuer, ...
        first = 1 if certificate[tbs_start] == _CTX0 else 0
        parts = _children(certificate, tbs_start, tbs_stop)
        if len(parts) < first + 3 or parts[first][0] != _INTEGER \
                or parts[first + 2][0] != _SEQUENCE:
            return None
        serial = parts[first]
        issuer = parts[first + 2]
        return (certificate[issuer[1]:issuer[3]],
                int.from_bytes(certificate[serial[2]:serial[3]], "big", signed=True))
    except (_Shape, IndexError, ValueError):
        return None


def _name_and_serial(buf: bytes, start: int, stop: int) -> tuple[bytes, int] | None:
    """IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }."""
    parts = _children(buf, start, stop)
    if len(parts) != 2 or parts[0][0] != _SEQUENCE or parts[1][0] != _INTEGER:
        return None
    return buf[parts[0][1]:parts[0][3]], int.from_bytes(buf[parts[1][2]:parts[1][3]], "big",
                                                         signed=True)


@dataclass(frozen=True, slots=True)
class RawEnvelope:
    """The fields of an EnvelopedData whose recipients are all key transport (KTRI)."""

    cipher_oid: str
    iv: bytes
    ciphertext: bytes
    recipients: tuple[tuple[bytes, int, str, bytes], ...]  # (issuer DER, serial, alg, key)


def read_enveloped_data(der: bytes, enveloped_data_oid: str) -> RawEnvelope | None:
    """The fields of ContentInfo(EnvelopedData) `der` when every RecipientInfo is a
    KeyTransRecipientInfo naming its certificate by issuer and serial and the encrypted
    content is primitive; None for any other shape (the full parser reads those)."""
    try:
        return _read_envelope(der, enveloped_data_oid)
    except (_Shape, IndexError, ValueError):
        return None


def _read_envelope(der: bytes, enveloped_data_oid: str) -> RawEnvelope:
    end = len(der)
    start, stop = _expect(der, 0, end, _SEQUENCE)
    if stop != end:
        raise _Shape
    info = _children(der, start, stop)
    if len(info) != 2 or info[0][0] != _OID or info[1][0] != _CTX0 \
            or oid_text(der[info[0][2]:info[0][3]]) != enveloped_data_oid:
        raise _Shape
    wrapper = _children(der, info[1][2], info[1][3])
    if len(wrapper) != 1 or wrapper[0][0] != _SEQUENCE:
        raise _Shape
    # version, recipientInfos, encryptedContentInfo (no originatorInfo, no unprotectedAttrs)
    fields = _children(der, wrapper[0][2], wrapper[0][3])
    if [f[0] for f in fields] != [_INTEGER, _SET, _SEQUENCE]:
        raise _Shape
    recipients = []
    for tag, _, rstart, rend in _children(der, fields[1][2], fields[1][3]):
        parts = _children(der, rstart, rend)  # version, rid, keyEncryptionAlgorithm, key
        if tag != _SEQUENCE or [p[0] for p in parts] != [_INTEGER, _SEQUENCE, _SEQUENCE,
                                                          _OCTETS]:
            raise _Shape  # another kind of RecipientInfo, or a key identifier rid
        sid = _name_and_serial(der, parts[1][2], parts[1][3])
        if sid is None:
            raise _Shape
        algorithm = _oid(der, parts[2][2], parts[2][3])
        recipients.append((*sid, algorithm, der[parts[3][2]:parts[3][3]]))
    eci = _children(der, fields[2][2], fields[2][3])
    if [e[0] for e in eci] != [_OID, _SEQUENCE, 0x80]:
        raise _Shape  # no content, or a constructed (BER) one: the full parser joins it
    cipher = _children(der, eci[1][2], eci[1][3])  # contentEncryptionAlgorithm { OID, IV }
    if [c[0] for c in cipher] != [_OID, _OCTETS]:
        raise _Shape
    return RawEnvelope(oid_text(der[cipher[0][2]:cipher[0][3]]),
                       der[cipher[1][2]:cipher[1][3]], der[eci[2][2]:eci[2][3]],
                       tuple(recipients))
