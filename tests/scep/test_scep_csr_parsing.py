"""parse_csr reads a PKCS#10 request completely and checks its proof of possession itself.

Two things a correctly signed request used to get past the core: a subject, attribute or
extension that cryptography only parses when a caller first reads it (KeyError in the CA's
HTTP server), and a sha1WithRSAEncryption signature that cryptography 48's
`is_signature_valid` calls invalid although it verifies (openssl req -verify agrees).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec

from engine.scep import (
    Credential,
    DigestAlgorithm,
    FailInfo,
    ScepError,
    ScepErrorReason,
    build_csr,
    parse_csr,
    parse_request,
)
from tests.scep import raw_der as R
from tests.scep.scep_support import (
    ec_key,
    name,
    pkcs_req,
    pki,
    read_like_a_caller,
    vector,
    vector_cert,
    vector_key,
)

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")


def _refused(der: bytes) -> ScepError:
    with pytest.raises(ScepError) as e:
        parse_csr(der)
    return e.value


# ----------------------------------------------------------------- 1. complete parsing

CN = R.OID_CN
# Subjects whose values are not character strings of a type the attribute allows.
BAD_SUBJECTS = {
    "integer": (R.name([("1.2.3.4", 0x02, b"\x01")]), "INTEGER"),
    "integer-in-cn": (R.name([(CN, 0x02, b"\x01")]), "INTEGER"),
    "bit-string": (R.name([(CN, 0x03, b"\x00\xff")]), "BIT STRING"),
    "null": (R.name([(CN, 0x05, b"")]), "NULL"),
    "sequence": (R.name([(CN, 0x30, b"")]), "SEQUENCE"),
    "octet-string": (R.name([(CN, 0x04, b"ab")]), "OCTET STRING"),
    "context-tag": (R.name([(CN, 0x80, b"ab")]), "class 2 tag 0"),
    "utf8-not-utf8": (R.name([(CN, 0x0C, b"\xff\xfe")]), "UTF8String"),
    "ia5-not-ascii": (R.name([(CN, 0x16, "é".encode())]), "IA5String"),
    "numeric-cn": (R.name([(CN, 0x12, b"12")]), "NumericString"),
    "three-letter-country": (R.name([("2.5.4.6", 0x13, b"USA")]), "country_name"),
    "empty-rdn": (R.tlv(0x30, R.tlv(0x31, b"")), "empty relative distinguished name"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUBJECTS))
def test_subject_values_that_are_not_strings_are_bad_request(case: str) -> None:
    subject, mentioned = BAD_SUBJECTS[case]
    err = _refused(R.csr(pki().client_key, subject))
    assert err.reason is ScepErrorReason.MALFORMED
    assert err.fail_info is FailInfo.BAD_REQUEST
    assert "subject" in err.detail and mentioned in err.detail


@pytest.mark.parametrize("case", ["integer", "integer-in-cn", "empty-rdn"])
def test_a_pkcsreq_with_such_a_subject_can_be_answered_with_a_failure(case: str) -> None:
    """The reviewer's case: the CA's server answered HTTP 500 (KeyError from csr.subject)."""
    der = pkcs_req(R.csr(pki().client_key, BAD_SUBJECTS[case][0]))
    with pytest.raises(ScepError) as e:
        parse_request(der, recipients=[pki().ca])
    assert e.value.fail_info is FailInfo.BAD_REQUEST
    assert e.value.reply_to is not None and e.value.reply_to.transaction_id == "TX-CSR"


GOOD_SUBJECTS = {
    "printable": [(CN, 0x13, b"router-1.example.com"), ("2.5.4.6", 0x13, b"US")],
    "utf8": [(CN, 0x0C, "Zürich".encode())],
    "bmp": [(CN, 0x1E, "Zürich".encode("utf-16-be"))],
    "universal": [(CN, 0x1C, "r1".encode("utf-32-be"))],
    "teletex": [(CN, 0x14, b"r1")],
    "email-ia5": [("1.2.840.113549.1.9.1", 0x16, b"pki@example.com")],
    # IOS puts the hostname and address in unstructuredName/Address (unknown to asn1crypto)
    "ios-unstructured": [("1.2.840.113549.1.9.2", 0x16, b"r1.example.com"),
                         ("1.2.840.113549.1.9.8", 0x13, b"192.0.2.1")],
}


@pytest.mark.parametrize("case", sorted(GOOD_SUBJECTS))
def test_string_subjects_of_every_allowed_type_are_accepted(case: str) -> None:
    req = parse_csr(R.csr(pki().client_key, R.name(*[[ava] for ava in GOOD_SUBJECTS[case]])))
    read_like_a_caller(req)
    expected = {ava[0]: ava[2] for ava in GOOD_SUBJECTS[case]}
    codec = {0x1E: "utf-16-be", 0x1C: "utf-32-be"}
    for attr, (_, tag, raw) in zip(req.subject, GOOD_SUBJECTS[case], strict=True):
        assert attr.value == raw.decode(codec.get(tag, "utf-8"))
        assert attr.oid.dotted_string in expected


def test_an_empty_subject_is_the_cas_business() -> None:
    req = parse_csr(R.csr(pki().client_key, b"\x30\x00"))
    assert len(req.subject) == 0


def _attrs_csr(*attributes: bytes) -> bytes:
    return R.csr(pki().client_key, R.cn("r1"), list(attributes))


def _san(general_names: bytes) -> bytes:
    return R.extension_request(R.extension(R.OID_SAN, general_names))


BAD_ATTRIBUTES = {
    "two-valued-unknown": (R.attribute("1.2.3.4", b"\x02\x01\x01", b"\x02\x01\x02"),
                           ScepErrorReason.BAD_ATTRIBUTE),
    "no-value": (R.attribute("1.2.3.4"), ScepErrorReason.BAD_ATTRIBUTE),
    "challenge-twice": (R.challenge("a") + R.challenge("b"), ScepErrorReason.BAD_ATTRIBUTE),
    "challenge-two-values": (R.attribute(R.OID_CHALLENGE, R.tlv(0x13, b"a"), R.tlv(0x13, b"b")),
                             ScepErrorReason.BAD_ATTRIBUTE),
    "challenge-integer": (R.attribute(R.OID_CHALLENGE, b"\x02\x01\x01"),
                          ScepErrorReason.BAD_ATTRIBUTE),
    "extension-request-twice": (R.extension_request() + R.extension_request(),
                                ScepErrorReason.BAD_ATTRIBUTE),
    "extension-request-empty-set": (R.attribute(R.OID_EXTENSION_REQUEST),
                                    ScepErrorReason.BAD_ATTRIBUTE),
    "extension-request-integer": (R.attribute(R.OID_EXTENSION_REQUEST, b"\x02\x01\x01"),
                                  ScepErrorReason.MALFORMED),
    "san-truncated": (_san(b"\x30\x03\x82\x01"), ScepErrorReason.MALFORMED),
    "san-not-a-sequence": (_san(b"\x04\x00"), ScepErrorReason.MALFORMED),
    "san-ip-of-5-bytes": (_san(R.tlv(0x30, R.tlv(0x87, b"\x01\x02\x03\x04\x05"))),
                          ScepErrorReason.MALFORMED),
    "san-dns-not-ascii": (_san(R.tlv(0x30, R.tlv(0x82, "é.example".encode()))),
                          ScepErrorReason.MALFORMED),
    "san-x400-address": (_san(R.tlv(0x30, R.tlv(0xA3, b"\x30\x00"))),
                         ScepErrorReason.MALFORMED),
    "basic-constraints-garbage": (R.extension_request(R.extension("2.5.29.19", b"\x02\x01\x01")),
                                  ScepErrorReason.MALFORMED),
    "duplicate-extension": (R.extension_request(R.extension("1.2.3.4", b"\x05\x00"),
                                                R.extension("1.2.3.4", b"\x05\x00")),
                            ScepErrorReason.MALFORMED),
}


@pytest.mark.parametrize("case", sorted(BAD_ATTRIBUTES))
def test_bad_attributes_and_extensions_are_bad_request(case: str) -> None:
    attribute, reason = BAD_ATTRIBUTES[case]
    err = _refused(_attrs_csr(attribute))
    assert err.reason is reason, err
    assert err.fail_info is FailInfo.BAD_REQUEST
    assert err.detail.startswith("PKCS#10 request")
    assert "\n" not in err.detail


def test_unusual_but_wellformed_attributes_and_extensions_are_accepted() -> None:
    """Refusing an unknown critical extension is the CA's policy, not the parser's."""
    der = _attrs_csr(
        R.challenge("pw", tag=0x0C),
        R.attribute("1.2.3.4", R.tlv(0x30, b"\x02\x01\x01")),
        R.extension_request(
            R.extension("1.2.3.4", b"\x05\x00", critical=True),
            R.extension(R.OID_SAN, R.tlv(0x30, R.tlv(0x82, b"r1.example.com")
                                         + R.tlv(0x87, b"\xc0\x00\x02\x01")))))
    req = parse_csr(der)
    read_like_a_caller(req)
    assert req.challenge_password == "pw"
    assert req.dns_names == ("r1.example.com",)
    assert [str(a) for a in req.ip_addresses] == ["192.0.2.1"]


def test_a_dsa_key_is_bad_alg() -> None:
    key = dsa.generate_private_key(2048)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name("dsa"))
           .sign(key, hashes.SHA256()))
    err = _refused(csr.public_bytes(serialization.Encoding.DER))
    assert err.reason is ScepErrorReason.UNSUPPORTED_ALGORITHM
    assert err.fail_info is FailInfo.BAD_ALG
    assert "only RSA and EC keys" in err.detail


def test_an_unknown_key_algorithm_is_bad_alg() -> None:
    spki = R.tlv(0x30, R.tlv(0x30, R.oid("1.2.3.4.5")) + R.tlv(0x03, b"\x00\x01"))
    err = _refused(R.csr(pki().client_key, R.cn("r1"), subject_key=spki))
    assert err.reason is ScepErrorReason.UNSUPPORTED_ALGORITHM


# --------------------------------------------------------- 2. the proof of possession


def _openssl_csr(tmp: Path, *args: str) -> bytes:
    """`openssl req -new` with a fresh key; `args` choose the key and the digest."""
    assert OPENSSL is not None
    out = tmp / "req.der"
    subprocess.run([OPENSSL, "req", "-new", "-nodes", "-keyout", str(tmp / "key.pem"),
                    "-subj", "/CN=legacy-router/O=Example", "-outform", "DER",
                    "-out", str(out), *args], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def _openssl_verifies(tmp: Path, der: bytes) -> bool:
    assert OPENSSL is not None
    path = tmp / "check.der"
    path.write_bytes(der)
    done = subprocess.run([OPENSSL, "req", "-inform", "DER", "-in", str(path), "-verify",
                           "-noout"], check=False, capture_output=True, text=True, timeout=60)
    return "verify OK" in done.stderr + done.stdout  # OpenSSL 3.0 exits 0 either way


RSA_2048 = ("-newkey", "rsa:2048")
EC_P256 = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
OPENSSL_CASES = {
    "rsa-sha1": ((*RSA_2048, "-sha1"), DigestAlgorithm.SHA1, "1.2.840.113549.1.1.5"),
    "rsa-sha256": ((*RSA_2048, "-sha256"), DigestAlgorithm.SHA256, "1.2.840.113549.1.1.11"),
    "rsa-sha512": ((*RSA_2048, "-sha512"), DigestAlgorithm.SHA512, "1.2.840.113549.1.1.13"),
    "rsa-pss-sha384": ((*RSA_2048, "-sha384", "-sigopt", "rsa_padding_mode:pss",
                        "-sigopt", "rsa_pss_saltlen:32"),
                       DigestAlgorithm.SHA384, "1.2.840.113549.1.1.10"),
    "ecdsa-sha1": ((*EC_P256, "-sha1"), DigestAlgorithm.SHA1, "1.2.840.10045.4.1"),
    "ecdsa-sha384": ((*EC_P256, "-sha384"), DigestAlgorithm.SHA384, "1.2.840.10045.4.3.3"),
}


@needs_openssl
@pytest.mark.parametrize("case", sorted(OPENSSL_CASES))
def test_openssl_requests_verify_and_report_their_digest(tmp_path: Path, case: str) -> None:
    args, digest, algorithm = OPENSSL_CASES[case]
    der = _openssl_csr(tmp_path, *args)
    assert _openssl_verifies(tmp_path, der)
    req = parse_csr(der)
    assert (req.signature_digest, req.signature_algorithm) == (digest, algorithm)
    read_like_a_caller(req)
    tampered = bytearray(der)
    at = tampered.index(b"legacy-router")
    tampered[at:at + 6] = b"evil-r"  # the subject changes, the signature does not
    assert not _openssl_verifies(tmp_path, bytes(tampered))  # openssl agrees it is forged
    err = _refused(bytes(tampered))
    assert err.reason is ScepErrorReason.BAD_CSR_SIGNATURE
    assert err.fail_info is FailInfo.BAD_MESSAGE_CHECK


@needs_openssl
def test_openssl_md5_request_is_bad_alg(tmp_path: Path) -> None:
    der = _openssl_csr(tmp_path, *RSA_2048, "-md5")
    assert _openssl_verifies(tmp_path, der)
    err = _refused(der)
    assert err.reason is ScepErrorReason.UNSUPPORTED_ALGORITHM
    assert err.fail_info is FailInfo.BAD_ALG


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_handmade_requests_verify_with_every_digest(key_type: str, digest: str) -> None:
    key = pki().client_key if key_type == "rsa" else ec_key("csr")
    der = R.csr(key, R.cn("r1"), [R.challenge("challenge-pw-1")], digest=digest)
    req = parse_csr(der)
    assert req.signature_digest is DigestAlgorithm[digest.upper()]
    assert req.challenge_password == "challenge-pw-1"
    assert req.public_key.public_numbers() == key.public_key().public_numbers()
    forged = bytearray(der)
    forged[forged.index(b"challenge-pw-1") + 13] ^= 0x03  # ...-pw-2 under the same signature
    assert _refused(bytes(forged)).reason is ScepErrorReason.BAD_CSR_SIGNATURE


def test_a_sha1_request_in_a_pkcsreq_reports_its_digest() -> None:
    """What the CA's strict mode reads to refuse SHA-1 with badAlg."""
    der = pkcs_req(R.csr(pki().client_key, R.cn("r1"), [R.challenge("pw")], digest="sha1"))
    req = parse_request(der, recipients=[pki().ca])
    assert req.csr is not None and req.csr.signature_digest is DigestAlgorithm.SHA1
    assert req.csr.challenge_password == "pw"


