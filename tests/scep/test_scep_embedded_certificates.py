"""Certificates and CRLs inside SCEP messages are parsed completely by the core.

cryptography parses a certificate's names, extensions and key lazily: one that loads can still
raise KeyError or UnsupportedAlgorithm when a caller first reads its subject or key. Whatever
the core hands out (a request's signer certificate, a CertRep's certificates and CRLs, a
GetCACert answer) has been read completely, so such a certificate is a ScepError at parse time.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from engine.scep import (
    CA_CERT_CONTENT_TYPE,
    CA_RA_CERT_CONTENT_TYPE,
    Credential,
    RequestParameters,
    ScepError,
    ScepErrorReason,
    build_cert_rep_success,
    build_csr,
    build_pkcs_req,
    certs_only,
    new_nonce,
    parse_ca_certificates,
    parse_cert_rep,
    parse_request,
    read_certs_only,
)
from tests.scep import raw_der as R
from tests.scep.scep_support import NOW, name, pki, random_bytes

WEEK = dt.timedelta(days=7)
INT_SUBJECT = R.name([("1.2.3.4", 0x02, b"\x01\x00")])  # an INTEGER where text belongs
TRUNCATED_SAN = R.extension(R.OID_SAN, b"\x30\x03\x82\x01")
UNKNOWN_KEY = R.tlv(0x30, R.tlv(0x30, R.oid("1.2.3.4.5")) + R.tlv(0x03, b"\x00\x01\x02"))

# (subject, extensions, raw SubjectPublicKeyInfo, reason)
BAD_CERTIFICATES = {
    "integer-in-subject": (INT_SUBJECT, (), None, ScepErrorReason.MALFORMED),
    "truncated-san": (R.cn("x"), (TRUNCATED_SAN,), None, ScepErrorReason.MALFORMED),
    "unknown-key-algorithm": (R.cn("x"), (), UNKNOWN_KEY, ScepErrorReason.UNSUPPORTED_ALGORITHM),
}


def _bad_certificate(case: str) -> bytes:
    subject, extensions, key, _ = BAD_CERTIFICATES[case]
    return R.certificate(pki().client_key, subject, not_before=NOW - WEEK, not_after=NOW + WEEK,
                         extensions=extensions, subject_key=key, issuer_key=pki().ca.private_key,
                         issuer=pki().ca.certificate.subject.public_bytes())


def _expect(reason: ScepErrorReason, call: object) -> ScepError:
    assert callable(call)
    with pytest.raises(ScepError) as e:
        call()
    assert e.value.reason is reason, e.value
    return e.value


@pytest.mark.parametrize("case", sorted(BAD_CERTIFICATES))
def test_lazy_failures_happen_while_parsing_getcacert(case: str) -> None:
    der = _bad_certificate(case)
    reason = BAD_CERTIFICATES[case][3]
    _expect(reason, lambda: parse_ca_certificates(CA_CERT_CONTENT_TYPE, der))
    bundle = certs_only([pki().ca.certificate, x509.load_der_x509_certificate(der)])
    _expect(reason, lambda: parse_ca_certificates(CA_RA_CERT_CONTENT_TYPE, bundle))


@pytest.mark.parametrize("case", sorted(BAD_CERTIFICATES))
def test_lazy_failures_happen_while_parsing_a_certrep(case: str) -> None:
    p = pki()
    params = RequestParameters(signer=p.client, recipient=p.ca.certificate, transaction_id="TX",
                               sender_nonce=b"N" * 16, signing_time=NOW)
    req_der = build_pkcs_req(params, build_csr(p.client_key, name("r")),
                             random_bytes=random_bytes(5))
    req = parse_request(req_der, recipients=[p.ca])
    rep = build_cert_rep_success(req.reply_to, signer=p.ca, sender_nonce=b"S" * 16,
                                 random_bytes=random_bytes(6),
                                 certificates=[x509.load_der_x509_certificate(
                                     _bad_certificate(case))])
    err = _expect(BAD_CERTIFICATES[case][3], lambda: parse_cert_rep(
        rep, signers=[p.ca.certificate], transaction_id="TX", sender_nonce=b"N" * 16,
        recipient=p.client))
    assert "CertRep certificates certificate" in err.detail


@pytest.mark.parametrize("case", ["integer-in-subject", "truncated-san"])
def test_a_bad_signer_certificate_is_refused_with_reply_to(case: str) -> None:
    """The request's own certificate is handed to the CA (renewal reads its subject and
    extensions); a server must still be able to address a CertRep FAILURE."""
    p = pki()
    subject, extensions, _, reason = BAD_CERTIFICATES[case]
    cert = x509.load_der_x509_certificate(R.certificate(
        p.client_key, subject, extensions=extensions, not_before=NOW - WEEK,
        not_after=NOW + WEEK))
    params = RequestParameters(signer=Credential(cert, p.client_key),
                               recipient=p.ca.certificate, transaction_id="TX-BAD",
                               sender_nonce=new_nonce(random_bytes(7)), signing_time=NOW)
    der = build_pkcs_req(params, build_csr(p.client_key, name("r")),
                         random_bytes=random_bytes(8))
    err = _expect(reason, lambda: parse_request(der, recipients=[p.ca]))
    assert err.reply_to is not None and err.reply_to.transaction_id == "TX-BAD"


def _crl(issuer: bytes, revoked: list[tuple[int, list[bytes]]]) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(R.crl(pki().ca.private_key, issuer, this_update=NOW,
                                        revoked=revoked))


@pytest.mark.parametrize("case", ["integer-in-issuer", "bad-entry-extension"])
def test_crls_are_parsed_completely(case: str) -> None:
    ca_name = pki().ca.certificate.subject.public_bytes()
    if case == "integer-in-issuer":
        crl = _crl(INT_SUBJECT, [(5, [])])
    else:  # a CRLReason entry extension whose ENUMERATED is an OCTET STRING
        crl = _crl(ca_name, [(5, [R.extension("2.5.29.21", b"\x04\x01\x01")])])
    err = _expect(ScepErrorReason.MALFORMED, lambda: read_certs_only(certs_only([], [crl]), "t"))
    assert "t CRL" in err.detail


def test_a_wellformed_crl_is_read() -> None:
    ca_name = pki().ca.certificate.subject.public_bytes()
    crl = _crl(ca_name, [(5, [R.extension("2.5.29.21", b"\x0a\x01\x01")]), (6, [])])
    _, crls = read_certs_only(certs_only([], [crl]), "t")
    assert [r.serial_number for r in crls[0]] == [5, 6]
    assert crls[0].issuer == pki().ca.certificate.subject
