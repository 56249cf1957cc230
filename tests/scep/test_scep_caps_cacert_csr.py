"""GetCACaps, GetCACert, PKCS#10 and the vocabulary enums."""

from __future__ import annotations

import ipaddress

import pytest
from asn1crypto import csr as asn1_csr
from asn1crypto import keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import NameOID

from engine.scep import (
    CA_CERT_CONTENT_TYPE,
    CA_RA_CERT_CONTENT_TYPE,
    Capabilities,
    Capability,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    FailInfo,
    MessageType,
    PkiStatus,
    ScepError,
    ScepErrorReason,
    build_ca_certificates,
    build_csr,
    parse_ca_certificates,
    parse_capabilities,
    parse_csr,
)
from tests.scep.scep_support import ca_certificate, leaf_certificate, name, pki, rsa_key

# ---------------------------------------------------------------------------- vocabulary


def test_wire_values_and_labels() -> None:
    assert [int(m) for m in MessageType] == [3, 17, 19, 20, 21, 22]
    assert [int(s) for s in PkiStatus] == [0, 2, 3]
    assert [(int(f), f.label) for f in FailInfo] == [
        (0, "badAlg"), (1, "badMessageCheck"), (2, "badRequest"), (3, "badTime"),
        (4, "badCertId")]
    assert "challenge" in FailInfo.BAD_REQUEST.explanation
    assert MessageType.CERT_POLL.label == "CertPoll" and not MessageType.CERT_REP.is_request


# ---------------------------------------------------------------------------- GetCACaps


@pytest.mark.parametrize("body", [
    b"AES\nSHA-256\nPOSTPKIOperation",  # no trailing newline (micromdm)
    b"AES\r\nSHA-256\r\nPOSTPKIOperation\r\n",  # CRLF
    b"aes\nsha-256\n  postpkioperation  \n\n",  # case, spaces, blank lines
    "AES\nSHA-256\nPOSTPKIOperation\n",  # already text
])
def test_caps_tolerant_parsing(body: bytes | str) -> None:
    caps = parse_capabilities(body)
    assert caps.keywords == {Capability.AES, Capability.SHA256, Capability.POST_PKI_OPERATION}
    assert caps.unknown == ()


def test_caps_unknown_keywords_kept_not_fatal() -> None:
    caps = parse_capabilities(b"Renewal\nX-Vendor-Thing\nGetNextCACert\n")
    assert caps.unknown == ("X-Vendor-Thing",)
    assert caps.renewal and not caps.post_pki_operation


def test_caps_not_text_is_malformed() -> None:
    with pytest.raises(ScepError) as e:
        parse_capabilities(b"\xff\xfe\x00AES")
    assert e.value.reason is ScepErrorReason.MALFORMED


@pytest.mark.parametrize(("keywords", "cipher", "digest"), [
    ("AES DES3 SHA-1 SHA-256 SHA-512", ContentCipher.AES_128_CBC, DigestAlgorithm.SHA512),
    ("DES3 SHA-1 SHA-256", ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA256),
    ("DES3 SHA-1", ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA1),
    ("SCEPStandard", ContentCipher.AES_128_CBC, DigestAlgorithm.SHA256),
    ("SCEPStandard SHA-512", ContentCipher.AES_128_CBC, DigestAlgorithm.SHA512),
    ("SHA-384 SHA-256", ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA384),
    ("", ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA1),  # nothing advertised: legacy floor
    ("Renewal", ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA1),
])
def test_strongest_algorithms(keywords: str, cipher: ContentCipher,
                              digest: DigestAlgorithm) -> None:
    caps = parse_capabilities("\n".join(keywords.split()))
    assert caps.strongest_cipher() is cipher
    assert caps.strongest_digest() is digest


