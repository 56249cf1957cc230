"""CertRep (RFC 8894 §3.3.2): built by a server, parsed by a client.

SUCCESS carries EnvelopedData(to the requester's signer certificate, with the request's own
cipher) over a degenerate certs-only SignedData holding the issued certificate(s) or, for
GetCRL, the CRL. PENDING and FAILURE carry no envelope (an empty id-data eContent, as
micromdm and OpenSSL-based peers expect). The outer SignedData is signed by the CA or RA
signing credential with the request's digest; SignerInfo signatureAlgorithm rsaEncryption.

Parsing trusts only the certificates the caller names as signers: certificates included in
the message are never trusted for being there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.scep import attributes as A
from engine.scep._der import contained
from engine.scep.algorithms import ContentCipher, DigestAlgorithm, RandomBytes
from engine.scep.cms import (
    attribute,
    certs_only,
    envelope,
    open_envelope,
    read_certs_only,
    read_signed,
    sign,
    verify_signed,
)
from engine.scep.errors import ScepError, ScepErrorReason
from engine.scep.identity import Credential
from engine.scep.types import FailInfo, MessageType, PkiStatus, ReplyTo

__all__ = [
    "CertRep",
    "build_cert_rep_failure",
    "build_cert_rep_pending",
    "build_cert_rep_success",
    "parse_cert_rep",
]


def build_cert_rep_success(
    reply_to: ReplyTo,
    *,
    signer: Credential,
    sender_nonce: bytes,
    random_bytes: RandomBytes,
    certificates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    signing_time: dt.datetime | None = None,
    extra_certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """SUCCESS with the issued certificate(s) (PKCSReq, RenewalReq, CertPoll, GetCert) or the
    CRL (GetCRL), enveloped to the requester with the request's cipher."""
    if reply_to.cipher is None or reply_to.recipient is None:
        raise ValueError("a SUCCESS needs the request's cipher and signer certificate")
    if not certificates and not crls:
        raise ValueError("a SUCCESS carries at least one certificate or CRL")
    payload = certs_only(certificates, crls)
    enveloped = envelope(payload, recipient=reply_to.recipient, cipher=reply_to.cipher,
                         random_bytes=random_bytes)
    return _build(reply_to, PkiStatus.SUCCESS, enveloped, signer=signer,
                  sender_nonce=sender_nonce, signing_time=signing_time,
                  extra_certificates=extra_certificates)


