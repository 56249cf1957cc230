"""Our client messages through our server parser and back, in memory, for every algorithm."""

from __future__ import annotations

import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.scep import (
    CACertificates,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    FailInfo,
    MessageType,
    PkiStatus,
    RequestParameters,
    ScepError,
    ScepErrorReason,
    build_cert_poll,
    build_cert_rep_failure,
    build_cert_rep_pending,
    build_cert_rep_success,
    build_csr,
    build_get_cert,
    build_get_crl,
    build_pkcs_req,
    build_renewal_req,
    new_nonce,
    parse_cert_rep,
    parse_request,
    transaction_id_for,
)
from tests.scep.scep_support import NOW, crl, ec_key, issue, name, pki, random_bytes

CIPHERS = list(ContentCipher)
DIGESTS = list(DigestAlgorithm)


def params(cipher: ContentCipher = ContentCipher.AES_128_CBC,
           digest: DigestAlgorithm = DigestAlgorithm.SHA256,
           recipient: x509.Certificate | None = None, seed: int = 7,
           signer: Credential | None = None) -> RequestParameters:
    p = pki()
    signer = signer or p.client
    return RequestParameters(
        signer=signer, recipient=recipient or p.ca.certificate,
        transaction_id=transaction_id_for(signer.private_key.public_key()),
        sender_nonce=new_nonce(random_bytes(seed)), cipher=cipher, digest=digest,
        signing_time=NOW,
    )


def csr_for(challenge: str = "s3cret!") -> x509.CertificateSigningRequest:
    return build_csr(pki().client_key, name("router1.example.com"),
                     challenge_password=challenge, dns_names=["router1.example.com"])


@pytest.mark.parametrize(("cipher", "digest"), list(itertools.product(CIPHERS, DIGESTS)))
def test_pkcsreq_and_success_round_trip(cipher: ContentCipher, digest: DigestAlgorithm) -> None:
    p = pki()
    req_params = params(cipher, digest)
    der = build_pkcs_req(req_params, csr_for(), random_bytes=random_bytes(1))

    req = parse_request(der, recipients=[p.ca])
    assert req.message_type is MessageType.PKCS_REQ
    assert (req.cipher, req.digest) == (cipher, digest)
    assert req.transaction_id == req_params.transaction_id
    assert req.sender_nonce == req_params.sender_nonce
    assert req.signing_time == NOW
    assert req.signer_certificate == p.client.certificate
    assert req.csr is not None and req.csr.challenge_password == "s3cret!"
    assert req.csr.dns_names == ("router1.example.com",)

    issued = issue(req.csr.csr, p.ca, 1000)
    server_nonce = new_nonce(random_bytes(99))
    rep_der = build_cert_rep_success(
        req.reply_to, signer=p.ca, sender_nonce=server_nonce, random_bytes=random_bytes(2),
        certificates=[issued], signing_time=NOW)

    rep = parse_cert_rep(rep_der, signers=[p.ca.certificate],
                         transaction_id=req_params.transaction_id,
                         sender_nonce=req_params.sender_nonce, recipient=p.client)
    assert rep.status is PkiStatus.SUCCESS
    assert (rep.cipher, rep.digest) == (cipher, digest)  # answered with the request's own
    assert rep.sender_nonce == server_nonce
    assert rep.recipient_nonce == req_params.sender_nonce
    assert rep.certificate_for(p.client_key.public_key()) == issued


def test_success_to_ra_mode() -> None:
    """Envelope to the RA encryption cert; the CertRep is checked against the RA signer."""
    p = pki()
    cas = CACertificates(ca=p.ca.certificate, ra_signing=p.ra_sign.certificate,
                         ra_encryption=p.ra_encrypt.certificate)
    rp = params(recipient=cas.recipient)
    der = build_pkcs_req(rp, csr_for(), random_bytes=random_bytes(3))
    with pytest.raises(ScepError) as e:
        parse_request(der, recipients=[p.ca])  # the CA alone cannot open it
    assert e.value.reason is ScepErrorReason.NOT_A_RECIPIENT
    req = parse_request(der, recipients=[p.ca, p.ra_encrypt])
    assert req.csr is not None
    rep_der = build_cert_rep_success(
        req.reply_to, signer=p.ra_sign, sender_nonce=new_nonce(random_bytes(4)),
        random_bytes=random_bytes(5), certificates=[issue(req.csr.csr, p.ca, 7)],
        extra_certificates=[p.ca.certificate])
    rep = parse_cert_rep(rep_der, signers=[cas.signer], transaction_id=rp.transaction_id,
                         sender_nonce=rp.sender_nonce, recipient=p.client)
    assert rep.status is PkiStatus.SUCCESS and rep.signer_certificate == p.ra_sign.certificate
    # ... and the CA certificate, though included, does not stand in for the RA signer.
    with pytest.raises(ScepError) as e2:
        parse_cert_rep(rep_der, signers=[p.ca.certificate], transaction_id=rp.transaction_id,
                       sender_nonce=rp.sender_nonce, recipient=p.client)
    assert e2.value.reason is ScepErrorReason.UNKNOWN_SIGNER