def test_aes_256_on_request_and_scep_standard_implies_post() -> None:
    caps = parse_capabilities("SCEPStandard")
    assert caps.strongest_cipher(aes_256=True) is ContentCipher.AES_256_CBC
    assert caps.post_pki_operation and caps.supports(Capability.SHA256)
    assert not caps.supports(Capability.SHA512)


def test_render_round_trips() -> None:
    ours = Capabilities.of(Capability.POST_PKI_OPERATION, Capability.SHA256, Capability.SHA512,
                           Capability.SHA384, Capability.AES, Capability.DES3,
                           Capability.RENEWAL, Capability.SCEP_STANDARD, Capability.SHA1)
    text = ours.render()
    assert text.endswith(b"\n") and text.count(b"\n") == 9
    assert parse_capabilities(text) == ours


# ---------------------------------------------------------------------------- GetCACert


def test_single_ca_cert_der_and_pem() -> None:
    p = pki()
    ctype, body = build_ca_certificates(p.ca.certificate)
    assert ctype == CA_CERT_CONTENT_TYPE
    assert parse_ca_certificates(ctype, body).ca == p.ca.certificate
    pem = p.ca.certificate.public_bytes(serialization.Encoding.PEM)
    assert parse_ca_certificates("Application/X-X509-CA-Cert; charset=x", pem).ca == (
        p.ca.certificate)


def test_ca_ra_bundle_roles_by_key_usage() -> None:
    p = pki()
    ctype, body = build_ca_certificates(
        p.ca.certificate, [p.ra_encrypt.certificate, p.ra_sign.certificate])
    assert ctype == CA_RA_CERT_CONTENT_TYPE
    cas = parse_ca_certificates(ctype, body)
    assert cas.ca == p.ca.certificate
    assert cas.ra_signing == p.ra_sign.certificate
    assert cas.ra_encryption == p.ra_encrypt.certificate
    assert cas.recipient == p.ra_encrypt.certificate and cas.signer == p.ra_sign.certificate


def test_single_dual_use_ra_and_chain_with_root() -> None:
    root_key, inter_key, ra_key = rsa_key("root"), rsa_key("inter"), rsa_key("ra-dual")
    root = Credential(ca_certificate(root_key, name("Root")), root_key)
    inter = Credential(ca_certificate(inter_key, name("Issuing CA"), root.certificate.subject,
                                      root_key, serial=2), inter_key)
    ra = leaf_certificate(ra_key, name("RA"), inter, 3, key_usage=False)
    # order in the bundle must not matter
    _, body = build_ca_certificates(root.certificate, [ra], chain=[inter.certificate])
    cas = parse_ca_certificates(CA_RA_CERT_CONTENT_TYPE, body)
    assert cas.ca == inter.certificate
    assert cas.ra_signing == cas.ra_encryption == ra
    assert cas.chain == (root.certificate,)


def test_chain_without_ra_picks_the_issuing_ca() -> None:
    root_key, inter_key = rsa_key("root"), rsa_key("inter")
    root = Credential(ca_certificate(root_key, name("Root")), root_key)
    inter = ca_certificate(inter_key, name("Issuing CA"), root.certificate.subject, root_key, 2)
    _, body = build_ca_certificates(root.certificate, chain=[inter])
    cas = parse_ca_certificates(CA_RA_CERT_CONTENT_TYPE, body)
    assert cas.ca == inter and not cas.has_ra


def test_a_certificate_not_signed_by_the_ca_is_no_ra() -> None:
    """Same issuer *name* but another key: not an RA, and then no CA can be told apart."""
    p = pki()
    impostor_ca = Credential(ca_certificate(rsa_key("impostor"), p.ca.certificate.subject),
                             rsa_key("impostor"))
    fake_ra = leaf_certificate(rsa_key("fake-ra"), name("RA"), impostor_ca, 9)
    _, body = build_ca_certificates(p.ca.certificate, [fake_ra])
    cas = parse_ca_certificates(CA_RA_CERT_CONTENT_TYPE, body)
    assert cas.ca == p.ca.certificate and not cas.has_ra


