"""The revoked list of a CRL as an index: serial -> entry, built once per CRL by a DER walk.

Theory of operation. `cryptography` parses a CRL quickly but builds one Python object per
entry only when asked, at several microseconds each: a 100,000-entry CRL would take about a
second to index that way, and a lookup by serial is a linear scan. This module walks the
DER of `revokedCertificates` (RFC 5280 §5.1) with plain slicing instead, keeping only each
entry's serial and its offset; the revocation date and reason are decoded when a serial is
found. The walk understands strict DER (engine/der.py: definite lengths, low tag numbers),
which is what a CRL whose signature verified is; anything else raises `CrlShape`, and the
fetch refuses the CRL (it is never half-indexed).

While walking, every entry's extensions are checked: RFC 5280 §5.3: "If a CRL contains a
critical CRL entry extension that the application cannot process, then the application
MUST NOT use that CRL to determine the status of any certificates." We process reasonCode
and invalidityDate (and ignore holdInstructionCode, never critical); certificateIssuer
belongs to indirect CRLs, which we do not use.

A serial listed twice (a CA's bug: RFC 5280 lists a certificate once) is indexed at the entry
that revokes, and of two that do, the earlier one (`_weightier`): never the later in the list.

Indexes are memoized by the CRL's SHA-256 (its content), at most MAX_INDEXES of them.
"""

from __future__ import annotations

import calendar
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.der import DerShape
from engine.der import element as _element
from engine.revocation.model import REASONS, Revoked

if TYPE_CHECKING:
    from engine.revocation.model import CachedCrl
    from engine.revocation.store import CrlBlobs

MAX_INDEXES = 64

_SEQ, _INT, _ENUM, _BOOL, _OCTETS, _OID = 0x30, 0x02, 0x0A, 0x01, 0x04, 0x06
_UTCTIME, _GENTIME, _CTX0 = 0x17, 0x18, 0xA0
_REASON_CODE = bytes.fromhex("551d15")  # 2.5.29.21
_INVALIDITY_DATE = bytes.fromhex("551d18")  # 2.5.29.24
_HOLD_CODE = bytes.fromhex("551d17")  # 2.5.29.23
_PROCESSED = (_REASON_CODE, _INVALIDITY_DATE, _HOLD_CODE)


CrlShape = DerShape
"""The bytes are not a strict-DER CRL this walker reads, or an entry cannot be used."""


def time_us(tag: int, text: bytes) -> int:
    """UTCTime (YYMMDDHHMMSSZ; RFC 5280 §4.1.2.5.1: YY < 50 is 20YY) or GeneralizedTime
    (YYYYMMDDHHMMSSZ) as µs since the epoch."""
    if tag == _UTCTIME and len(text) == 13 and text[-1:] == b"Z":
        yy = int(text[:2])
        year, rest = (2000 + yy if yy < 50 else 1900 + yy), text[2:12]
    elif tag == _GENTIME and len(text) == 15 and text[-1:] == b"Z":
        year, rest = int(text[:4]), text[4:14]
    else:
        raise CrlShape("a time that is not UTCTime or GeneralizedTime in Zulu")
    fields = (year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]),
              int(rest[8:10]))
    return calendar.timegm(fields) * 1_000_000


def revoked_list(der: bytes) -> tuple[int, int]:
    """(start, end) of the contents of `revokedCertificates` in a CRL's DER; (0, 0) when the
    CRL has none."""
    _, cl_start, cl_end = _element(der, 0, len(der))
    tag, pos, tbs_end = _element(der, cl_start, cl_end)
    if tag != _SEQ:
        raise CrlShape("no TBSCertList")
    tag, _, end = _element(der, pos, tbs_end)
    if tag == _INT:  # version
        pos = end
        tag, _, end = _element(der, pos, tbs_end)
    pos = _element(der, end, tbs_end)[2]  # signature algorithm done; issuer skipped
    pos = _element(der, pos, tbs_end)[2]  # thisUpdate
    while pos < tbs_end:
        tag, start, end = _element(der, pos, tbs_end)
        if tag == _SEQ:
            return start, end
        if tag not in (_UTCTIME, _GENTIME):  # nextUpdate; else crlExtensions [0]
            break
        pos = end
    return 0, 0


@dataclass(frozen=True, slots=True)
class CrlIndex:
    """Each revoked serial's entry offset in `der`."""

    der: bytes
    offsets: dict[int, int]

    def __len__(self) -> int:
        return len(self.offsets)

    def lookup(self, serial: int) -> Revoked | None:
        pos = self.offsets.get(serial)
        if pos is None:
            return None
        return _entry(self.der, pos, serial)


def build_index(der: bytes) -> CrlIndex:
    """The index of a CRL's entries; CrlShape if the list cannot be read or an entry has a
    critical extension we cannot process (RFC 5280 §5.3, above)."""
    start, end = revoked_list(der)
    offsets: dict[int, int] = {}
    checked: dict[bytes, None] = {}  # entry extensions already seen acceptable (reason codes)
    pos = start
    while pos < end:
        tag, e_start, e_end = _element(der, pos, end)
        if tag != _SEQ:
            raise CrlShape("a revoked entry that is not a SEQUENCE")
        itag, i_start, i_end = _element(der, e_start, e_end)
        if itag != _INT:
            raise CrlShape("a revoked entry without a serial number")
        serial = int.from_bytes(der[i_start:i_end], "big", signed=True)
        offsets[serial] = pos if serial not in offsets else _weightier(der, offsets[serial],
                                                                       pos, serial)
        after_date = _element(der, i_end, e_end)[2]
        if after_date < e_end:
            exts = der[after_date:e_end]
            if exts not in checked:
                _check_entry_extensions(exts)
                checked[exts] = None
        pos = e_end
    return CrlIndex(der, offsets)


