"""Our SCEP client core against our CA: in process (no sockets) by default, over real loopback
HTTP where a test serves the CA itself."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from engine.ca import Approval, BuiltinCA
from engine.ca.server import InProcessCA, serve, serve_in_process
from engine.ca.state import RequestStatus
from engine.ports import FixedClock
from engine.scep import (
    ContentCipher,
    Credential,
    DigestAlgorithm,
    FailInfo,
    PkiStatus,
    build_pkcs_req,
    parse_cert_rep,
)
from tests.ca.ca_support import (
    IN_PROCESS,
    T0,
    RawCSR,
    ScepTestClient,
    ec_key,
    http_request,
    make_ca,
    make_csr,
    rsa_key,
)

pytestmark = pytest.mark.integration

PW = "static-secret"


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[BuiltinCA]:
    with make_ca(tmp_path / "ca", subject="CN=Test CA,O=Example") as ca:
        yield ca


@pytest.fixture
def server(ca: BuiltinCA) -> Iterator[InProcessCA]:
    """The CA served without sockets (the HTTP edge has its own tests: test_ca_http.py)."""
    srv = serve_in_process(ca, IN_PROCESS, "http://test-ca.invalid", challenge=PW)
    yield srv
    srv.stop()


def _verify_issued(ca: BuiltinCA, cert: x509.Certificate) -> None:
    cert.verify_directly_issued_by(ca.ca_certificate)


def test_enroll_with_static_challenge(ca: BuiltinCA, server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(1), "r1")
    rep = client.enroll(PW)
    assert rep.status is PkiStatus.SUCCESS
    cert = rep.certificate_for(client.key.public_key())
    assert cert is not None
    _verify_issued(ca, cert)
    assert ca.state.requests[client.transaction_id].status is RequestStatus.ISSUED
    assert cert.serial_number >= 1 << 64
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name is not None
    assert cdp[0].full_name[0].value == server.crl_url
    status, ctype, body = http_request(server.crl_url)
    assert (status, ctype) == (200, "application/pkix-crl")
    ca_key = ca.ca_certificate.public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey)
    assert x509.load_der_x509_crl(body).is_signature_valid(ca_key)


@pytest.mark.parametrize(("cipher", "digest"), [
    (ContentCipher.DES_CBC, DigestAlgorithm.SHA1),
    (ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA256),
    (ContentCipher.AES_128_CBC, DigestAlgorithm.SHA512),
    (ContentCipher.AES_256_CBC, DigestAlgorithm.SHA384),
])
def test_certrep_answers_with_the_requests_algorithms(
        server: InProcessCA, cipher: ContentCipher, digest: DigestAlgorithm) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(2), "r2")
    p = client.params(cipher=cipher, digest=digest)
    der = build_pkcs_req(p, client.csr(PW), random_bytes=os.urandom)
    status, _, body = http_request(f"{server.scep_url}?operation=PKIOperation", "POST", der)
    assert status == 200
    rep = parse_cert_rep(body, signers=[client.cas.signer], transaction_id=p.transaction_id,
                         sender_nonce=p.sender_nonce, recipient=p.signer)
    assert rep.status is PkiStatus.SUCCESS
    assert (rep.cipher, rep.digest) == (cipher, digest)
    signer_info = asn1_cms.ContentInfo.load(body)["content"]["signer_infos"][0]
    assert signer_info["signature_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.1"


def test_get_pki_operation_works_like_post(server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(3), "r3")
    assert client.enroll(PW, get=True).status is PkiStatus.SUCCESS


def test_strict_refuses_des_and_sha1_with_bad_alg(ca: BuiltinCA) -> None:
    with serve(ca, challenge=PW, strict=True, admin=False) as srv:
        caps = http_request(f"{srv.scep_url}?operation=GetCACaps")[2].decode().split()
        assert "DES3" not in caps and "SHA-1" not in caps and "AES" in caps
        client = ScepTestClient(srv.scep_url, rsa_key(4), "r4")
        for cipher, digest in ((ContentCipher.DES_CBC, DigestAlgorithm.SHA256),
                               (ContentCipher.DES_EDE3_CBC, DigestAlgorithm.SHA256),
                               (ContentCipher.AES_128_CBC, DigestAlgorithm.SHA1)):
            rep = client.enroll(PW, cipher=cipher, digest=digest)
            assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_ALG)
            assert rep.digest is DigestAlgorithm.SHA256  # never signs with SHA-1 itself
        assert client.enroll(PW).status is PkiStatus.SUCCESS
    assert len(ca.state.requests) == 1


def test_wrong_and_reused_challenges_fail_with_bad_request(ca: BuiltinCA,
                                                           server: InProcessCA) -> None:
    wrong = ScepTestClient(server.scep_url, rsa_key(5), "r5").enroll("not-it")
    assert (wrong.status, wrong.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    otp = ca.mint_challenge()
    first = ScepTestClient(server.scep_url, rsa_key(6), "r6").enroll(otp)
    assert first.status is PkiStatus.SUCCESS
    again = ScepTestClient(server.scep_url, rsa_key(7), "r7").enroll(otp)
    assert (again.status, again.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert otp.encode() not in b"".join(p.read_bytes() for p in (ca.root / "log").iterdir())


def test_manual_approval_pending_then_poll(ca: BuiltinCA) -> None:
    with serve(ca, challenge=PW, approval=Approval.MANUAL, admin=False) as srv:
        client = ScepTestClient(srv.scep_url, rsa_key(8), "r8")
        assert client.enroll(PW).status is PkiStatus.PENDING
        head = ca._log.head
        # the same PKCSReq again (micromdm polls so): PENDING, and nothing recorded
        assert client.enroll(PW).status is PkiStatus.PENDING
        assert ca._log.head == head
        assert client.poll().status is PkiStatus.PENDING
        issued = ca.approve(client.transaction_id)
        assert issued is not None
        rep = client.poll()
        assert rep.status is PkiStatus.SUCCESS
        cert = rep.certificate_for(client.key.public_key())
        assert cert is not None and format(cert.serial_number, "x") == issued.serial
        assert client.enroll(PW).status is PkiStatus.SUCCESS  # re-send after issue: same cert
        assert len(ca.state.certificates) == 1

        rejected = ScepTestClient(srv.scep_url, rsa_key(9), "r9")
        assert rejected.enroll(PW).status is PkiStatus.PENDING
        ca.reject(rejected.transaction_id, "not on the list")
        rep = rejected.poll()
        assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)


def test_poll_for_unknown_transaction_is_bad_cert_id(server: InProcessCA) -> None:
    rep = ScepTestClient(server.scep_url, rsa_key(10), "r10").poll()
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID)


def test_get_cert_and_get_crl(ca: BuiltinCA, server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(11), "r11")
    cert = client.enroll(PW).certificate_for(client.key.public_key())
    assert cert is not None
    fetched = client.get_cert(cert.serial_number)
    assert fetched.status is PkiStatus.SUCCESS and fetched.certificates == (cert,)
    missing = client.get_cert(12345)
    assert (missing.status, missing.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID)
    ca.revoke(format(cert.serial_number, "x"), "keyCompromise")
    crl_rep = client.get_crl(cert.serial_number)
    assert crl_rep.status is PkiStatus.SUCCESS and len(crl_rep.crls) == 1
    entry = crl_rep.crls[0].get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None


def test_renewal_as_renewal_req_and_as_pkcs_req_signed_by_current_cert(
        ca: BuiltinCA, server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(12), "r12")
    first = client.enroll(PW).certificate_for(client.key.public_key())
    assert first is not None
    renewed = client.renew(first, renewal_req=True)
    assert renewed.status is PkiStatus.SUCCESS
    second = renewed.certificate_for(client.key.public_key())
    assert second is not None and second.serial_number != first.serial_number
    # Cisco style: a PKCSReq (no challenge) signed by the current certificate, new key + txid
    rekey = ScepTestClient(server.scep_url, rsa_key(13), "r12")
    p = rekey.params(signer=Credential(second, client.key))
    rep = rekey.send(build_pkcs_req(p, rekey.csr(None), random_bytes=os.urandom), p)
    assert rep.status is PkiStatus.SUCCESS
    third = rep.certificate_for(rekey.key.public_key())
    assert third is not None
    serial_of_second = format(second.serial_number, "x")
    assert ca.state.requests[rekey.transaction_id].renewal_of == serial_of_second


def test_renewal_is_for_the_same_identity_and_only_once(ca: BuiltinCA,
                                                         server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(16), "r16")
    first = client.enroll(PW).certificate_for(client.key.public_key())
    assert first is not None
    # signed by its certificate, a device asks for another subject (and so other SANs)
    impostor = ScepTestClient(server.scep_url, rsa_key(17), "core-router-1")
    for renewal_req in (True, False):
        rep = impostor.renew(first, renewal_req=renewal_req, current_key=client.key)
        assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
        assert rep.fail_info_text is not None and "not a renewal" in rep.fail_info_text
    renewed = client.renew(first)
    assert renewed.status is PkiStatus.SUCCESS
    again = ScepTestClient(server.scep_url, rsa_key(18), "r16").renew(
        first, current_key=client.key)
    assert (again.status, again.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert again.fail_info_text is not None and "renewed before" in again.fail_info_text
    assert len(ca.state.certificates) == 2


def test_renewal_with_a_revoked_certificate_fails(ca: BuiltinCA, server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(14), "r14")
    cert = client.enroll(PW).certificate_for(client.key.public_key())
    assert cert is not None
    ca.revoke(format(cert.serial_number, "x"))
    rep = client.renew(cert)
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)


def test_transaction_id_replayed_with_another_key_fails(server: InProcessCA) -> None:
    first = ScepTestClient(server.scep_url, rsa_key(15), "r15")
    assert first.enroll(PW).status is PkiStatus.SUCCESS
    thief = ScepTestClient(server.scep_url, rsa_key(16), "r15")
    rep = thief.enroll(PW, transaction_id=first.transaction_id)
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)


def test_signing_time_far_off_is_bad_time(server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(17), "r17")
    rep = client.enroll(PW, signing_time=T0 - timedelta(days=3))
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_TIME)


def test_tampered_signature_is_bad_message_check(server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(18), "r18")
    p = client.params()
    der = bytearray(build_pkcs_req(p, client.csr(PW), random_bytes=os.urandom))
    signature = bytes(asn1_cms.ContentInfo.load(bytes(der))["content"]["signer_infos"][0]
                      ["signature"].native)
    at = bytes(der).index(signature)
    der[at + 10] ^= 0xFF
    status, _, body = http_request(f"{server.scep_url}?operation=PKIOperation", "POST",
                                   bytes(der))
    assert status == 200
    rep = parse_cert_rep(body, signers=[client.cas.signer], transaction_id=p.transaction_id,
                         sender_nonce=p.sender_nonce, recipient=p.signer)
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)


def test_ra_mode(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ra", ra=True, key="ecdsa:p256") as ca, \
            serve(ca, challenge=PW, admin=False) as srv:
        status, ctype, _ = http_request(f"{srv.scep_url}?operation=GetCACert")
        assert (status, ctype) == (200, "application/x-x509-ca-ra-cert")
        client = ScepTestClient(srv.scep_url, rsa_key(19), "r19")
        ra = ca.ra_certificates()
        assert ra is not None
        assert client.cas.ca == ca.ca_certificate
        assert (client.cas.ra_signing, client.cas.ra_encryption) == ra
        rep = client.enroll(PW)  # enveloped to the RA encryption cert; CertRep by RA signing
        assert rep.status is PkiStatus.SUCCESS and rep.signer_certificate == ra[0]
        cert = rep.certificate_for(client.key.public_key())
        assert cert is not None
        _verify_issued(ca, cert)


def test_replay_equals_live(ca: BuiltinCA, server: InProcessCA, tmp_path: Path) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(20), "r20")
    cert = client.enroll(PW).certificate_for(client.key.public_key())
    assert cert is not None
    ca.mint_challenge()
    ca.revoke(format(cert.serial_number, "x"), "superseded")
    live = ca.state
    with BuiltinCA.open(ca.root, readonly=True) as again:
        assert again.state == live
    spki = client.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert dataclasses.asdict(live.requests[client.transaction_id])["public_key"] == spki


def test_concurrent_enrollments_share_commits_and_replay(ca: BuiltinCA,
                                                         server: InProcessCA) -> None:
    clients = [ScepTestClient(server.scep_url, rsa_key(60 + i), f"c{i}") for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        reps = list(pool.map(lambda c: c.enroll(PW), clients))
    certs = [r.certificate_for(c.key.public_key()) for r, c in zip(reps, clients, strict=True)]
    assert all(c is not None for c in certs)
    assert len({c.serial_number for c in certs if c is not None}) == 12
    with BuiltinCA.open(ca.root, readonly=True) as again:
        assert again.state == ca.state
        assert len(again.state.certificates) == 12


def test_crl_upkeep_thread_reissues_the_crl(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    with make_ca(tmp_path / "ca", clock=clock, crl_lifetime=timedelta(hours=2)) as ca, \
            serve(ca, admin=False, crl_check_interval=0.05):
        assert ca.state.crl is not None and ca.state.crl.number == 1
        clock.advance(timedelta(hours=1, minutes=1))
        deadline = time.monotonic() + 10
        while ca.state.crl.number == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ca.state.crl.number == 2
        assert x509.load_der_x509_crl(ca.state.crl.der).last_update_utc == clock.now()


def _raw_der() -> Any:
    """tests/scep/raw_der.py: signs requests with digests cryptography will not sign with."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scep" / "raw_der.py"
    spec = importlib.util.spec_from_file_location("raw_der_for_ca", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_sha1_signed_request_is_refused_only_in_strict_mode(ca: BuiltinCA) -> None:
    raw = _raw_der()
    for strict, expected in ((True, PkiStatus.FAILURE), (False, PkiStatus.SUCCESS)):
        with serve(ca, challenge=PW, strict=strict, admin=False) as srv:
            client = ScepTestClient(srv.scep_url, rsa_key(40 + strict), f"sha1-{strict}")
            der = raw.csr(client.key, raw.cn(f"sha1-{strict}"), [raw.challenge(PW)],
                          digest="sha1")
            p = client.params()
            msg = build_pkcs_req(p, x509.load_der_x509_csr(der), random_bytes=os.urandom)
            status, _, body = http_request(f"{srv.scep_url}?operation=PKIOperation", "POST",
                                           msg)
            rep = parse_cert_rep(body, signers=[client.cas.signer],
                                 transaction_id=p.transaction_id,
                                 sender_nonce=p.sender_nonce, recipient=p.signer)
            assert status == 200 and rep.status is expected
            if strict:
                assert rep.fail_info is FailInfo.BAD_ALG


# -- issue 13: what real clients send ----------------------------------------------------------


def _enroll_under_identity(client: ScepTestClient, csr: Any, identity: Credential,
                           ) -> tuple[Any, str]:
    """A PKCSReq for `csr`, enveloped and signed under a throwaway `identity` (not the
    requested key), as several clients send their first request."""
    p = client.params(signer=identity, transaction_id=f"ID-{client.cn}")
    return client.send(build_pkcs_req(p, csr, random_bytes=os.urandom), p), p.transaction_id


def _sha256_spki(public_key: Any) -> bytes:
    return hashlib.sha256(public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()


@pytest.mark.parametrize("requested", ["ec-p256", "other-rsa"])
def test_first_request_under_a_throwaway_identity_is_issued(ca: BuiltinCA, server: InProcessCA,
                                                            requested: str) -> None:
    identity_key = rsa_key(60)  # RSA-2048: the CertRep is enveloped to it
    client = ScepTestClient(server.scep_url, identity_key, f"id-{requested}")
    key = ec_key(61) if requested == "ec-p256" else rsa_key(62)
    csr = make_csr(key, f"dev-{requested}", challenge=PW)
    rep, txid = _enroll_under_identity(client, csr, client.credential)
    assert rep.status is PkiStatus.SUCCESS, rep.fail_info_text
    cert = rep.certificate_for(key.public_key())
    assert cert is not None and cert.public_key() == key.public_key()
    _verify_issued(ca, cert)
    recorded = ca.state.requests[txid]
    assert recorded.signer_key_sha256 == _sha256_spki(identity_key.public_key())
    assert recorded.signer_key_sha256 != _sha256_spki(key.public_key())
    assert recorded.authorization == "challenge:static"


def test_throwaway_identity_still_needs_the_challenge(ca: BuiltinCA, server: InProcessCA) -> None:
    client = ScepTestClient(server.scep_url, rsa_key(63), "id-wrong")
    rep, txid = _enroll_under_identity(client, make_csr(ec_key(64), "dev-wrong",
                                                        challenge="not-it"), client.credential)
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert txid not in ca.state.requests


def test_strict_refuses_a_throwaway_identity_with_bad_request(ca: BuiltinCA) -> None:
    with serve(ca, challenge=PW, strict=True, admin=False) as srv:
        client = ScepTestClient(srv.scep_url, rsa_key(65), "id-strict")
        rep, txid = _enroll_under_identity(client, make_csr(ec_key(66), "dev-strict",
                                                            challenge=PW), client.credential)
        assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
        assert rep.fail_info_text is not None and "another key" in rep.fail_info_text
        assert txid not in ca.state.requests
        # the same server issues when the request's own key signs
        assert client.enroll(PW).status is PkiStatus.SUCCESS


def test_an_unsupported_key_algorithm_is_answered_bad_alg(server: InProcessCA) -> None:
    """badAlg is failInfo 0: `fail_info or BAD_REQUEST` answered it as badRequest."""
    client = ScepTestClient(server.scep_url, rsa_key(67), "dsa-dev")
    dsa_key = dsa.generate_private_key(2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name.from_rfc4514_string("CN=dsa-dev"))
           .add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, PW.encode())
           .sign(dsa_key, hashes.SHA256()))
    p = client.params()
    rep = client.send(build_pkcs_req(p, csr, random_bytes=os.urandom), p)
    assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_ALG)
    assert rep.fail_info_text is not None and "DSA" in rep.fail_info_text


