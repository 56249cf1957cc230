"""What real peers send that the core used to refuse, and what it sends them (issue 13).

- strongSwan `pki --scep --san` writes its PKCS#10 attributes in BER, not DER, SET OF order;
  the proof of possession is verified over the certificationRequestInfo exactly as received.
- strongSwan `pki --rsa-padding pss` signs the pkiMessage with RSASSA-PSS; a CA may answer so.
- failInfoText goes out under id-scep-failInfoText (RFC 8894), and is read under both OIDs.
"""

from __future__ import annotations

import pytest
from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine.scep import (
    CertRep,
    FailInfo,
    MessageType,
    PkiStatus,
    ReplyTo,
    ScepError,
    ScepErrorReason,
    build_cert_rep_failure,
    parse_cert_rep,
    parse_csr,
    parse_request,
)
from engine.scep import attributes as A
from engine.scep import cms as scep_cms
from engine.scep.algorithms import DigestAlgorithm
from tests.scep import raw_der as R
from tests.scep.scep_support import NOW, pkcs_req, pki, vector

PSS_OID = "1.2.840.113549.1.1.10"

# ------------------------------------------------------------- 1. attributes in BER order


def _ber_ordered_csr(key: rsa.RSAPrivateKey, attributes: list[bytes]) -> bytes:
    """A request whose [0] attributes are in the order given, signed over that encoding."""
    info = R.tlv(0x30, b"\x02\x01\x00" + R.cn("ber-order") + R.spki(key)
                 + R.tlv(0xA0, b"".join(attributes)))
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    algorithm = R.tlv(0x30, R.oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    return R.tlv(0x30, info + algorithm + R.tlv(0x03, b"\x00" + signature))


def _attributes_ber_order() -> list[bytes]:
    san = R.extension("2.5.29.17", R.tlv(0x30, R.tlv(0x82, b"r5.example.com")))
    attrs = [R.extension_request(san), R.challenge("secret123")]
    assert attrs != sorted(attrs)  # not DER's order
    return attrs


def test_strongswan_request_with_san_is_read_and_verified() -> None:
    der = vector("csr_ber_attribute_order_strongswan.der")
    with pytest.raises(ValueError, match="InvalidSetOrdering"):
        x509.load_der_x509_csr(der)  # what refused it before
    req = parse_csr(der)
    assert req.challenge_password == "secret123"
    assert req.dns_names == ("router5.example.com",)
    assert req.der == der  # kept as received
    assert req.subject.rfc4514_string() == "CN=router5.example.com,O=Example,C=US"


def test_attributes_in_ber_order_verify_over_the_bytes_received() -> None:
    key = pki().client_key
    der = _ber_ordered_csr(key, _attributes_ber_order())
    req = parse_csr(der)
    assert (req.challenge_password, req.dns_names, req.der) == ("secret123",
                                                                 ("r5.example.com",), der)


def test_the_der_reordered_copy_is_not_what_is_verified() -> None:
    """Swap the attributes into DER order but keep the signature: it was made over the BER
    order, so a verifier that re-encoded before verifying would accept this forgery."""
    key = pki().client_key
    attrs = _attributes_ber_order()
    der = _ber_ordered_csr(key, attrs)
    reordered = der.replace(b"".join(attrs), b"".join(sorted(attrs)))
    assert reordered != der and len(reordered) == len(der)
    with pytest.raises(ScepError) as e:
        parse_csr(reordered)
    assert e.value.reason is ScepErrorReason.BAD_CSR_SIGNATURE
    assert e.value.fail_info is FailInfo.BAD_MESSAGE_CHECK


def test_a_tampered_ber_ordered_request_is_bad_message_check() -> None:
    der = bytearray(_ber_ordered_csr(pki().client_key, _attributes_ber_order()))
    der[der.index(b"secret123")] ^= 0x01
    with pytest.raises(ScepError) as e:
        parse_csr(bytes(der))
    assert e.value.reason is ScepErrorReason.BAD_CSR_SIGNATURE


def test_a_pkcsreq_carrying_a_ber_ordered_request_is_parsed() -> None:
    der = _ber_ordered_csr(pki().client_key, _attributes_ber_order())
    req = parse_request(pkcs_req(der), recipients=[pki().ca])
    assert req.csr is not None and req.csr.der == der
    assert req.csr.challenge_password == "secret123"


# ------------------------------------------------------------------------- 2. RSASSA-PSS


def resign_pss(der: bytes, key: rsa.RSAPrivateKey, *, pss_hash: str = "sha256",
               mgf_hash: str = "sha256", salt: int = 32) -> bytes:
    """The same SignedData with its one SignerInfo re-signed RSASSA-PSS (id-RSASSA-PSS with
    parameters), as strongSwan `pki --rsa-padding pss` signs."""
    info = cms.ContentInfo.load(der)
    si = info["content"]["signer_infos"][0]
    to_be_signed = b"\x31" + si["signed_attrs"].dump()[1:]  # EXPLICIT SET OF (RFC 5652 §5.4)
    hash_cls = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha1": hashes.SHA1}
    si["signature_algorithm"] = algos.SignedDigestAlgorithm({
        "algorithm": "rsassa_pss",
        "parameters": algos.RSASSAPSSParams({
            "hash_algorithm": {"algorithm": pss_hash},
            "mask_gen_algorithm": {"algorithm": "mgf1",
                                   "parameters": {"algorithm": mgf_hash}},
            "salt_length": salt})})
    si["signature"] = key.sign(to_be_signed, padding.PSS(
        mgf=padding.MGF1(hash_cls[mgf_hash]()), salt_length=salt), hash_cls[pss_hash]())
    return bytes(info.dump(force=True))


def test_a_pss_signed_pkcsreq_is_verified() -> None:
    der = resign_pss(pkcs_req(R.csr(pki().client_key, R.cn("pss"), [R.challenge("pw")])),
                     pki().client_key)
    assert scep_cms.read_signed(der).signature_oid == PSS_OID
    req = parse_request(der, recipients=[pki().ca])
    assert req.signature_algorithm == PSS_OID
    assert req.message_type is MessageType.PKCS_REQ
    assert req.csr is not None and req.csr.challenge_password == "pw"


@pytest.mark.parametrize("salt", [0, 20, 32, 222])
def test_pss_with_any_salt_length_verifies(salt: int) -> None:
    der = resign_pss(pkcs_req(R.csr(pki().client_key, R.cn("pss"))), pki().client_key,
                     salt=salt)
    assert parse_request(der, recipients=[pki().ca]).signature_algorithm == PSS_OID


def test_a_forged_pss_signature_is_bad_message_check() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = resign_pss(pkcs_req(R.csr(pki().client_key, R.cn("pss"))), other)
    with pytest.raises(ScepError) as e:
        parse_request(der, recipients=[pki().ca])
    assert e.value.reason is ScepErrorReason.BAD_SIGNATURE
    assert e.value.fail_info is FailInfo.BAD_MESSAGE_CHECK
    assert e.value.reply_to is not None  # still answerable with a CertRep FAILURE


def test_pss_whose_hash_is_not_the_digest_algorithm_is_bad_alg() -> None:
    der = resign_pss(pkcs_req(R.csr(pki().client_key, R.cn("pss"))), pki().client_key,
                     pss_hash="sha384")
    with pytest.raises(ScepError) as e:
        parse_request(der, recipients=[pki().ca])
    assert e.value.fail_info is FailInfo.BAD_ALG and e.value.reply_to is not None


def _reply_to() -> ReplyTo:
    return ReplyTo(transaction_id="TX-PSS", recipient_nonce=b"N" * 16,
                   digest=DigestAlgorithm.SHA256, message_type=MessageType.PKCS_REQ,
                   cipher=None, recipient=pki().client.certificate)


def _failure(text: str | None = "no such device") -> bytes:
    return build_cert_rep_failure(_reply_to(), FailInfo.BAD_REQUEST, signer=pki().ca,
                                  sender_nonce=b"S" * 16, signing_time=NOW,
                                  fail_info_text=text)


def _parse(der: bytes) -> CertRep:
    return parse_cert_rep(der, signers=[pki().ca.certificate], transaction_id="TX-PSS",
                          sender_nonce=b"N" * 16, recipient=pki().client)


def test_the_client_accepts_a_pss_signed_certrep() -> None:
    ca_key = pki().ca.private_key
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    rep = _parse(resign_pss(_failure(), ca_key))
    assert rep.status is PkiStatus.FAILURE and rep.fail_info_text == "no such device"


def test_our_certrep_stays_rsa_encryption() -> None:
    """strongSwan 5.9.8 verifies SignerInfo algorithm rsaEncryption and nothing else."""
    assert scep_cms.read_signed(_failure(), "CertRep").signature_oid == "1.2.840.113549.1.1.1"


# --------------------------------------------------------------------------- 3. failInfoText


def test_fail_info_text_is_sent_under_the_rfc_8894_oid() -> None:
    attrs = scep_cms.read_signed(_failure("wrong challenge"), "CertRep").attributes
    assert A.OID_FAIL_INFO_TEXT == "1.3.6.1.5.5.7.24.1"
    assert "1.3.6.1.5.5.7.24.1" in attrs
    assert "2.16.840.1.113733.1.9.24" not in attrs
    assert _parse(_failure("wrong challenge")).fail_info_text == "wrong challenge"


def test_fail_info_text_under_the_verisign_oid_is_read_too() -> None:
    p = pki()
    attrs = [A.printable(A.OID_MESSAGE_TYPE, str(int(MessageType.CERT_REP))),
             A.printable(A.OID_TRANSACTION_ID, "TX-PSS"),
             A.printable(A.OID_PKI_STATUS, str(int(PkiStatus.FAILURE))),
             A.printable(A.OID_FAIL_INFO, str(int(FailInfo.BAD_ALG))),
             A.octets(A.OID_SENDER_NONCE, b"S" * 16),
             A.octets(A.OID_RECIPIENT_NONCE, b"N" * 16),
             scep_cms.attribute("2.16.840.1.113733.1.9.24",
                                core.UTF8String("old-style text"))]
    der = scep_cms.sign(b"", signer=p.ca, digest=DigestAlgorithm.SHA256, attributes=attrs,
                        certificates=[p.ca.certificate], signing_time=NOW)
    rep = _parse(der)
    assert rep.fail_info is FailInfo.BAD_ALG  # value 0, kept as such
    assert rep.fail_info_text == "old-style text"

