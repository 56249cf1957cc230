"""The DER fast path of read_signed (engine/scep/_fastder.py): it reads every plain-DER
SignedData exactly as asn1crypto does, and hands anything else to asn1crypto."""

from __future__ import annotations

import pytest
from asn1crypto import cms, core
from cryptography.hazmat.primitives import serialization

from engine.scep import (
    ContentCipher,
    DigestAlgorithm,
    FailInfo,
    RequestParameters,
    build_cert_rep_failure,
    build_cert_rep_pending,
    build_csr,
    build_pkcs_req,
    new_nonce,
    parse_request,
)
from engine.scep import cms as scep_cms
from engine.scep._fastder import (
    certificate_issuer_and_serial,
    oid_text,
    read_enveloped_data,
    read_signed_data,
    signer_issuer_and_serial,
)
from tests.scep.scep_support import NOW, name, pkcs_req, pki, random_bytes, vector

VECTORS = ["pkcsreq_des_sha1_micromdm.der", "pkcsreq_wrong_challenge_micromdm.der",
           "renewalreq_des_sha1_micromdm.der", "certrep_success_micromdm.der",
           "certrep_renewal_success_micromdm.der", "certrep_failure_badrequest_micromdm.der",
           "certrep_failure_badrequest_ours.der", "certrep_pending_ours.der"]


def _our_messages() -> list[bytes]:
    p = pki()
    out = []
    for cipher, digest in [(ContentCipher.AES_128_CBC, DigestAlgorithm.SHA256),
                           (ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA1),
                           (ContentCipher.AES_256_CBC, DigestAlgorithm.SHA512)]:
        params = RequestParameters(
            signer=p.client, recipient=p.ca.certificate, transaction_id="TX-FAST",
            sender_nonce=new_nonce(random_bytes(3)), cipher=cipher, digest=digest,
            signing_time=NOW)
        csr = build_csr(p.client_key, name("router1.example.com"), challenge_password="pw")
        out.append(build_pkcs_req(params, csr, random_bytes=random_bytes(4)))
        reply = parse_request(out[-1], recipients=[p.ca]).reply_to
        out.append(build_cert_rep_pending(reply, signer=p.ca, sender_nonce=b"s" * 16,
                                          signing_time=NOW))
        out.append(build_cert_rep_failure(reply, FailInfo.BAD_REQUEST, signer=p.ca,
                                          sender_nonce=b"s" * 16, signing_time=NOW,
                                          fail_info_text="no"))
    out.append(pkcs_req(b"\x30\x00"))
    return out


def _fields(msg: scep_cms.SignedMessage) -> tuple[object, ...]:
    return (msg.content, msg.content_type, msg.digest, msg.signature_oid, msg.attributes,
            msg.certificates, msg.signed_attrs, msg.signature, msg.signer_info_der,
            msg.certificate_ders)


@pytest.mark.parametrize("der", [vector(v) for v in VECTORS] + _our_messages())
def test_the_fast_path_reads_what_asn1crypto_reads(der: bytes) -> None:
    assert read_signed_data(der, scep_cms.OID_SIGNED_DATA) is not None  # the fast path ran
    fast = scep_cms.read_signed(der, "m")
    slow = scep_cms._read_signed_asn1(der, "m")
    assert _fields(fast) == _fields(slow)
    assert fast._signer_info.dump() == slow._signer_info.dump()


def _rewrap_indefinite(der: bytes) -> bytes:
    """The same ContentInfo with its outer SEQUENCE in BER indefinite-length form."""
    info = cms.ContentInfo.load(der)
    return b"\x30\x80" + info.contents + b"\x00\x00"


def _with_two_signers(der: bytes) -> bytes:
    info = cms.ContentInfo.load(der)
    sd = info["content"]
    si = sd["signer_infos"][0]
    sd["signer_infos"] = cms.SignerInfos([si, si])
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump(force=True)


