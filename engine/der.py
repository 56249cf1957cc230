"""Strict-DER elements by plain slicing: the one walker under the CRL index
(engine/revocation/index.py) and SCEP's fast SignedData reader (engine/scep/_fastder.py);
and `tlv`, its writer (the CA's certificate template, engine/ca/template.py).

It reads what X.690 §10.1 leaves DER: definite lengths only (the long form in at most four
octets), and single-octet tags, which is every tag of RFC 5280 and RFC 5652. Anything else, or
an element that runs past its container, is `DerShape`: each caller decides what that means
(the CRL is refused; the SignedData goes to the full parser).
"""

from __future__ import annotations


class DerShape(ValueError):
    """The bytes are not strict DER of the shape the walker reads."""


def element(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, contents start, contents end) of the element at `pos`, inside [pos, end)."""
    if pos + 2 > end:
        raise DerShape("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerShape("a multi-octet tag")
    first = buf[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + 2 + count > end:
            raise DerShape("not a definite DER length")
        length = int.from_bytes(buf[pos + 2:pos + 2 + count], "big")
        start = pos + 2 + count
    if start + length > end:
        raise DerShape("an element runs past its container")
    return tag, start, start + length


def tlv(tag: int, *parts: bytes) -> bytes:
    """One DER element: `tag` (a single octet), the definite length of the concatenated
    `parts`, the parts."""
    body = b"".join(parts)
    length = len(body)
    if length < 0x80:
        return bytes((tag, length)) + body
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + body
