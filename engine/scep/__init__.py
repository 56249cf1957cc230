"""Sans-I/O SCEP core (RFC 8894): build and parse every SCEP message, touch nothing else.

No sockets, no HTTP, no clock, no randomness of its own. Whatever varies comes in as a
parameter: nonces, transaction IDs, signing time, and an injected
``random_bytes: Callable[[int], bytes]`` for content-encryption keys and IVs. Both our SCEP
client and our built-in CA (``engine/ca``) sit on top of it; the HTTP adapters only move
bytes. (The one randomness we cannot inject is the PKCS#1 v1.5 padding OpenSSL draws inside
RSA key transport; ECDSA signatures use deterministic RFC 6979 nonces.)

Theory of operation
-------------------
A SCEP *pkiMessage* is two CMS layers (RFC 5652)::

    ContentInfo(SignedData)                 signer: requester / CA / RA; one SignerInfo
      signed attributes: contentType, messageDigest, [signingTime],
                         messageType, transactionID, senderNonce,
                         [recipientNonce, pkiStatus, failInfo]        (CertRep only)
      eContent (id-data) = ContentInfo(EnvelopedData)   "pkcsPKIEnvelope"
          RSA key transport (PKCS#1 v1.5) to: CA / RA encryption cert (requests)
                                              requester's signer cert (CertRep SUCCESS)
          AES-128/256-CBC, DES-EDE3-CBC or DES-CBC over the body:
              PKCSReq/RenewalReq -> PKCS#10;  CertPoll -> IssuerAndSubject;
              GetCert/GetCRL -> IssuerAndSerialNumber;
              CertRep SUCCESS -> degenerate certs-only SignedData (certs or CRL)

Client side::

    caps = parse_capabilities(body)                      # GetCACaps
    cas = parse_ca_certificates(content_type, body)       # GetCACert -> CA / RA roles
    csr = build_csr(key, subject, challenge_password=pw)
    params = RequestParameters(signer=Credential(self_signed, key), recipient=cas.recipient,
                               transaction_id=transaction_id_for(key.public_key()),
                               sender_nonce=new_nonce(rng), cipher=caps.strongest_cipher(),
                               digest=caps.strongest_digest(), signing_time=now)
    der = build_pkcs_req(params, csr, random_bytes=rng)   # POST it
    rep = parse_cert_rep(answer, signers=[cas.signer], transaction_id=params.transaction_id,
                         sender_nonce=params.sender_nonce, recipient=params.signer)
    rep.status / rep.fail_info / rep.certificate_for(key.public_key())

Server side::

    req = parse_request(der, recipients=[ca_credential])  # verified + decrypted
    # ... CA decides (challenge, approval, renewal) ...
    build_cert_rep_success(req.reply_to, signer=ca_credential, sender_nonce=new_nonce(rng),
                           random_bytes=rng, certificates=[issued])
    build_cert_rep_pending(req.reply_to, ...)
    build_cert_rep_failure(req.reply_to, FailInfo.BAD_REQUEST, ...)

Errors: every parse function raises only `ScepError` (``reason``, ``fail_info`` to answer
with, ``reply_to`` when the request's attributes were readable so a FAILURE can still be
addressed). Bad arguments from our own code raise `ValueError`. What a parse function returns
has been read completely first: cryptography parses names, extensions, keys and attributes of
certificates, CRLs and PKCS#10 requests lazily, so the core touches all of them inside its
error containment and a caller never meets a KeyError or UnsupportedAlgorithm later.

What the parsers accept from peers: SignerInfo signatureAlgorithm rsaEncryption or
shaNWithRSAEncryption (micromdm sends sha1WithRSAEncryption), RSASSA-PSS with its parameters
(strongSwan `--rsa-padding pss`) or ecdsa-with-SHAn (what we sign with: `cms.sign`); digests
SHA-1/256/384/512; ciphers AES-128/256-CBC, DES-EDE3-CBC, single DES-CBC (micromdm's default);
BER constructed encryptedContent (Go's pkcs7); string attributes as PrintableString,
UTF8String or IA5String; failInfoText under the RFC 8894 OID or the older VeriSign one;
PKCS#10 requests for RSA or EC keys signed with PKCS#1 v1.5, RSASSA-PSS or ECDSA over
SHA-1/256/384/512 (verified by the core itself, over the bytes received), attributes in BER
SET OF order (strongSwan `--san`). Policy (refusing DES
or SHA-1 — the CMS ``req.digest`` and the PKCS#10 ``req.csr.signature_digest`` —, challenge
checks, renewal rules, signingTime window via `check_signing_time`) belongs to the caller.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.scep.algorithms import ContentCipher, DigestAlgorithm, RandomBytes
    from engine.scep.cacert import (
        CA_CERT_CONTENT_TYPE,
        CA_RA_CERT_CONTENT_TYPE,
        CACertificates,
        build_ca_certificates,
        parse_ca_certificates,
    )
    from engine.scep.caps import Capabilities, Capability, parse_capabilities
    from engine.scep.certrep import (
        CertRep,
        build_cert_rep_failure,
        build_cert_rep_pending,
        build_cert_rep_success,
        parse_cert_rep,
    )
    from engine.scep.cms import certs_only, read_certs_only
    from engine.scep.csr import CertificationRequest, build_csr, parse_csr
    from engine.scep.errors import ScepError, ScepErrorReason
    from engine.scep.identity import Credential, SigningKey, build_self_signed_certificate
    from engine.scep.nextca import (
        NEXT_CA_CERT_CONTENT_TYPE,
        build_next_ca_certificates,
        parse_next_ca_certificates,
    )
    from engine.scep.request import (
        IssuerAndSerial,
        IssuerAndSubject,
        RequestParameters,
        ScepRequest,
        build_cert_poll,
        build_get_cert,
        build_get_crl,
        build_pkcs_req,
        build_renewal_req,
        new_nonce,
        parse_request,
        transaction_id_for,
    )
    from engine.scep.types import FailInfo, MessageType, PkiStatus, ReplyTo
    from engine.scep.wire import (
        PKI_MESSAGE_CONTENT_TYPE,
        check_signing_time,
        decode_message_param,
        encode_message_param,
    )

# Where each name lives. `engine.scep` loads a submodule when one of its names is first used
# (PEP 562), so `from engine.scep import PkiStatus` costs engine.scep.types alone, not the CMS
# and asn1crypto machinery that only an exchange needs. A name added above goes here too
# (tests/scep/test_scep_exports.py checks that they agree).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "algorithms": ("ContentCipher", "DigestAlgorithm", "RandomBytes"),
    "cacert": (
        "CA_CERT_CONTENT_TYPE", "CA_RA_CERT_CONTENT_TYPE", "CACertificates",
        "build_ca_certificates", "parse_ca_certificates",
    ),
    "caps": ("Capabilities", "Capability", "parse_capabilities"),
    "certrep": (
        "CertRep", "build_cert_rep_failure", "build_cert_rep_pending", "build_cert_rep_success",
        "parse_cert_rep",
    ),
    "cms": ("certs_only", "read_certs_only"),
    "csr": ("CertificationRequest", "build_csr", "parse_csr"),
    "errors": ("ScepError", "ScepErrorReason"),
    "identity": ("Credential", "SigningKey", "build_self_signed_certificate"),
    "nextca": ("NEXT_CA_CERT_CONTENT_TYPE", "build_next_ca_certificates",
               "parse_next_ca_certificates"),
    "request": (
        "IssuerAndSerial", "IssuerAndSubject", "RequestParameters", "ScepRequest",
        "build_cert_poll", "build_get_cert", "build_get_crl", "build_pkcs_req",
        "build_renewal_req", "new_nonce", "parse_request", "transaction_id_for",
    ),
    "types": ("FailInfo", "MessageType", "PkiStatus", "ReplyTo"),
    "wire": (
        "PKI_MESSAGE_CONTENT_TYPE", "check_signing_time", "decode_message_param",
        "encode_message_param",
    ),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value  # found once: the next use is a plain attribute
        return value
    try:  # a submodule (`scep.cacert.identify_roles`)
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = [
    "CA_CERT_CONTENT_TYPE",
    "CA_RA_CERT_CONTENT_TYPE",
    "NEXT_CA_CERT_CONTENT_TYPE",
    "PKI_MESSAGE_CONTENT_TYPE",
    "CACertificates",
    "Capabilities",
    "Capability",
    "CertRep",
    "CertificationRequest",
    "ContentCipher",
    "Credential",
    "DigestAlgorithm",
    "FailInfo",
    "IssuerAndSerial",
    "IssuerAndSubject",
    "MessageType",
    "PkiStatus",
    "RandomBytes",
    "ReplyTo",
    "RequestParameters",
    "ScepError",
    "ScepErrorReason",
    "ScepRequest",
    "SigningKey",
    "build_ca_certificates",
    "build_cert_poll",
    "build_cert_rep_failure",
    "build_cert_rep_pending",
    "build_cert_rep_success",
    "build_csr",
    "build_get_cert",
    "build_get_crl",
    "build_next_ca_certificates",
    "build_pkcs_req",
    "build_renewal_req",
    "build_self_signed_certificate",
    "certs_only",
    "check_signing_time",
    "decode_message_param",
    "encode_message_param",
    "new_nonce",
    "parse_ca_certificates",
    "parse_capabilities",
    "parse_cert_rep",
    "parse_csr",
    "parse_next_ca_certificates",
    "parse_request",
    "read_certs_only",
    "transaction_id_for",
]
