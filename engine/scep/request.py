"""Requests (RFC 8894 §3.3): built by a client, parsed by a server.

A request is SignedData(signer = the requester's certificate) over id-data whose content is
EnvelopedData(recipient = CA or RA encryption certificate) over the message body:

    PKCSReq / RenewalReq   the DER PKCS#10 request           (§3.3.1)
    CertPoll               IssuerAndSubject                   (§3.3.3)
    GetCert / GetCRL       IssuerAndSerialNumber              (§3.3.4, §3.3.5)

`parse_request` verifies the signature with the certificate the request itself carries (a
self-signed one for PKCSReq: whether that identity is acceptable — challenge, renewal cert
chaining to us — is the CA's decision, not the parser's). Errors raised after the signed
attributes were read carry `reply_to`, so the server can still answer a CertRep FAILURE.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.scep import attributes as A
from engine.scep._der import contained, load, to_asn1_name, to_name
from engine.scep.algorithms import ContentCipher, DigestAlgorithm, RandomBytes
from engine.scep.cms import (
    OID_DATA,
    SignedMessage,
    envelope,
    open_envelope_to,
    read_signed,
    sign,
    verify_signed,
)
from engine.scep.csr import CertificationRequest, parse_csr
from engine.scep.errors import ScepError, ScepErrorReason
from engine.scep.identity import Credential
from engine.scep.types import MessageType, ReplyTo

__all__ = [
    "IssuerAndSerial",
    "IssuerAndSubject",
    "RequestParameters",
    "ScepRequest",
    "build_cert_poll",
    "build_get_cert",
    "build_get_crl",
    "build_pkcs_req",
    "build_renewal_req",
    "new_nonce",
    "parse_request",
    "transaction_id_for",
]


class _IssuerAndSubject(core.Sequence):  # type: ignore[misc]
    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


@dataclass(frozen=True, slots=True)
class IssuerAndSubject:
    """CertPoll body: who issues, and the subject of the pending request."""

    issuer: x509.Name
    subject: x509.Name


@dataclass(frozen=True, slots=True)
class IssuerAndSerial:
    """GetCert / GetCRL body: a certificate by issuer and serial number."""

    issuer: x509.Name
    serial_number: int


@dataclass(frozen=True, slots=True)
class RequestParameters:
    """Everything a request is sealed with, other than its body and the randomness.

    `recipient` is the certificate to envelope to (the CA, or the RA encryption certificate);
    `signer` is our (self-signed or previously issued) certificate and its key. The same
    transaction_id is used for every message of one enrollment (PKCSReq, then CertPolls);
    the sender_nonce must be fresh for each message.
    """

    signer: Credential
    recipient: x509.Certificate
    transaction_id: str
    sender_nonce: bytes
    cipher: ContentCipher = ContentCipher.AES_128_CBC
    digest: DigestAlgorithm = DigestAlgorithm.SHA256
    signing_time: dt.datetime | None = None

    def __post_init__(self) -> None:
        A.check_transaction_id(self.transaction_id)
        A.check_nonce(self.sender_nonce, "sender_nonce")


def transaction_id_for(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """Our transactionID for an enrollment: upper-case hex SHA-256 of the SubjectPublicKeyInfo.

    RFC 8894 §3.2.1.1 asks only that it be unique per transaction and a PrintableString; a key
    hash makes a re-sent PKCSReq for the same key carry the same ID (what a CA uses to answer
    PENDING rather than issue twice). micromdm uses base64 of a SHA-1 key hash instead; both
    are accepted on parse."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest().upper()


def new_nonce(random_bytes: RandomBytes) -> bytes:
    """A senderNonce: 16 bytes from the injected randomness (RFC 8894 §3.2.1.5)."""
    return A.check_nonce(random_bytes(A.NONCE_SIZE), "random_bytes(16)")


def build_pkcs_req(
    params: RequestParameters, csr: x509.CertificateSigningRequest, *,
    random_bytes: RandomBytes,
) -> bytes:
    """PKCSReq (19): enroll, authenticated by the challenge password inside the CSR."""
    return _build(params, MessageType.PKCS_REQ,
                  csr.public_bytes(serialization.Encoding.DER), random_bytes)


def build_renewal_req(
    params: RequestParameters, csr: x509.CertificateSigningRequest, *,
    random_bytes: RandomBytes,
) -> bytes:
    """RenewalReq (17): enroll, signed with the certificate being renewed."""
    return _build(params, MessageType.RENEWAL_REQ,
                  csr.public_bytes(serialization.Encoding.DER), random_bytes)


def build_cert_poll(
    params: RequestParameters, *, issuer: x509.Name, subject: x509.Name,
    random_bytes: RandomBytes,
) -> bytes:
    """CertPoll (20, GetCertInitial): ask again about a PENDING request (same transactionID)."""
    body = _IssuerAndSubject({"issuer": to_asn1_name(issuer), "subject": to_asn1_name(subject)})
    return _build(params, MessageType.CERT_POLL, body.dump(), random_bytes)


def build_get_cert(
    params: RequestParameters, *, issuer: x509.Name, serial_number: int,
    random_bytes: RandomBytes,
) -> bytes:
    """GetCert (21): fetch a certificate by issuer and serial number."""
    return _build(params, MessageType.GET_CERT, _issuer_and_serial(issuer, serial_number),
                  random_bytes)


