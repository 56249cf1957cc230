"""A GetCACert answer built to be slow: many CA certificates of one name, each with its own
key, so that telling the CA among them takes a signature check per pair (quadratic: 400 of
them took 12 s of CPU, a 1 MiB answer holds some 3,600, the operator's shell blocked for a
quarter of an hour past the exchange's deadline). No CA sends more than its own certificate,
its RAs' and its chain: a bundle of more than MAX_CA_CERTIFICATES is refused unread."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from engine.scep import ScepError, certs_only, parse_ca_certificates
from engine.scep.cacert import MAX_CA_CERTIFICATES

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NAME = x509.Name.from_rfc4514_string("CN=Same Name CA")


def _lookalike(serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateBuilder().subject_name(NAME).issuer_name(NAME)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def test_a_bundle_of_too_many_certificates_is_refused_by_count() -> None:
    count = MAX_CA_CERTIFICATES + 1
    body = certs_only([_lookalike(i + 1) for i in range(count)])
    with pytest.raises(ScepError) as refused:
        parse_ca_certificates("application/x-x509-ca-ra-cert", body)
    assert refused.value.detail == (f"GetCACert: {count} certificates; a CA sends its own, "
                                    f"its RAs' and its chain (at most {MAX_CA_CERTIFICATES})")


def test_a_bundle_at_the_limit_is_still_read() -> None:
    body = certs_only([_lookalike(i + 1) for i in range(MAX_CA_CERTIFICATES)])
    with pytest.raises(ScepError, match=f"cannot tell the CA among {MAX_CA_CERTIFICATES}"):
        parse_ca_certificates("application/x-x509-ca-ra-cert", body)