def build_cert_rep_pending(
    reply_to: ReplyTo,
    *,
    signer: Credential,
    sender_nonce: bytes,
    signing_time: dt.datetime | None = None,
    extra_certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """PENDING: the request waits for approval; the client polls with CertPoll."""
    return _build(reply_to, PkiStatus.PENDING, b"", signer=signer, sender_nonce=sender_nonce,
                  signing_time=signing_time, extra_certificates=extra_certificates)


def build_cert_rep_failure(
    reply_to: ReplyTo,
    fail_info: FailInfo,
    *,
    signer: Credential,
    sender_nonce: bytes,
    signing_time: dt.datetime | None = None,
    fail_info_text: str | None = None,
    extra_certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """FAILURE with failInfo (and optionally RFC 8894's failInfoText)."""
    return _build(reply_to, PkiStatus.FAILURE, b"", signer=signer, sender_nonce=sender_nonce,
                  signing_time=signing_time, extra_certificates=extra_certificates,
                  fail_info=fail_info, fail_info_text=fail_info_text)


def _build(
    reply_to: ReplyTo, status: PkiStatus, content: bytes, *, signer: Credential,
    sender_nonce: bytes, signing_time: dt.datetime | None,
    extra_certificates: Sequence[x509.Certificate],
    fail_info: FailInfo | None = None, fail_info_text: str | None = None,
) -> bytes:
    A.check_nonce(sender_nonce, "sender_nonce")
    attrs = [
        A.printable(A.OID_MESSAGE_TYPE, str(int(MessageType.CERT_REP))),
        A.transaction_id_attribute(reply_to.transaction_id),
        A.printable(A.OID_PKI_STATUS, str(int(status))),
        A.octets(A.OID_SENDER_NONCE, sender_nonce),
        # RFC 8894 §3.2.1.5: the recipient "MUST copy the senderNonce into the
        # recipientNonce of the reply".
        A.octets(A.OID_RECIPIENT_NONCE, reply_to.recipient_nonce),
    ]
    if fail_info is not None:
        attrs.append(A.printable(A.OID_FAIL_INFO, str(int(fail_info))))
    if fail_info_text is not None:
        attrs.append(attribute(A.OID_FAIL_INFO_TEXT, core.UTF8String(fail_info_text)))
    return sign(content, signer=signer, digest=reply_to.digest, attributes=attrs,
                certificates=[signer.certificate, *extra_certificates],
                signing_time=signing_time)


@dataclass(frozen=True, slots=True)
class CertRep:
    """A verified CertRep that answers our request."""

    status: PkiStatus
    transaction_id: str
    recipient_nonce: bytes
    signer_certificate: x509.Certificate
    digest: DigestAlgorithm
    sender_nonce: bytes | None = None
    fail_info: FailInfo | None = None
    fail_info_text: str | None = None
    cipher: ContentCipher | None = None  # SUCCESS only
    certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    signing_time: dt.datetime | None = None

    def certificate_for(
        self, public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    ) -> x509.Certificate | None:
        """The returned certificate whose public key is `public_key`, if any."""
        want = public_key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        for cert in self.certificates:
            got = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if got == want:
                return cert
        return None


def parse_cert_rep(
    der: bytes,
    *,
    signers: Sequence[x509.Certificate],
    transaction_id: str,
    sender_nonce: bytes,
    recipient: Credential,
) -> CertRep:
    """Verify a CertRep against the CA/RA signing certificate(s) we trust, check it answers
    the request we sent (transaction_id, sender_nonce), and open a SUCCESS with `recipient`
    (the credential that signed our request)."""
    msg = read_signed(der, "CertRep")
    with contained("CertRep"):
        signer = msg.find_signer(signers)
        if signer is None:
            raise ScepError(ScepErrorReason.UNKNOWN_SIGNER,
                            "CertRep: not signed by the CA/RA certificate we trust")
        verify_signed(msg, signer, "CertRep")
        common = A.read_common(msg)
        if A.to_enum_message_type(common.message_type) is not MessageType.CERT_REP:
            raise ScepError(ScepErrorReason.UNSUPPORTED_MESSAGE_TYPE,
                            f"CertRep: messageType is {common.message_type}, not CertRep (3)")
        if common.transaction_id != transaction_id:
            raise ScepError(ScepErrorReason.TRANSACTION_MISMATCH,
                            f"CertRep: transactionID {common.transaction_id!r} is not ours")
        # RFC 8894 §3.2.1.5: the sender "MUST verify that the recipientNonce of the reply
        # matches the senderNonce it sent in the request".
        if common.recipient_nonce is None or not hmac.compare_digest(
            common.recipient_nonce, sender_nonce
        ):
            raise ScepError(ScepErrorReason.NONCE_MISMATCH,
                            "CertRep: recipientNonce does not match our senderNonce")
        status_value = A.number_of(msg, A.OID_PKI_STATUS, "pkiStatus")
        assert status_value is not None
        status = A.to_enum_status(status_value)
        result = CertRep(
            status=status, transaction_id=common.transaction_id,
            recipient_nonce=common.recipient_nonce, signer_certificate=signer,
            digest=msg.digest, sender_nonce=common.sender_nonce,
            signing_time=common.signing_time,
        )
        if status is PkiStatus.FAILURE:
            fi = A.number_of(msg, A.OID_FAIL_INFO, "failInfo")
            assert fi is not None
            text = A.text_of(msg, A.OID_FAIL_INFO_TEXT, "failInfoText", required=False)
            if text is None:
                text = A.text_of(msg, A.OID_FAIL_INFO_TEXT_VERISIGN, "failInfoText",
                                 required=False)
            return dataclasses.replace(result, fail_info=A.to_enum_fail_info(fi),
                                       fail_info_text=text)
        if status is PkiStatus.PENDING:
            return result
        if not msg.content:
            raise ScepError(ScepErrorReason.MALFORMED, "CertRep: SUCCESS without content")
        payload, cipher = open_envelope(msg.content, [recipient], "CertRep pkcsPKIEnvelope")
        certs, crls = read_certs_only(payload, "CertRep certificates")
        if not certs and not crls:
            raise ScepError(ScepErrorReason.MALFORMED,
                            "CertRep: SUCCESS with neither certificate nor CRL")
        return dataclasses.replace(result, cipher=cipher, certificates=certs, crls=crls)