def build_get_crl(
    params: RequestParameters, *, issuer: x509.Name, serial_number: int,
    random_bytes: RandomBytes,
) -> bytes:
    """GetCRL (22): fetch the CRL for the certificate (issuer, serial)."""
    return _build(params, MessageType.GET_CRL, _issuer_and_serial(issuer, serial_number),
                  random_bytes)


def _issuer_and_serial(issuer: x509.Name, serial_number: int) -> bytes:
    return bytes(asn1_cms.IssuerAndSerialNumber(
        {"issuer": to_asn1_name(issuer), "serial_number": serial_number}
    ).dump())


def _build(
    params: RequestParameters, message_type: MessageType, body: bytes,
    random_bytes: RandomBytes,
) -> bytes:
    enveloped = envelope(body, recipient=params.recipient, cipher=params.cipher,
                         random_bytes=random_bytes)
    attrs = [
        A.printable(A.OID_MESSAGE_TYPE, str(int(message_type))),
        A.printable(A.OID_TRANSACTION_ID, params.transaction_id),
        A.octets(A.OID_SENDER_NONCE, params.sender_nonce),
    ]
    return sign(enveloped, signer=params.signer, digest=params.digest, attributes=attrs,
                certificates=[params.signer.certificate], signing_time=params.signing_time)


# ------------------------------------------------------------------------------ server side


@dataclass(frozen=True, slots=True)
class ScepRequest:
    """A verified, decrypted request. Exactly one of csr / issuer_and_subject /
    issuer_and_serial is set, according to message_type."""

    message_type: MessageType
    transaction_id: str
    sender_nonce: bytes
    signer_certificate: x509.Certificate
    digest: DigestAlgorithm
    cipher: ContentCipher
    signature_algorithm: str  # OID, e.g. rsaEncryption or sha1WithRSAEncryption
    signing_time: dt.datetime | None = None
    csr: CertificationRequest | None = None
    issuer_and_subject: IssuerAndSubject | None = None
    issuer_and_serial: IssuerAndSerial | None = None
    recipient: x509.Certificate | None = None  # which of our certificates it was enveloped to

    @property
    def reply_to(self) -> ReplyTo:
        """What a CertRep answering this request must echo (and envelope to)."""
        return ReplyTo(
            transaction_id=self.transaction_id, recipient_nonce=self.sender_nonce,
            digest=self.digest, message_type=self.message_type, cipher=self.cipher,
            recipient=self.signer_certificate,
        )


def parse_request(der: bytes, *, recipients: Sequence[Credential]) -> ScepRequest:
    """Verify and decrypt a request addressed to one of `recipients` (CA and/or RA)."""
    msg = read_signed(der, "pkiMessage")
    with contained("pkiMessage"):
        common = A.read_common(msg)
        reply_to = common.reply_to(msg.digest)
    try:
        with contained("pkiMessage"):
            return _open(msg, common, recipients)
    except ScepError as e:
        if reply_to is None:
            raise
        raise e.with_reply_to(reply_to) from None


def _open(msg: SignedMessage, common: A.Common, recipients: Sequence[Credential]) -> ScepRequest:
    message_type = A.to_enum_message_type(common.message_type)
    if not message_type.is_request:
        raise ScepError(ScepErrorReason.UNSUPPORTED_MESSAGE_TYPE,
                        "a CertRep is not a request")
    if common.sender_nonce is None:
        # RFC 8894 §3.2.1.5: "a fresh senderNonce MUST be included in the message".
        raise ScepError(ScepErrorReason.MISSING_ATTRIBUTE, "missing senderNonce attribute")
    signer = msg.included_signer()
    if signer is None:
        raise ScepError(ScepErrorReason.UNKNOWN_SIGNER,
                        "the signer's certificate is not in the message")
    verify_signed(msg, signer)
    if not isinstance(signer.public_key(), rsa.RSAPublicKey):
        # The CertRep is enveloped back to this certificate: only RSA can receive it.
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        "the signer's key cannot receive an RSA key-transport envelope")
    if msg.content_type != OID_DATA or not msg.content:
        raise ScepError(ScepErrorReason.WRONG_CONTENT_TYPE,
                        "the signed content is not an id-data pkcsPKIEnvelope")
    body, cipher, recipient = open_envelope_to(msg.content, recipients)
    csr: CertificationRequest | None = None
    subject_query: IssuerAndSubject | None = None
    serial_query: IssuerAndSerial | None = None
    if message_type in (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ):
        csr = parse_csr(body)
    elif message_type is MessageType.CERT_POLL:
        ias = load(_IssuerAndSubject, body, "CertPoll IssuerAndSubject")
        subject_query = IssuerAndSubject(issuer=to_name(ias["issuer"], "CertPoll issuer"),
                                         subject=to_name(ias["subject"], "CertPoll subject"))
    else:
        isn = load(asn1_cms.IssuerAndSerialNumber, body, "IssuerAndSerialNumber")
        serial_query = IssuerAndSerial(issuer=to_name(isn["issuer"], "IssuerAndSerial issuer"),
                                       serial_number=int(isn["serial_number"].native))
    return ScepRequest(
        message_type=message_type, transaction_id=common.transaction_id,
        sender_nonce=common.sender_nonce, signer_certificate=signer, digest=msg.digest,
        cipher=cipher, signature_algorithm=msg.signature_oid, signing_time=common.signing_time,
        csr=csr, issuer_and_subject=subject_query, issuer_and_serial=serial_query,
        recipient=recipient.certificate,
    )
