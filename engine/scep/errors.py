"""The one exception the SCEP core raises for anything a peer sent wrong.

`ScepError` is a `TrustledgerError` (engine/errors.py), flat: a `reason` (what went wrong,
for code to branch on), a `fail_info` (the RFC 8894 §3.2.1.4 failInfo a server should answer
with, or None where only a client can notice the problem), a human `detail` (its `text`), and
— when the request's signed attributes could be read — the `reply_to` a server needs to build
its CertRep FAILURE. Callers never parse message strings.
Bad *arguments* from our own code (a wrong nonce length, a missing recipient) are `ValueError`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from engine.errors import TrustledgerError
from engine.scep.types import FailInfo

if TYPE_CHECKING:
    from engine.scep.types import ReplyTo

__all__ = ["ScepError", "ScepErrorReason"]


class ScepErrorReason(enum.Enum):
    """Why a SCEP message was refused. Each reason has a default failInfo (or None)."""

    MALFORMED = "malformed"  # not base64, not DER, truncated, not the expected ASN.1
    WRONG_CONTENT_TYPE = "wrong-content-type"  # e.g. EnvelopedData where SignedData belongs
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"  # digest, cipher, signature or key transport
    BAD_SIGNATURE = "bad-signature"  # the SignerInfo signature does not verify
    DIGEST_MISMATCH = "digest-mismatch"  # messageDigest is not the hash of the content
    UNKNOWN_SIGNER = "unknown-signer"  # no (trusted) certificate matches the SignerInfo sid
    NOT_A_RECIPIENT = "not-a-recipient"  # no RecipientInfo is addressed to our certificate
    DECRYPTION_FAILED = "decryption-failed"  # key transport or content decryption failed
    MISSING_ATTRIBUTE = "missing-attribute"  # a required signed attribute is absent
    BAD_ATTRIBUTE = "bad-attribute"  # an attribute has the wrong type, size or value
    UNSUPPORTED_MESSAGE_TYPE = "unsupported-message-type"
    BAD_CSR_SIGNATURE = "bad-csr-signature"  # PKCS#10 proof of possession fails
    BAD_TIME = "bad-time"  # signingTime too far from the caller's clock
    TRANSACTION_MISMATCH = "transaction-mismatch"  # CertRep for another transaction
    NONCE_MISMATCH = "nonce-mismatch"  # CertRep recipientNonce is not our senderNonce
    BAD_CA_CERTIFICATES = "bad-ca-certificates"  # GetCACert answer without a usable CA

    @property
    def default_fail_info(self) -> FailInfo | None:
        return _DEFAULT_FAIL_INFO[self]


_DEFAULT_FAIL_INFO: dict[ScepErrorReason, FailInfo | None] = {
    ScepErrorReason.MALFORMED: FailInfo.BAD_REQUEST,
    ScepErrorReason.WRONG_CONTENT_TYPE: FailInfo.BAD_REQUEST,
    ScepErrorReason.UNSUPPORTED_ALGORITHM: FailInfo.BAD_ALG,
    ScepErrorReason.BAD_SIGNATURE: FailInfo.BAD_MESSAGE_CHECK,
    ScepErrorReason.DIGEST_MISMATCH: FailInfo.BAD_MESSAGE_CHECK,
    ScepErrorReason.UNKNOWN_SIGNER: FailInfo.BAD_MESSAGE_CHECK,
    ScepErrorReason.NOT_A_RECIPIENT: FailInfo.BAD_MESSAGE_CHECK,
    ScepErrorReason.DECRYPTION_FAILED: FailInfo.BAD_MESSAGE_CHECK,
    ScepErrorReason.MISSING_ATTRIBUTE: FailInfo.BAD_REQUEST,
    ScepErrorReason.BAD_ATTRIBUTE: FailInfo.BAD_REQUEST,
    ScepErrorReason.UNSUPPORTED_MESSAGE_TYPE: FailInfo.BAD_REQUEST,
    ScepErrorReason.BAD_CSR_SIGNATURE: FailInfo.BAD_MESSAGE_CHECK,
    ScepErrorReason.BAD_TIME: FailInfo.BAD_TIME,
    ScepErrorReason.TRANSACTION_MISMATCH: None,
    ScepErrorReason.NONCE_MISMATCH: None,
    ScepErrorReason.BAD_CA_CERTIFICATES: None,
}


class ScepError(TrustledgerError):
    """A SCEP message (or GetCACaps/GetCACert answer) that we refuse, and why. `detail` is
    its `text`; `str(e)` the `%` line."""

    reason: ScepErrorReason

    def __init__(
        self,
        reason: ScepErrorReason,
        detail: str,
        *,
        fail_info: FailInfo | None = None,
        reply_to: ReplyTo | None = None,
    ) -> None:
        super().__init__(reason, detail)
        self.detail = detail
        self.fail_info = fail_info if fail_info is not None else reason.default_fail_info
        self.reply_to = reply_to

    def with_reply_to(self, reply_to: ReplyTo) -> ScepError:
        """The same error, now knowing whom a server's CertRep FAILURE should answer."""
        return ScepError(self.reason, self.detail, fail_info=self.fail_info, reply_to=reply_to)

    def __repr__(self) -> str:
        fi = self.fail_info.name if self.fail_info is not None else None
        return f"ScepError({self.reason.name}, {self.detail!r}, fail_info={fi})"