def _weightier(der: bytes, kept: int, other: int, serial: int) -> int:
    """Of two entries for one serial (RFC 5280 lists a certificate once; a CA that lists it
    twice is read the safe way): the offset of the one that revokes (a removeFromCRL entry
    does not: `revocation_of`), and of two that do, the one revoked earlier. Never the order
    of the list: a later entry must not unrevoke a certificate."""
    a, b = _entry(der, kept, serial), _entry(der, other, serial)
    if (a.reason == "removeFromCRL") != (b.reason == "removeFromCRL"):
        return kept if b.reason == "removeFromCRL" else other
    return kept if a.revoked_at <= b.revoked_at else other


def _extensions(exts: bytes) -> list[tuple[bytes, bool, bytes]]:
    """(OID contents, critical, extnValue contents) of each entry extension."""
    tag, start, end = _element(exts, 0, len(exts))
    if tag != _SEQ:
        raise CrlShape("entry extensions that are not a SEQUENCE")
    found = []
    pos = start
    while pos < end:
        _, x_start, x_end = _element(exts, pos, end)
        otag, o_start, o_end = _element(exts, x_start, x_end)
        if otag != _OID:
            raise CrlShape("an entry extension without an OID")
        tag, v_start, v_end = _element(exts, o_end, x_end)
        critical = False
        if tag == _BOOL:
            critical = exts[v_start:v_end] != b"\x00"
            tag, v_start, v_end = _element(exts, v_end, x_end)
        if tag != _OCTETS:
            raise CrlShape("an entry extension without a value")
        found.append((exts[o_start:o_end], critical, exts[v_start:v_end]))
        pos = x_end
    return found


def _check_entry_extensions(exts: bytes) -> None:
    for oid, critical, _ in _extensions(exts):
        if critical and oid not in _PROCESSED:
            raise CrlShape("an entry has a critical extension we cannot process "
                           f"({_oid_text(oid)})")


def _entry(der: bytes, pos: int, serial: int) -> Revoked:
    _, e_start, e_end = _element(der, pos, len(der))
    i_end = _element(der, e_start, e_end)[2]
    dtag, d_start, d_end = _element(der, i_end, e_end)
    reason = "unspecified"
    if d_end < e_end:
        for oid, _, value in _extensions(der[d_end:e_end]):
            if oid == _REASON_CODE:
                tag, v_start, v_end = _element(value, 0, len(value))
                code = int.from_bytes(value[v_start:v_end], "big") if tag == _ENUM else 0
                reason = REASONS.get(code, "unspecified")
    return Revoked(serial, time_us(dtag, der[d_start:d_end]), reason)


def _oid_text(contents: bytes) -> str:
    parts, value = [], 0
    for b in contents:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    if not parts:
        return "?"
    first = min(parts[0] // 40, 2)
    return ".".join(map(str, [first, parts[0] - 40 * first, *parts[1:]]))


_INDEXES: OrderedDict[str, CrlIndex] = OrderedDict()


def index_of(sha256: str, der: bytes) -> CrlIndex:
    """The memoized index of the CRL `sha256` (whose bytes are `der`)."""
    idx = _INDEXES.get(sha256)
    if idx is None:
        idx = build_index(der)
        _INDEXES[sha256] = idx
        while len(_INDEXES) > MAX_INDEXES:
            _INDEXES.popitem(last=False)
    else:
        _INDEXES.move_to_end(sha256)
    return idx


def revocation_of(blobs: CrlBlobs, cached: CachedCrl, serial: int) -> Revoked | None:
    """The entry of `serial` on the cached CRL, or None when it is not revoked by it. The
    CRL's index is built once (from the blob store) and kept; `BlobMissing` when its bytes
    are gone or altered.

    An entry with reason removeFromCRL is not a revocation: RFC 5280 5.3.1 "The
    removeFromCRL (8) reason code is used only in delta CRLs and indicates that a
    certificate is to be removed from a CRL"; the cache holds complete CRLs only, where it
    has no business, and it is read as OpenSSL reads it (cert_crl: not revoked)."""
    idx = _INDEXES.get(cached.sha256)
    if idx is None:
        idx = index_of(cached.sha256, blobs.get(cached.sha256))
    entry = idx.lookup(serial)
    return None if entry is not None and entry.reason == "removeFromCRL" else entry


def remembered(sha256: str) -> CrlIndex:
    """The index `remember` kept for the CRL just fetched (KeyError if none is kept)."""
    return _INDEXES[sha256]


def remember(sha256: str, index: CrlIndex) -> None:
    """Keep an index built while verifying a fetched CRL (its bytes are `index.der`)."""
    _INDEXES[sha256] = index
    _INDEXES.move_to_end(sha256)
    while len(_INDEXES) > MAX_INDEXES:
        _INDEXES.popitem(last=False)