def test_attributes_in_ber_order_are_issued(ca: BuiltinCA, server: InProcessCA) -> None:
    """strongSwan `pki --scep --san` writes extensionRequest before challengePassword; the
    signature is over exactly those bytes."""
    raw = _raw_der()
    client = ScepTestClient(server.scep_url, rsa_key(68), "ber-order")
    der = _csr_with_attributes_in_order(client.key, raw, [
        raw.extension_request(raw.extension("2.5.29.17", raw.tlv(0x30, raw.tlv(
            0x82, b"ber-order.example.com")))),
        raw.challenge(PW)])
    with pytest.raises(ValueError, match="InvalidSetOrdering"):
        x509.load_der_x509_csr(der)  # what the CA used to parse it with
    p = client.params()
    csr: Any = RawCSR(der)  # build_pkcs_req only takes its DER
    rep = client.send(build_pkcs_req(p, csr, random_bytes=os.urandom), p)
    assert rep.status is PkiStatus.SUCCESS, rep.fail_info_text
    cert = rep.certificate_for(client.key.public_key())
    assert cert is not None
    _verify_issued(ca, cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ber-order.example.com"]


def _csr_with_attributes_in_order(key: rsa.RSAPrivateKey, raw: Any,
                                  attributes: list[bytes]) -> bytes:
    """A PKCS#10 whose [0] attributes are written in the order given (not sorted), signed
    over exactly that encoding."""
    assert attributes != sorted(attributes), "the order given must not be DER's"
    info = raw.tlv(0x30, b"\x02\x01\x00" + raw.cn("ber-order") + raw.spki(key)
                   + raw.tlv(0xA0, b"".join(attributes)))
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    algorithm = raw.tlv(0x30, raw.oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    return bytes(raw.tlv(0x30, info + algorithm + raw.tlv(0x03, b"\x00" + signature)))