def test_a_signature_by_another_key_is_bad_message_check() -> None:
    other = ec_key("other")
    der = R.csr(other, R.cn("r1"), subject_key=R.spki(ec_key("csr")))
    err = _refused(der)
    assert err.reason is ScepErrorReason.BAD_CSR_SIGNATURE


def test_a_signature_algorithm_that_does_not_fit_the_key_is_bad_alg() -> None:
    """An ECDSA signature over a request for an RSA key cannot prove possession of it."""
    der = R.csr(ec_key("csr"), R.cn("r1"), subject_key=R.spki(pki().client_key))
    err = _refused(der)
    assert err.reason is ScepErrorReason.UNSUPPORTED_ALGORITHM
    assert "does not fit" in err.detail


def test_our_own_requests_report_sha256() -> None:
    csr = build_csr(pki().client_key, name("r"), challenge_password="pw")
    req = parse_csr(csr.public_bytes(serialization.Encoding.DER))
    assert req.signature_digest is DigestAlgorithm.SHA256
    ecdsa = build_csr(ec_key("csr"), name("r"), digest=DigestAlgorithm.SHA384)
    parsed = parse_csr(ecdsa.public_bytes(serialization.Encoding.DER))
    assert parsed.signature_digest is DigestAlgorithm.SHA384
    assert isinstance(parsed.public_key, ec.EllipticCurvePublicKey)


@pytest.mark.parametrize("vector_name", ["pkcsreq_des_sha1_micromdm.der",
                                         "renewalreq_des_sha1_micromdm.der"])
def test_micromdm_requests_carry_sha256_csrs(vector_name: str) -> None:
    """micromdm signs its CMS with SHA-1 but its PKCS#10 with sha256WithRSAEncryption."""
    ca = Credential(vector_cert("micromdm_ca.pem"), vector_key("micromdm_ca.key.pem"))
    req = parse_request(vector(vector_name), recipients=[ca])
    assert req.digest is DigestAlgorithm.SHA1
    assert req.csr is not None and req.csr.signature_digest is DigestAlgorithm.SHA256
    read_like_a_caller(req.csr)
