"""SCEP vocabulary (RFC 8894 §3.2.1): message types, pkiStatus, failInfo, and `ReplyTo`.

The numeric values are the ones carried on the wire as decimal PrintableStrings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

    from engine.scep.algorithms import ContentCipher, DigestAlgorithm

__all__ = ["FailInfo", "MessageType", "PkiStatus", "ReplyTo"]


class MessageType(enum.IntEnum):
    """messageType (RFC 8894 §3.2.1.2)."""

    CERT_REP = 3  # response to a certificate or CRL request
    RENEWAL_REQ = 17  # PKCS#10 request authenticated with an existing certificate
    PKCS_REQ = 19  # PKCS#10 request authenticated with a shared secret (challenge)
    CERT_POLL = 20  # poll for a pending request (GetCertInitial in older drafts)
    GET_CERT = 21  # fetch a certificate by issuer and serial
    GET_CRL = 22  # fetch the CRL covering a certificate

    @property
    def label(self) -> str:
        return _MESSAGE_LABELS[self]

    @property
    def is_request(self) -> bool:
        return self is not MessageType.CERT_REP


_MESSAGE_LABELS = {
    MessageType.CERT_REP: "CertRep",
    MessageType.RENEWAL_REQ: "RenewalReq",
    MessageType.PKCS_REQ: "PKCSReq",
    MessageType.CERT_POLL: "CertPoll",
    MessageType.GET_CERT: "GetCert",
    MessageType.GET_CRL: "GetCRL",
}


class PkiStatus(enum.IntEnum):
    """pkiStatus (RFC 8894 §3.2.1.3)."""

    SUCCESS = 0  # request granted
    FAILURE = 2  # request rejected; failInfo says why
    PENDING = 3  # request awaits manual approval; poll with CertPoll

    @property
    def label(self) -> str:
        return self.name


class FailInfo(enum.IntEnum):
    """failInfo (RFC 8894 §3.2.1.4), with the explanation an operator should read."""

    BAD_ALG = 0
    BAD_MESSAGE_CHECK = 1
    BAD_REQUEST = 2
    BAD_TIME = 3
    BAD_CERT_ID = 4

    @property
    def label(self) -> str:
        """The RFC's own name: badAlg, badMessageCheck, ..."""
        return _FAIL_LABELS[self][0]

    @property
    def explanation(self) -> str:
        return _FAIL_LABELS[self][1]


_FAIL_LABELS = {
    FailInfo.BAD_ALG: ("badAlg", "Unrecognized or unsupported algorithm."),
    FailInfo.BAD_MESSAGE_CHECK: (
        "badMessageCheck",
        "Integrity check failed: the message signature or digest did not verify.",
    ),
    FailInfo.BAD_REQUEST: (
        "badRequest",
        "Transaction not permitted or supported (for example a wrong challenge password).",
    ),
    FailInfo.BAD_TIME: (
        "badTime",
        "The signingTime was not sufficiently close to the CA's time.",
    ),
    FailInfo.BAD_CERT_ID: (
        "badCertId",
        "No certificate could be identified matching the provided criteria.",
    ),
}


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """What a CertRep must echo from the request it answers.

    `cipher` and `recipient` (the request's signer certificate) are needed only for a SUCCESS,
    whose content is enveloped back to the requester with the request's own cipher; they are
    None when the request could not be read that far (a server can still answer FAILURE).
    """

    transaction_id: str
    recipient_nonce: bytes  # = the request's senderNonce
    digest: DigestAlgorithm
    message_type: MessageType | None = None
    cipher: ContentCipher | None = None
    recipient: x509.Certificate | None = None
