"""Byte-level vectors captured once from the real micromdm peers (capture_micromdm.py)."""

from __future__ import annotations

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization

from engine.scep import (
    CA_CERT_CONTENT_TYPE,
    Capability,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    FailInfo,
    MessageType,
    PkiStatus,
    ScepError,
    ScepErrorReason,
    ScepRequest,
    parse_ca_certificates,
    parse_capabilities,
    parse_cert_rep,
    parse_request,
)
from tests.scep.scep_support import vector, vector_cert, vector_key, vector_manifest

SHA1_WITH_RSA = "1.2.840.113549.1.1.5"


def micromdm_ca() -> Credential:
    return Credential(vector_cert("micromdm_ca.pem"), vector_key("micromdm_ca.key.pem"))


def parse_vector_request(name: str) -> ScepRequest:
    return parse_request(vector(name), recipients=[micromdm_ca()])


def test_caps_vector_has_no_trailing_newline_and_parses() -> None:
    body = vector("getcacaps_micromdm.txt")
    assert not body.endswith(b"\n")
    caps = parse_capabilities(body)
    assert caps.keywords == {Capability.RENEWAL, Capability.SHA1, Capability.SHA256,
                             Capability.AES, Capability.DES3, Capability.SCEP_STANDARD,
                             Capability.POST_PKI_OPERATION}
    assert caps.strongest_cipher() is ContentCipher.AES_128_CBC
    assert caps.strongest_digest() is DigestAlgorithm.SHA256


def test_getcacert_vector_is_the_ca() -> None:
    cas = parse_ca_certificates(CA_CERT_CONTENT_TYPE, vector("getcacert_micromdm.der"))
    assert cas.ca == vector_cert("micromdm_ca.pem")
    assert not cas.has_ra and cas.recipient == cas.ca == cas.signer


def test_server_parses_micromdm_pkcsreq_des_sha1() -> None:
    req = parse_vector_request("pkcsreq_des_sha1_micromdm.der")
    manifest = vector_manifest()
    assert req.message_type is MessageType.PKCS_REQ
    assert req.cipher is ContentCipher.DES_CBC  # Go pkcs7 default, single DES
    assert req.digest is DigestAlgorithm.SHA1
    assert req.signature_algorithm == SHA1_WITH_RSA
    assert req.csr is not None
    assert req.csr.challenge_password == manifest["challenge"]
    assert req.csr.subject.rfc4514_string() == "CN=router1.example.com,OU=NET,O=Example,C=US"
    # the self-signed signer uses the CSR's key (micromdm's "SCEP SIGNER")
    assert req.signer_certificate.public_key() == req.csr.csr.public_key()
    assert req.csr.csr.public_key() == vector_key("micromdm_client1.key.pem").public_key()
    assert len(req.sender_nonce) == 16
    assert req.transaction_id  # base64 of a SHA-1 key hash in micromdm's scheme


def test_server_parses_micromdm_renewalreq_signed_by_issued_cert() -> None:
    req = parse_vector_request("renewalreq_des_sha1_micromdm.der")
    assert req.message_type is MessageType.RENEWAL_REQ
    assert req.signer_certificate == vector_cert("issued_router1_micromdm.pem")
    req.signer_certificate.verify_directly_issued_by(micromdm_ca().certificate)


def test_server_reads_wrong_challenge_as_sent() -> None:
    req = parse_vector_request("pkcsreq_wrong_challenge_micromdm.der")
    assert req.csr is not None and req.csr.challenge_password == "wrong-pw"


def _client_parse(request_vector: str, certrep_vector: str, client_key: str):  # type: ignore[no-untyped-def]
    req = parse_vector_request(request_vector)
    key = vector_key(client_key)
    return req, parse_cert_rep(
        vector(certrep_vector), signers=[micromdm_ca().certificate],
        transaction_id=req.transaction_id, sender_nonce=req.sender_nonce,
        recipient=Credential(req.signer_certificate, key))


def test_client_parses_micromdm_certrep_success_sha1_with_rsa_single_des() -> None:
    info = cms.ContentInfo.load(vector("certrep_success_micromdm.der"))
    si = info["content"]["signer_infos"][0]
    assert si["signature_algorithm"]["algorithm"].dotted == SHA1_WITH_RSA  # the quirk

    req, rep = _client_parse("pkcsreq_des_sha1_micromdm.der", "certrep_success_micromdm.der",
                             "micromdm_client1.key.pem")
    assert rep.status is PkiStatus.SUCCESS
    assert rep.cipher is ContentCipher.DES_CBC and rep.digest is DigestAlgorithm.SHA1
    issued = rep.certificate_for(vector_key("micromdm_client1.key.pem").public_key())
    assert issued == vector_cert("issued_router1_micromdm.pem")
    assert issued.serial_number == 2
    assert rep.sender_nonce == req.sender_nonce  # micromdm echoes our nonce as its own


def test_client_parses_micromdm_renewal_certrep() -> None:
    _, rep = _client_parse("renewalreq_des_sha1_micromdm.der",
                           "certrep_renewal_success_micromdm.der", "micromdm_client1.key.pem")
    assert rep.status is PkiStatus.SUCCESS
    (cert,) = rep.certificates
    assert cert.serial_number == 3
    assert cert.public_key() == vector_key("micromdm_client1.key.pem").public_key()


def test_client_parses_micromdm_failure_bad_request() -> None:
    _, rep = _client_parse("pkcsreq_wrong_challenge_micromdm.der",
                           "certrep_failure_badrequest_micromdm.der", "micromdm_client2.key.pem")
    assert rep.status is PkiStatus.FAILURE
    assert rep.fail_info is FailInfo.BAD_REQUEST
    assert rep.certificates == ()


def test_micromdm_certrep_for_another_transaction_is_refused() -> None:
    req = parse_vector_request("pkcsreq_des_sha1_micromdm.der")
    other = parse_vector_request("pkcsreq_wrong_challenge_micromdm.der")
    recipient = Credential(req.signer_certificate, vector_key("micromdm_client1.key.pem"))
    with pytest.raises(ScepError) as e:
        parse_cert_rep(vector("certrep_success_micromdm.der"),
                       signers=[micromdm_ca().certificate], transaction_id=other.transaction_id,
                       sender_nonce=req.sender_nonce, recipient=recipient)
    assert e.value.reason is ScepErrorReason.TRANSACTION_MISMATCH
    with pytest.raises(ScepError) as e:
        parse_cert_rep(vector("certrep_success_micromdm.der"),
                       signers=[micromdm_ca().certificate], transaction_id=req.transaction_id,
                       sender_nonce=other.sender_nonce, recipient=recipient)
    assert e.value.reason is ScepErrorReason.NONCE_MISMATCH


def test_micromdm_certrep_not_trusted_via_its_own_certificates() -> None:
    """The CertRep carries the CA certificate, but only `signers` are trusted."""
    req = parse_vector_request("pkcsreq_des_sha1_micromdm.der")
    with pytest.raises(ScepError) as e:
        parse_cert_rep(vector("certrep_success_micromdm.der"),
                       signers=[req.signer_certificate], transaction_id=req.transaction_id,
                       sender_nonce=req.sender_nonce,
                       recipient=Credential(req.signer_certificate,
                                            vector_key("micromdm_client1.key.pem")))
    assert e.value.reason is ScepErrorReason.UNKNOWN_SIGNER


def test_vector_keys_are_unencrypted_pkcs8() -> None:
    pem = vector("micromdm_ca.key.pem")
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert serialization.load_pem_private_key(pem, None).public_key() == (
        micromdm_ca().certificate.public_key())
