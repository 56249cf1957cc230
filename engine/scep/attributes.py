"""SCEP's authenticated attributes (RFC 8894 §3.2.1): OIDs, encoders and tolerant decoders.

On the wire, messageType, pkiStatus, failInfo and transactionID are PrintableStrings (decimal
numbers for the first three); we also read UTF8String and IA5String, which some peers send.
Nonces are OCTET STRINGs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from asn1crypto import cms, core

from engine.scep.algorithms import DigestAlgorithm
from engine.scep.cms import OID_SIGNING_TIME, SignedMessage, attribute, attribute_of_der, tlv
from engine.scep.errors import ScepError, ScepErrorReason
from engine.scep.types import FailInfo, MessageType, PkiStatus, ReplyTo

_VERISIGN = "2.16.840.1.113733.1.9."
OID_MESSAGE_TYPE = _VERISIGN + "2"
OID_PKI_STATUS = _VERISIGN + "3"
OID_FAIL_INFO = _VERISIGN + "4"
OID_SENDER_NONCE = _VERISIGN + "5"
OID_RECIPIENT_NONCE = _VERISIGN + "6"
OID_TRANSACTION_ID = _VERISIGN + "7"
# RFC 8894 §3.2.1.4 defines failInfoText as id-scep-failInfoText, a UTF8String under the PKIX
# arc; we send it there. Drafts and some servers used the VeriSign arc: we read both.
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"
OID_FAIL_INFO_TEXT_VERISIGN = _VERISIGN + "24"

NONCE_SIZE = 16  # RFC 8894 §3.2.1.5: "a 16-byte random number"
MAX_NONCE_SIZE = 64  # what we accept from peers
MAX_TRANSACTION_ID = 256
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]+")
_NUMBER = re.compile(r"\s*[0-9]{1,9}\s*")
_TEXT_TYPES = {0x13: core.PrintableString, 0x0C: core.UTF8String, 0x16: core.IA5String}


def check_transaction_id(transaction_id: str) -> str:
    """RFC 8894 §3.2.1.1: the transactionID is "encoded as a PrintableString"."""
    if not _PRINTABLE.fullmatch(transaction_id):
        raise ValueError(f"transactionID {transaction_id!r} is not a PrintableString")
    return transaction_id


def check_nonce(nonce: bytes, name: str) -> bytes:
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise ValueError(f"{name} must be {NONCE_SIZE} bytes")
    return nonce


def printable(oid: str, text: str) -> bytes:
    """A single-valued attribute (DER) holding `text` as a PrintableString."""
    if not _PRINTABLE.fullmatch(text):  # what core.PrintableString would refuse to encode
        return attribute(oid, core.PrintableString(text))
    return attribute_of_der(oid, tlv(0x13, text.encode("ascii")))


def octets(oid: str, data: bytes) -> bytes:
    """A single-valued attribute (DER) holding `data` as an OCTET STRING."""
    return attribute_of_der(oid, tlv(0x04, bytes(data)))


def text_of(msg: SignedMessage, oid: str, name: str, *, required: bool = True) -> str | None:
    der = msg.attributes.get(oid)
    if der is None:
        if required:
            raise ScepError(ScepErrorReason.MISSING_ATTRIBUTE, f"missing {name} attribute")
        return None
    spec = _TEXT_TYPES.get(der[0]) if der else None
    if spec is None:
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, f"{name} is not a string")
    text = spec.load(der).native
    if not isinstance(text, str):
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, f"{name} is not a string")
    return text


def bytes_of(msg: SignedMessage, oid: str, name: str, *, required: bool = True) -> bytes | None:
    der = msg.attributes.get(oid)
    if der is None:
        if required:
            raise ScepError(ScepErrorReason.MISSING_ATTRIBUTE, f"missing {name} attribute")
        return None
    if not der or der[0] != 0x04:
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, f"{name} is not an OCTET STRING")
    data = core.OctetString.load(der).native
    if not isinstance(data, bytes) or not 0 < len(data) <= MAX_NONCE_SIZE:
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, f"{name} has a bad length")
    return data


def number_of(msg: SignedMessage, oid: str, name: str, *, required: bool = True) -> int | None:
    text = text_of(msg, oid, name, required=required)
    if text is None:
        return None
    if not _NUMBER.fullmatch(text):
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, f"{name} {text!r} is not a number")
    return int(text)


def signing_time_of(msg: SignedMessage) -> dt.datetime | None:
    value = msg.attributes.get(OID_SIGNING_TIME)
    if value is None:
        return None
    when = cms.Time.load(value).native
    if not isinstance(when, dt.datetime):
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, "signingTime is not a time")
    return when


def message_type_of(msg: SignedMessage) -> int:
    value = number_of(msg, OID_MESSAGE_TYPE, "messageType")
    assert value is not None
    return value


def to_enum_message_type(value: int) -> MessageType:
    try:
        return MessageType(value)
    except ValueError:
        raise ScepError(ScepErrorReason.UNSUPPORTED_MESSAGE_TYPE,
                        f"unsupported messageType {value}") from None


def to_enum_status(value: int) -> PkiStatus:
    try:
        return PkiStatus(value)
    except ValueError:
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, f"unknown pkiStatus {value}") from None


def to_enum_fail_info(value: int) -> FailInfo:
    try:
        return FailInfo(value)
    except ValueError:
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, f"unknown failInfo {value}") from None


@dataclass(frozen=True, slots=True)
class Common:
    """The attributes every pkiMessage carries, read (not yet verified)."""

    message_type: int
    transaction_id: str
    sender_nonce: bytes | None
    recipient_nonce: bytes | None
    signing_time: dt.datetime | None

    def reply_to(self, digest: DigestAlgorithm) -> ReplyTo | None:
        if self.sender_nonce is None:
            return None
        mt = self.message_type
        return ReplyTo(
            transaction_id=self.transaction_id, recipient_nonce=self.sender_nonce,
            digest=digest,
            message_type=MessageType(mt) if mt in MessageType._value2member_map_ else None,
        )


def transaction_id_attribute(transaction_id: str) -> bytes:
    """transactionID as a PrintableString (RFC 8894 §3.2.1.1); a peer's ID that does not fit
    one is echoed as a UTF8String rather than altered, so the peer can still match it."""
    if _PRINTABLE.fullmatch(transaction_id):
        return printable(OID_TRANSACTION_ID, transaction_id)
    return attribute(OID_TRANSACTION_ID, core.UTF8String(transaction_id))


def read_common(msg: SignedMessage) -> Common:
    transaction_id = text_of(msg, OID_TRANSACTION_ID, "transactionID")
    if not transaction_id or len(transaction_id) > MAX_TRANSACTION_ID:
        raise ScepError(ScepErrorReason.BAD_ATTRIBUTE, "transactionID is empty or too long")
    return Common(
        message_type=message_type_of(msg),
        transaction_id=transaction_id,
        sender_nonce=bytes_of(msg, OID_SENDER_NONCE, "senderNonce", required=False),
        recipient_nonce=bytes_of(msg, OID_RECIPIENT_NONCE, "recipientNonce", required=False),
        signing_time=signing_time_of(msg),
    )