def test_other_shapes_go_to_asn1crypto() -> None:
    der = _our_messages()[0]
    assert read_signed_data(der + b"\x00", scep_cms.OID_SIGNED_DATA) is None  # trailing byte
    assert read_signed_data(der[:-1], scep_cms.OID_SIGNED_DATA) is None  # truncated
    assert read_signed_data(_with_two_signers(der), scep_cms.OID_SIGNED_DATA) is None
    assert read_signed_data(der, scep_cms.OID_ENVELOPED_DATA) is None  # another content type
    ber = _rewrap_indefinite(der)
    assert read_signed_data(ber, scep_cms.OID_SIGNED_DATA) is None
    # ... where the full parser still reads BER as before, and still refuses two signers
    assert _fields(scep_cms.read_signed(ber)) == _fields(scep_cms.read_signed(der))
    with pytest.raises(scep_cms.ScepError, match="2 SignerInfos"):
        scep_cms.read_signed(_with_two_signers(der))


@pytest.mark.parametrize("oid", ["1.2.840.113549.1.7.2", "2.16.840.1.113733.1.9.7", "2.5.4.3",
                                 "0.9.2342.19200300.100.1.25", "2.999.1", "1.3.6.1.5.5.7.24.1"])
def test_oid_text_agrees_with_asn1crypto(oid: str) -> None:
    assert oid_text(core.ObjectIdentifier(oid).contents) == oid


@pytest.mark.parametrize("der", [vector(v) for v in VECTORS] + _our_messages())
def test_the_signer_found_by_bytes_is_the_one_rfc_5280_matching_finds(der: bytes) -> None:
    msg = scep_cms.read_signed(der, "m")
    by_bytes = msg._signer_by_bytes()
    assert by_bytes is not None
    assert by_bytes == msg.find_signer(list(msg.certificates))  # a copy: the full comparison
    issuer, serial = certificate_issuer_and_serial(
        by_bytes.public_bytes(serialization.Encoding.DER)) or (b"", 0)
    assert (issuer, serial) == (by_bytes.issuer.public_bytes(), by_bytes.serial_number)


def test_a_key_identifier_sid_is_left_to_the_full_comparison() -> None:
    si = cms.SignerInfo({"version": "v3", "sid": cms.SignerIdentifier(
        {"subject_key_identifier": b"k" * 20}), "digest_algorithm": {"algorithm": "sha256"},
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"}, "signature": b"s"})
    assert signer_issuer_and_serial(si.dump()) is None


def _envelopes() -> list[bytes]:
    p = pki()
    out = [scep_cms.envelope(b"payload" * 20, recipient=p.ca.certificate, cipher=cipher,
                             random_bytes=random_bytes(5))
           for cipher in (ContentCipher.AES_128_CBC, ContentCipher.AES_256_CBC,
                          ContentCipher.DES_EDE3_CBC)]
    return out


@pytest.mark.parametrize("der", _envelopes())
def test_the_fast_envelope_path_decrypts_what_asn1crypto_decrypts(der: bytes) -> None:
    p = pki()
    assert read_enveloped_data(der, scep_cms.OID_ENVELOPED_DATA) is not None
    assert scep_cms._recipient_by_bytes(
        read_enveloped_data(der, scep_cms.OID_ENVELOPED_DATA), [p.ra_encrypt, p.ca]) is not None
    fast = scep_cms.open_envelope_to(der, [p.ra_encrypt, p.ca])
    assert fast == scep_cms._open_envelope_asn1(der, [p.ra_encrypt, p.ca], "e")
    assert fast[0] == b"payload" * 20
    assert fast[2] is p.ca  # both paths say which recipient it was enveloped to


def test_envelopes_of_other_shapes_go_to_asn1crypto() -> None:
    p = pki()
    der = _envelopes()[0]
    assert read_enveloped_data(der + b"\x00", scep_cms.OID_ENVELOPED_DATA) is None
    assert read_enveloped_data(der, scep_cms.OID_SIGNED_DATA) is None
    raw = read_enveloped_data(der, scep_cms.OID_ENVELOPED_DATA)
    assert raw is not None
    assert scep_cms._recipient_by_bytes(raw, [p.ra_encrypt]) is None  # not ours: asn1crypto
    with pytest.raises(scep_cms.ScepError, match="not encrypted to any of our certificates"):
        scep_cms.open_envelope(der, [p.ra_encrypt])
    # micromdm's envelopes (constructed encryptedContent) are read by asn1crypto
    micromdm = scep_cms.read_signed(vector("pkcsreq_des_sha1_micromdm.der")).content
    assert read_enveloped_data(micromdm, scep_cms.OID_ENVELOPED_DATA) is None