def test_renewal_req_signed_by_existing_certificate() -> None:
    p = pki()
    current = Credential(issue(csr_for(), p.ca, 500), p.client_key)
    rp = params(signer=current)
    der = build_renewal_req(rp, csr_for(), random_bytes=random_bytes(6))
    req = parse_request(der, recipients=[p.ca])
    assert req.message_type is MessageType.RENEWAL_REQ
    assert req.signer_certificate == current.certificate
    req.signer_certificate.verify_directly_issued_by(p.ca.certificate)  # CA's renewal check


def test_cert_poll_pending_then_success() -> None:
    p = pki()
    rp = params(cipher=ContentCipher.DES_EDE3_CBC, digest=DigestAlgorithm.SHA1)
    der = build_cert_poll(rp, issuer=p.ca.certificate.subject,
                          subject=name("router1.example.com"), random_bytes=random_bytes(8))
    req = parse_request(der, recipients=[p.ca])
    assert req.message_type is MessageType.CERT_POLL
    assert req.issuer_and_subject is not None
    assert req.issuer_and_subject.issuer == p.ca.certificate.subject
    assert req.issuer_and_subject.subject == name("router1.example.com")
    assert req.transaction_id == rp.transaction_id

    pending = build_cert_rep_pending(req.reply_to, signer=p.ca,
                                     sender_nonce=new_nonce(random_bytes(9)))
    rep = parse_cert_rep(pending, signers=[p.ca.certificate], transaction_id=rp.transaction_id,
                         sender_nonce=rp.sender_nonce, recipient=p.client)
    assert rep.status is PkiStatus.PENDING
    assert rep.certificates == () and rep.fail_info is None and rep.cipher is None
    assert rep.digest is DigestAlgorithm.SHA1


def test_get_cert_by_issuer_and_serial() -> None:
    p = pki()
    rp = params()
    der = build_get_cert(rp, issuer=p.ca.certificate.subject, serial_number=2**70 + 5,
                         random_bytes=random_bytes(10))
    req = parse_request(der, recipients=[p.ca])
    assert req.message_type is MessageType.GET_CERT
    assert req.issuer_and_serial is not None
    assert req.issuer_and_serial.serial_number == 2**70 + 5
    assert req.issuer_and_serial.issuer == p.ca.certificate.subject


def test_get_crl_answered_with_a_crl() -> None:
    p = pki()
    rp = params(cipher=ContentCipher.AES_256_CBC, digest=DigestAlgorithm.SHA512)
    der = build_get_crl(rp, issuer=p.ca.certificate.subject, serial_number=1000,
                        random_bytes=random_bytes(11))
    req = parse_request(der, recipients=[p.ca])
    assert req.message_type is MessageType.GET_CRL
    the_crl = crl(p.ca, [1000, 1001])
    rep_der = build_cert_rep_success(req.reply_to, signer=p.ca,
                                     sender_nonce=new_nonce(random_bytes(12)),
                                     random_bytes=random_bytes(13), crls=[the_crl])
    rep = parse_cert_rep(rep_der, signers=[p.ca.certificate], transaction_id=rp.transaction_id,
                         sender_nonce=rp.sender_nonce, recipient=p.client)
    assert rep.certificates == ()
    assert [c.public_bytes(serialization.Encoding.DER) for c in rep.crls] == [
        the_crl.public_bytes(serialization.Encoding.DER)]
    assert {r.serial_number for r in rep.crls[0]} == {1000, 1001}


