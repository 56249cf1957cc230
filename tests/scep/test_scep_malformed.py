"""Malformed and hostile input: each gets a ScepError with the right reason and failInfo."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import cms, core

from engine.scep import (
    ContentCipher,
    Credential,
    FailInfo,
    RequestParameters,
    ScepError,
    ScepErrorReason,
    build_cert_rep_failure,
    build_cert_rep_pending,
    build_csr,
    build_pkcs_req,
    check_signing_time,
    decode_message_param,
    encode_message_param,
    new_nonce,
    parse_cert_rep,
    parse_request,
)
from engine.scep import attributes as A
from engine.scep import cms as scep_cms
from tests.scep.scep_support import NOW, name, pki, random_bytes

AES128_OID = bytes.fromhex("0609608648016503040102")
AES192_OID = bytes.fromhex("0609608648016503040116")  # aes192-CBC: real, but not ours


def _params(**kw: object) -> RequestParameters:
    p = pki()
    base: dict[str, object] = dict(
        signer=p.client, recipient=p.ca.certificate, transaction_id="TX-1",
        sender_nonce=new_nonce(random_bytes(3)), signing_time=NOW)
    base.update(kw)
    return RequestParameters(**base)  # type: ignore[arg-type]


def _request(**kw: object) -> bytes:
    csr = build_csr(pki().client_key, name("r1"), challenge_password="pw")
    return build_pkcs_req(_params(**kw), csr, random_bytes=random_bytes(4))


def _sign(content: bytes, attrs: list[bytes], signer: Credential | None = None) -> bytes:
    signer = signer or pki().client
    return scep_cms.sign(content, signer=signer, digest=_params().digest, attributes=attrs,
                         certificates=[signer.certificate])


def _scep_attrs(message_type: int = 19) -> list[bytes]:
    return [A.printable(A.OID_MESSAGE_TYPE, str(message_type)),
            A.printable(A.OID_TRANSACTION_ID, "TX-1"),
            A.octets(A.OID_SENDER_NONCE, b"n" * 16)]


def _type_of(attribute: bytes) -> str:
    return str(cms.CMSAttribute.load(attribute)["type"].dotted)


def _parse(der: bytes) -> ScepError:
    with pytest.raises(ScepError) as e:
        parse_request(der, recipients=[pki().ca])
    return e.value


@pytest.mark.parametrize("der", [b"", b"garbage", b"\x30", b"\x30\x80\x00\x00",
                                 b"\x30\x03\x02\x01\x05", b"\x04\x00" * 5])
def test_garbage_is_malformed_bad_request(der: bytes) -> None:
    err = _parse(der)
    assert err.reason is ScepErrorReason.MALFORMED
    assert err.fail_info is FailInfo.BAD_REQUEST


def test_every_truncation_is_refused() -> None:
    der = _request()
    for n in [*range(0, len(der), 37), len(der) - 1]:
        err = _parse(der[:n])
        assert err.reason is ScepErrorReason.MALFORMED


def test_trailing_bytes_are_refused() -> None:
    assert _parse(_request() + b"\x00").reason is ScepErrorReason.MALFORMED


def test_tampered_signature_is_bad_message_check_and_answerable() -> None:
    info = cms.ContentInfo.load(_request())
    si = info["content"]["signer_infos"][0]
    sig = bytearray(si["signature"].native)
    sig[10] ^= 0xFF
    si["signature"] = bytes(sig)
    err = _parse(info.dump(force=True))
    assert err.reason is ScepErrorReason.BAD_SIGNATURE
    assert err.fail_info is FailInfo.BAD_MESSAGE_CHECK
    assert err.reply_to is not None and err.reply_to.transaction_id == "TX-1"


def test_tampered_content_is_digest_mismatch() -> None:
    der = bytearray(_request())
    # the last bytes of the eContent are ciphertext, before the certificate set
    info = cms.ContentInfo.load(bytes(der))
    content = info["content"]["encap_content_info"]["content"].native
    at = bytes(der).index(content) + len(content) - 3
    der[at] ^= 0x01
    err = _parse(bytes(der))
    assert err.reason is ScepErrorReason.DIGEST_MISMATCH
    assert err.fail_info is FailInfo.BAD_MESSAGE_CHECK


def test_unknown_cipher_oid_is_bad_alg() -> None:
    p = pki()
    env = scep_cms.envelope(b"x" * 40, recipient=p.ca.certificate,
                            cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(5))
    assert env.count(AES128_OID) == 1
    der = _sign(env.replace(AES128_OID, AES192_OID), _scep_attrs())
    err = _parse(der)
    assert err.reason is ScepErrorReason.UNSUPPORTED_ALGORITHM
    assert err.fail_info is FailInfo.BAD_ALG
    assert err.reply_to is not None  # the CA can still answer FAILURE badAlg


def test_unknown_key_transport_is_bad_alg() -> None:
    p = pki()
    env = scep_cms.envelope(b"x" * 40, recipient=p.ca.certificate,
                            cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(6))
    rsa_enc = bytes.fromhex("06092a864886f70d010101")
    oaep = bytes.fromhex("06092a864886f70d010107")
    err = _parse(_sign(env.replace(rsa_enc, oaep, 1), _scep_attrs()))
    assert err.fail_info is FailInfo.BAD_ALG


def test_unknown_digest_oid_is_bad_alg() -> None:
    sha256 = bytes.fromhex("0609608648016503040201")
    sha224 = bytes.fromhex("0609608648016503040204")
    err = _parse(_request().replace(sha256, sha224))
    assert err.reason is ScepErrorReason.UNSUPPORTED_ALGORITHM
    assert err.fail_info is FailInfo.BAD_ALG


def test_missing_transaction_id_is_bad_request() -> None:
    p = pki()
    env = scep_cms.envelope(b"x" * 40, recipient=p.ca.certificate,
                            cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(7))
    attrs = [a for a in _scep_attrs() if _type_of(a) != A.OID_TRANSACTION_ID]
    err = _parse(_sign(env, attrs))
    assert err.reason is ScepErrorReason.MISSING_ATTRIBUTE
    assert err.fail_info is FailInfo.BAD_REQUEST


def test_missing_sender_nonce_still_refused() -> None:
    p = pki()
    env = scep_cms.envelope(b"x" * 40, recipient=p.ca.certificate,
                            cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(8))
    attrs = [a for a in _scep_attrs() if _type_of(a) != A.OID_SENDER_NONCE]
    err = _parse(_sign(env, attrs))
    assert err.reason is ScepErrorReason.MISSING_ATTRIBUTE
    assert err.reply_to is None  # nothing to echo as recipientNonce


@pytest.mark.parametrize(("message_type", "reason"), [
    (3, ScepErrorReason.UNSUPPORTED_MESSAGE_TYPE),  # a CertRep sent as a request
    (99, ScepErrorReason.UNSUPPORTED_MESSAGE_TYPE),
])
def test_wrong_message_types(message_type: int, reason: ScepErrorReason) -> None:
    p = pki()
    env = scep_cms.envelope(b"x" * 40, recipient=p.ca.certificate,
                            cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(9))
    assert _parse(_sign(env, _scep_attrs(message_type))).reason is reason


def test_non_numeric_message_type_is_bad_attribute() -> None:
    attrs = [A.printable(A.OID_MESSAGE_TYPE, "PKCSReq"), *_scep_attrs()[1:]]
    assert _parse(_sign(b"", attrs)).reason is ScepErrorReason.BAD_ATTRIBUTE


def test_envelope_body_not_a_csr_is_malformed() -> None:
    p = pki()
    env = scep_cms.envelope(b"not a CSR", recipient=p.ca.certificate,
                            cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(10))
    err = _parse(_sign(env, _scep_attrs()))
    assert err.reason is ScepErrorReason.MALFORMED and err.reply_to is not None


def test_envelope_for_someone_else_is_not_a_recipient() -> None:
    p = pki()
    der = _request(recipient=p.ra_sign.certificate)
    assert _parse(der).reason is ScepErrorReason.NOT_A_RECIPIENT


def test_decryption_with_wrong_key_fails_cleanly() -> None:
    """Right issuer/serial, wrong private key: key transport yields garbage -> refused."""
    p = pki()
    der = _request()
    impostor = Credential.__new__(Credential)
    object.__setattr__(impostor, "certificate", p.ca.certificate)
    object.__setattr__(impostor, "private_key", p.ra_sign.private_key)
    with pytest.raises(ScepError) as e:
        parse_request(der, recipients=[impostor])
    assert e.value.reason is ScepErrorReason.DECRYPTION_FAILED


def test_cert_rep_signed_by_another_key_claiming_the_ca() -> None:
    """The signer's issuer+serial name our CA, but the key is someone else's."""
    p = pki()
    rp = _params()
    from engine.scep import ReplyTo

    reply = ReplyTo(transaction_id="TX-1", recipient_nonce=rp.sender_nonce, digest=rp.digest)
    forged_signer = Credential.__new__(Credential)
    object.__setattr__(forged_signer, "certificate", p.ca.certificate)
    object.__setattr__(forged_signer, "private_key", p.ra_sign.private_key)
    der = build_cert_rep_pending(reply, signer=forged_signer,
                                 sender_nonce=new_nonce(random_bytes(11)))
    with pytest.raises(ScepError) as e:
        parse_cert_rep(der, signers=[p.ca.certificate], transaction_id="TX-1",
                       sender_nonce=rp.sender_nonce, recipient=p.client)
    assert e.value.reason is ScepErrorReason.BAD_SIGNATURE


def test_cert_rep_that_is_a_request() -> None:
    p = pki()
    der = _request(signer=p.ca)  # signed by the trusted CA but it is a PKCSReq
    with pytest.raises(ScepError) as e:
        parse_cert_rep(der, signers=[p.ca.certificate], transaction_id="TX-1",
                       sender_nonce=_params().sender_nonce, recipient=p.client)
    assert e.value.reason is ScepErrorReason.UNSUPPORTED_MESSAGE_TYPE


def test_wrong_content_type_is_refused() -> None:
    p = pki()
    env = scep_cms.envelope(b"x", recipient=p.ca.certificate,
                            cipher=ContentCipher.DES_CBC, random_bytes=random_bytes(12))
    err = _parse(env)  # an EnvelopedData where a SignedData belongs
    assert err.reason is ScepErrorReason.WRONG_CONTENT_TYPE


def test_base64_message_param() -> None:
    der = _request()
    text = encode_message_param(der)
    assert decode_message_param(text) == der
    wrapped = "\n".join(text[i:i + 64] for i in range(0, len(text), 64))
    assert decode_message_param(wrapped) == der
    urlsafe = text.replace("+", "-").replace("/", "_").rstrip("=")
    assert decode_message_param(urlsafe) == der
    for bad in ["", "***", "ab%2Bcd", "\u00e9\u00e9\u00e9\u00e9"]:
        with pytest.raises(ScepError) as e:
            decode_message_param(bad)
        assert e.value.reason is ScepErrorReason.MALFORMED


def test_check_signing_time() -> None:
    check_signing_time(None, now=NOW, tolerance=dt.timedelta(minutes=5))
    check_signing_time(NOW + dt.timedelta(minutes=4), now=NOW, tolerance=dt.timedelta(minutes=5))
    with pytest.raises(ScepError) as e:
        check_signing_time(NOW - dt.timedelta(hours=1), now=NOW,
                           tolerance=dt.timedelta(minutes=5))
    assert e.value.fail_info is FailInfo.BAD_TIME


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="sender_nonce"):
        _params(sender_nonce=b"short")
    with pytest.raises(ValueError, match="PrintableString"):
        _params(transaction_id="tx_with_underscore")
    with pytest.raises(ValueError, match="does not belong"):
        Credential(pki().ca.certificate, pki().client_key)


def test_non_printable_transaction_id_is_echoed_not_fatal() -> None:
    """A peer's UTF8String transactionID outside PrintableString still gets its FAILURE."""
    p = pki()
    env = scep_cms.envelope(b"not a CSR", recipient=p.ca.certificate,
                            cipher=ContentCipher.AES_128_CBC, random_bytes=random_bytes(13))
    attrs = [A.printable(A.OID_MESSAGE_TYPE, "19"),
             scep_cms.attribute(A.OID_TRANSACTION_ID, core.UTF8String("tx_ünïcode")),
             A.octets(A.OID_SENDER_NONCE, b"n" * 16)]
    err = _parse(_sign(env, attrs))
    assert err.reply_to is not None and err.reply_to.transaction_id == "tx_ünïcode"
    der = build_cert_rep_failure(err.reply_to, FailInfo.BAD_REQUEST, signer=p.ca,
                                 sender_nonce=new_nonce(random_bytes(14)))
    rep = parse_cert_rep(der, signers=[p.ca.certificate], transaction_id="tx_ünïcode",
                         sender_nonce=b"n" * 16, recipient=p.client)
    assert rep.fail_info is FailInfo.BAD_REQUEST


def test_empty_transaction_id_is_bad_attribute() -> None:
    attrs = [A.printable(A.OID_MESSAGE_TYPE, "19"), A.printable(A.OID_TRANSACTION_ID, ""),
             A.octets(A.OID_SENDER_NONCE, b"n" * 16)]
    assert _parse(_sign(b"", attrs)).reason is ScepErrorReason.BAD_ATTRIBUTE
