"""GetNextCACert messages (RFC 8894 §4.7): the CA's answer round-trips, and a client refuses
every answer its current CA key did not sign, or one that holds no next CA certificate."""

from __future__ import annotations

import pytest

from engine.scep import (
    NEXT_CA_CERT_CONTENT_TYPE,
    Credential,
    ScepError,
    ScepErrorReason,
    build_next_ca_certificates,
    parse_next_ca_certificates,
)
from engine.scep.cms import certs_only
from tests.scep.scep_support import ca_certificate, name, pki, rsa_key


def _next() -> Credential:
    key = rsa_key("next-ca")
    return Credential(ca_certificate(key, name("Test SCEP CA", o="Example"), serial=2), key)


def test_the_next_ca_certificate_round_trips_signed_by_the_current_key() -> None:
    current, following = pki().ca, _next()
    ctype, body = build_next_ca_certificates([following.certificate], signer=current)
    assert ctype == NEXT_CA_CERT_CONTENT_TYPE == "application/x-x509-next-ca-cert"
    found = parse_next_ca_certificates(ctype + "; charset=binary", body, current.certificate)
    assert found.ca == following.certificate and not found.has_ra


@pytest.mark.parametrize(("case", "reason"), [
    ("signed by the next key", ScepErrorReason.BAD_SIGNATURE),
    ("signed by an RA", ScepErrorReason.BAD_SIGNATURE),
    ("a degenerate bundle, no signer", ScepErrorReason.MALFORMED),
    ("the current certificate again", ScepErrorReason.BAD_CA_CERTIFICATES),
    ("no CA certificate inside", ScepErrorReason.BAD_CA_CERTIFICATES),
    ("another content type", ScepErrorReason.WRONG_CONTENT_TYPE),
    ("tampered", None),
])
def test_a_client_refuses(case: str, reason: ScepErrorReason | None) -> None:
    p, following = pki(), _next()
    ctype, certs, signer = NEXT_CA_CERT_CONTENT_TYPE, [following.certificate], p.ca
    if case == "signed by the next key":
        signer = following
    elif case == "signed by an RA":
        signer = p.ra_sign
    elif case == "the current certificate again":
        certs = [p.ca.certificate]
    elif case == "no CA certificate inside":
        certs = [p.ra_encrypt.certificate]
    _, body = build_next_ca_certificates(certs, signer=signer)
    if case == "a degenerate bundle, no signer":
        body = certs_only(certs)
    elif case == "another content type":
        ctype = "application/x-x509-ca-ra-cert"
    elif case == "tampered":
        at = body.index(following.certificate.tbs_certificate_bytes[-20:])
        body = body[:at] + bytes([body[at] ^ 1]) + body[at + 1:]
    with pytest.raises(ScepError) as e:
        parse_next_ca_certificates(ctype, body, p.ca.certificate)
    if reason is not None:
        assert e.value.reason is reason, e.value.detail
    else:  # the signed content changed: its digest no longer matches
        assert e.value.reason in (ScepErrorReason.DIGEST_MISMATCH, ScepErrorReason.BAD_SIGNATURE)