def test_getcacert_errors() -> None:
    p = pki()
    with pytest.raises(ScepError) as e:
        parse_ca_certificates("text/html", b"<html>")
    assert e.value.reason is ScepErrorReason.WRONG_CONTENT_TYPE
    with pytest.raises(ScepError) as e:
        parse_ca_certificates(CA_CERT_CONTENT_TYPE, b"\x30\x03\x02\x01")
    assert e.value.reason is ScepErrorReason.MALFORMED
    leaf_only = leaf_certificate(rsa_key("x"), name("leaf"), p.ca, 4)
    from engine.scep import certs_only

    with pytest.raises(ScepError) as e:
        parse_ca_certificates(CA_RA_CERT_CONTENT_TYPE, certs_only([leaf_only]))
    assert e.value.reason is ScepErrorReason.BAD_CA_CERTIFICATES


# ---------------------------------------------------------------------------- PKCS#10


def test_csr_with_challenge_sans_and_serial_number() -> None:
    key = pki().client_key
    csr = build_csr(key, name("router1.example.com"), challenge_password="Ch@llenge!",
                    dns_names=["router1.example.com"],
                    ip_addresses=[ipaddress.ip_address("192.0.2.1"),
                                  ipaddress.ip_address("2001:db8::1")],
                    serial_number="FOC1234X0AB")
    parsed = parse_csr(csr.public_bytes(serialization.Encoding.DER))
    assert parsed.challenge_password == "Ch@llenge!"
    assert parsed.dns_names == ("router1.example.com",)
    assert parsed.ip_addresses == (ipaddress.ip_address("192.0.2.1"),
                                   ipaddress.ip_address("2001:db8::1"))
    serials = parsed.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    assert [a.value for a in serials] == ["FOC1234X0AB"]
    assert parsed.csr.public_key() == key.public_key()


def test_csr_without_challenge() -> None:
    csr = build_csr(pki().client_key, name("r"))
    parsed = parse_csr(csr.public_bytes(serialization.Encoding.DER))
    assert parsed.challenge_password is None and parsed.dns_names == ()


def _csr_with_challenge(alternative: str, password: str) -> bytes:
    """A correctly signed CSR whose challengePassword is the given DirectoryString choice."""
    key = pki().client_key
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    info = asn1_csr.CertificationRequestInfo({
        "version": "v1",
        "subject": asn1_x509.Name.build({"common_name": "router9"}),
        "subject_pk_info": keys.PublicKeyInfo.load(spki),
        "attributes": [asn1_csr.CRIAttribute({
            "type": "challenge_password",
            "values": [asn1_x509.DirectoryString(name=alternative, value=password)],
        })],
    })
    sig = key.sign(info.dump(), padding.PKCS1v15(), hashes.SHA256())
    return bytes(asn1_csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": {"algorithm": "sha256_rsa"},
        "signature": sig,
    }).dump())


@pytest.mark.parametrize("alternative", ["printable_string", "utf8_string", "bmp_string",
                                         "teletex_string", "universal_string"])
def test_challenge_string_variants(alternative: str) -> None:
    der = _csr_with_challenge(alternative, "secret123")
    assert parse_csr(der).challenge_password == "secret123"


def test_csr_bad_signature_is_bad_message_check() -> None:
    der = bytearray(build_csr(pki().client_key, name("r"), challenge_password="pw")
                    .public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature BIT STRING
    with pytest.raises(ScepError) as e:
        parse_csr(bytes(der))
    assert e.value.reason is ScepErrorReason.BAD_CSR_SIGNATURE
    assert e.value.fail_info is FailInfo.BAD_MESSAGE_CHECK


def test_sha1_cannot_sign_x509() -> None:
    with pytest.raises(ValueError, match="SHA-1"):
        build_csr(pki().client_key, name("r"), digest=DigestAlgorithm.SHA1)
