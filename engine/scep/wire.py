"""What the HTTP adapters need around the core (RFC 8894 §4): content types, the base64
`message` parameter of GET PKIOperation, and the signingTime check a server may apply.

Percent-encoding is the HTTP layer's job; this is only the base64 inside it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import re

from engine.scep.errors import ScepError, ScepErrorReason

__all__ = [
    "PKI_MESSAGE_CONTENT_TYPE",
    "Unanswerable",
    "check_signing_time",
    "decode_message_param",
    "encode_message_param",
]

PKI_MESSAGE_CONTENT_TYPE = "application/x-pki-message"
_WHITESPACE = re.compile(rb"\s+")


def encode_message_param(der: bytes) -> str:
    """Standard base64 (RFC 8894 §4.1: the message is base64-encoded for GET)."""
    return base64.b64encode(der).decode("ascii")


def decode_message_param(text: str | bytes) -> bytes:
    """Decode a GET `message` parameter: standard base64, line breaks and URL-safe
    alphabet tolerated; anything else is MALFORMED."""
    raw = text.encode("latin-1", "replace") if isinstance(text, str) else bytes(text)
    raw = _WHITESPACE.sub(b"", raw).replace(b"-", b"+").replace(b"_", b"/")
    raw += b"=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ScepError(ScepErrorReason.MALFORMED,
                        "PKIOperation message: not valid base64") from None
    if not data:
        raise ScepError(ScepErrorReason.MALFORMED, "PKIOperation message: empty")
    return data


def check_signing_time(
    signing_time: dt.datetime | None, *, now: dt.datetime, tolerance: dt.timedelta
) -> None:
    """Refuse a request whose signingTime is further than `tolerance` from `now` (failInfo
    badTime, RFC 8894 §3.2.1.4). Absent signingTime is accepted: the attribute is optional."""
    if signing_time is None:
        return
    if abs(signing_time - now) > tolerance:
        raise ScepError(ScepErrorReason.BAD_TIME,
                        f"signingTime {signing_time.isoformat()} is too far from "
                        f"{now.isoformat()}")


class Unanswerable(Exception):
    """A request the SCEP service answers with no CertRep at all: not a pkiMessage
    (MALFORMED), too large (TOO_LARGE), the CA cannot answer now (UNAVAILABLE), or an
    operation the CA does not offer now (NOT_OFFERED: GetNextCACert before a rollover).
    Transports decide how to say so (HTTP: 400, 413, 503, 400)."""

    class Kind(enum.Enum):
        MALFORMED = "malformed"
        TOO_LARGE = "too large"
        UNAVAILABLE = "unavailable"
        NOT_OFFERED = "not offered"

    def __init__(self, kind: Unanswerable.Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
