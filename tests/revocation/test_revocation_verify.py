"""The RFC 5280 checks a fetched CRL must pass before it is cached (engine/revocation/
verify.py): each rule refuses the CRL that breaks it, and only that one."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from engine.revocation.cache import spki_sha256
from engine.revocation.verify import CrlRefused, verify_crl
from tests.support.crl_support import (
    DAY_US,
    CrlSpec,
    Issuer,
    at,
    key,
    key_usage,
    make_ca,
    make_crl,
    make_leaf,
)

CDP = "http://crl.example.com/ca.crl"


@pytest.fixture(scope="module")
def ca() -> Issuer:
    return make_ca()


def test_a_good_crl_is_verified_with_everything_the_cache_keeps(ca: Issuer) -> None:
    der = make_crl(ca, CrlSpec(revoked=[(7, "key_compromise"), (8, None)], number=42,
                               this_update=DAY_US, next_update=3 * DAY_US))
    got = verify_crl(der, ca.cert, make_leaf(ca, 7, [CDP]))
    assert got.der == der and got.number == 42
    assert got.this_update == DAY_US and got.next_update == 3 * DAY_US
    assert got.issuer == ca.cert.subject.public_bytes()
    assert got.issuer_text == "CN=Test Root CA,O=Example"
    assert got.authority_key_id == x509.SubjectKeyIdentifier.from_public_key(
        ca.key.public_key()).digest
    assert got.verified_with == spki_sha256(ca.cert)
    assert len(got.index) == 2 and got.idp_uris == () and got.only == ""
    assert not got.expired_at(2 * DAY_US) and got.expired_at(3 * DAY_US)


def test_pem_is_taken_and_stored_as_der(ca: Issuer) -> None:
    der = make_crl(ca, CrlSpec())
    pem = x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)
    assert verify_crl(pem, ca.cert).der == der


def test_bytes_that_are_no_crl_are_refused(ca: Issuer) -> None:
    with pytest.raises(CrlRefused, match="the answer is not a CRL"):
        verify_crl(b"<html>404</html>", ca.cert)


def test_a_crl_signed_by_another_key_is_refused(ca: Issuer) -> None:
    der = make_crl(ca, CrlSpec(signer=key(5)))
    with pytest.raises(CrlRefused, match="signature does not verify with the issuer's key"):
        verify_crl(der, ca.cert)


def test_a_crl_of_another_issuer_is_refused(ca: Issuer) -> None:
    other = make_ca("Other CA", key_n=3)
    with pytest.raises(CrlRefused, match="issued by CN=Other CA,O=Example, not by "
                                         "CN=Test Root CA,O=Example"):
        verify_crl(make_crl(other, CrlSpec()), ca.cert)


def test_an_issuer_whose_key_usage_lacks_crl_sign_is_refused() -> None:
    bare = make_ca("No CRL Sign CA", key_n=4, key_usage=key_usage(crl_sign=False))
    with pytest.raises(CrlRefused, match=r"key usage without cRLSign \(RFC 5280 6.3.3 \(f\)\)"):
        verify_crl(make_crl(bare, CrlSpec()), bare.cert)
    signing = make_ca("CRL Sign CA", key_n=4, key_usage=key_usage(crl_sign=True))
    assert verify_crl(make_crl(signing, CrlSpec()), signing.cert).number == 1


def test_an_unknown_critical_crl_extension_is_refused(ca: Issuer) -> None:
    with pytest.raises(CrlRefused, match=r"critical extension we cannot process "
                                         r"\(1.3.6.1.4.1.55555.1.1; RFC 5280 5.2\)"):
        verify_crl(make_crl(ca, CrlSpec(critical_unknown=True)), ca.cert)


def test_an_unknown_critical_entry_extension_is_refused(ca: Issuer) -> None:
    der = make_crl(ca, CrlSpec(revoked=[(9, "superseded")], entry_critical_unknown=True))
    with pytest.raises(CrlRefused, match=r"an entry has a critical extension we cannot "
                                         r"process \(1.3.6.1.4.1.55555.1.1\)"):
        verify_crl(der, ca.cert)


def test_a_non_critical_unknown_extension_is_ignored(ca: Issuer) -> None:
    der = make_crl(ca, CrlSpec(extra=[x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.2"), b"\x05\x00")]))
    assert verify_crl(der, ca.cert).number == 1


def test_a_delta_crl_is_never_taken_as_complete(ca: Issuer) -> None:
    with pytest.raises(CrlRefused, match="the CRL is a delta CRL, not a complete one"):
        verify_crl(make_crl(ca, CrlSpec(delta_of=1, number=2)), ca.cert)


def test_the_issuing_distribution_point_scope_is_checked(ca: Issuer) -> None:
    scoped = make_crl(ca, CrlSpec(idp_uris=(CDP,)))
    got = verify_crl(scoped, ca.cert, make_leaf(ca, 3, [CDP]))
    assert got.idp_uris == (CDP,)
    with pytest.raises(CrlRefused, match=r"issuing distribution point does not cover the "
                                         r"certificate \(RFC 5280 5.2.5\)"):
        verify_crl(scoped, ca.cert, make_leaf(ca, 3, ["http://elsewhere.example/x.crl"]))
    with pytest.raises(CrlRefused, match="does not cover"):
        verify_crl(scoped, ca.cert, make_leaf(ca, 3, []))  # no CDP: a scoped CRL is not its
    assert verify_crl(scoped, ca.cert).idp_uris == (CDP,)  # no certificate: scope recorded


def test_only_user_and_only_ca_crls_cover_only_those_certificates(ca: Issuer) -> None:
    users = make_crl(ca, CrlSpec(only_user=True))
    cas = make_crl(ca, CrlSpec(only_ca=True))
    leaf, sub_ca = make_leaf(ca, 4), make_leaf(ca, 5, is_ca=True)
    assert verify_crl(users, ca.cert, leaf).only == "user"
    assert verify_crl(cas, ca.cert, sub_ca).only == "ca"
    with pytest.raises(CrlRefused, match="only end-entity certificates"):
        verify_crl(users, ca.cert, sub_ca)
    with pytest.raises(CrlRefused, match="only CA certificates"):
        verify_crl(cas, ca.cert, leaf)


@pytest.mark.parametrize(("idp", "why"), [
    (x509.IssuingDistributionPoint(None, None, False, False,
                                   frozenset({x509.ReasonFlags.key_compromise}), False, False),
     "covers only some reasons"),
    (x509.IssuingDistributionPoint(None, None, False, False, None, True, False),
     "indirect CRL"),
    (x509.IssuingDistributionPoint(None, None, False, False, None, False, True),
     "only attribute certificates"),
])
def test_partial_indirect_and_attribute_crls_are_refused(ca: Issuer,
                                                         idp: x509.IssuingDistributionPoint,
                                                         why: str) -> None:
    der = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
           .last_update(at(0)).next_update(at(DAY_US)).add_extension(idp, critical=True)
           .sign(ca.key, hashes.SHA256()).public_bytes(Encoding.DER))
    with pytest.raises(CrlRefused, match=why):
        verify_crl(der, ca.cert)