@pytest.mark.parametrize("fail_info", list(FailInfo))
def test_failure_carries_fail_info(fail_info: FailInfo) -> None:
    p = pki()
    rp = params()
    req = parse_request(build_pkcs_req(rp, csr_for(), random_bytes=random_bytes(14)),
                        recipients=[p.ca])
    der = build_cert_rep_failure(req.reply_to, fail_info, signer=p.ca,
                                 sender_nonce=new_nonce(random_bytes(15)),
                                 fail_info_text="nope" if fail_info is FailInfo.BAD_TIME else None)
    rep = parse_cert_rep(der, signers=[p.ca.certificate], transaction_id=rp.transaction_id,
                         sender_nonce=rp.sender_nonce, recipient=p.client)
    assert rep.status is PkiStatus.FAILURE
    assert rep.fail_info is fail_info
    assert rep.fail_info_text == ("nope" if fail_info is FailInfo.BAD_TIME else None)


def test_ecdsa_signed_cert_rep_verifies() -> None:
    """A CA with an EC key signs CertReps with ECDSA (requests still go to an RSA RA)."""
    p = pki()
    eck = ec_key("ca")
    from tests.scep.scep_support import ca_certificate

    ec_ca = Credential(ca_certificate(eck, name("EC CA")), eck)
    rp = params()
    req = parse_request(build_pkcs_req(rp, csr_for(), random_bytes=random_bytes(16)),
                        recipients=[p.ca])
    der = build_cert_rep_pending(req.reply_to, signer=ec_ca,
                                 sender_nonce=new_nonce(random_bytes(17)))
    rep = parse_cert_rep(der, signers=[ec_ca.certificate], transaction_id=rp.transaction_id,
                         sender_nonce=rp.sender_nonce, recipient=p.client)
    assert rep.status is PkiStatus.PENDING
    # deterministic ECDSA: the same inputs give the same bytes
    assert der == build_cert_rep_pending(req.reply_to, signer=ec_ca,
                                         sender_nonce=new_nonce(random_bytes(17)))


def test_request_signed_with_ec_key_is_bad_alg_but_answerable() -> None:
    """An EC signer cannot receive the RSA envelope of a SUCCESS: badAlg, with reply_to."""
    p = pki()
    eck = ec_key("client")
    from engine.scep import build_self_signed_certificate

    ec_signer = Credential(build_self_signed_certificate(
        eck, name("ec-router"), not_before=NOW, not_after=NOW, serial_number=3), eck)
    rp = params(signer=ec_signer)
    csr = build_csr(eck, name("ec-router"), challenge_password="pw")
    with pytest.raises(ScepError) as e:
        parse_request(build_pkcs_req(rp, csr, random_bytes=random_bytes(18)),
                      recipients=[p.ca])
    assert e.value.fail_info is FailInfo.BAD_ALG
    assert e.value.reply_to is not None
    assert e.value.reply_to.transaction_id == rp.transaction_id
    assert e.value.reply_to.recipient_nonce == rp.sender_nonce
    # the server can still answer FAILURE badAlg to it, and the EC client can verify that
    der = build_cert_rep_failure(e.value.reply_to, FailInfo.BAD_ALG, signer=p.ca,
                                 sender_nonce=new_nonce(random_bytes(19)))
    rep = parse_cert_rep(der, signers=[p.ca.certificate], transaction_id=rp.transaction_id,
                         sender_nonce=rp.sender_nonce, recipient=ec_signer)
    assert rep.fail_info is FailInfo.BAD_ALG


def test_signer_info_uses_rsa_encryption_and_sorted_attributes() -> None:
    """Our SignerInfo says rsaEncryption, and signedAttrs are in DER (sorted) order."""
    from asn1crypto import cms

    p = pki()
    rp = params()
    der = build_pkcs_req(rp, csr_for(), random_bytes=random_bytes(20))
    si = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    assert si["signature_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.1"
    encoded = [a.dump() for a in si["signed_attrs"]]
    assert encoded == sorted(encoded)
    assert len(encoded) == 6  # contentType, messageDigest, signingTime, type, txid, nonce
    del p


def test_request_bytes_depend_only_on_inputs_except_key_transport() -> None:
    """Same inputs -> same signed attributes and ciphertext; only the RSA-encrypted key
    (OpenSSL's PKCS#1 padding randomness) differs."""
    from asn1crypto import cms

    rp = params()
    a = build_pkcs_req(rp, csr_for(), random_bytes=random_bytes(21))
    b = build_pkcs_req(rp, csr_for(), random_bytes=random_bytes(21))

    def encrypted_content(der: bytes) -> bytes:
        content = cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native
        env = cms.ContentInfo.load(content)["content"]
        return bytes(env["encrypted_content_info"]["encrypted_content"].native)

    assert encrypted_content(a) == encrypted_content(b)
