"""The certificate template (engine/ca/template.py) makes the builder's certificate, byte for
byte: `profile.end_entity_certificate` is the reference it is held to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ca import profile
from engine.ca.template import CertificateTemplate
from engine.ports import PrivateKey
from tests.ca.ca_support import ec_key, rsa_key, spki

NOW = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
CA_KEY = rsa_key(31)
CA_CERT = profile.ca_certificate(CA_KEY, x509.Name.from_rfc4514_string("CN=Template CA,O=X"),
                                 7, NOW - timedelta(days=1), NOW + timedelta(days=365 * 60))
TEMPLATE = CertificateTemplate.for_ca(CA_KEY, CA_CERT)
SUBJECT_KEYS: list[PrivateKey] = [rsa_key(32), ec_key(33)]


def _name(cn: str, string: type[asn1_core.Asn1Value]) -> bytes:
    """A DER Name with one CN of `string` type and an O, or the empty Name for cn ""."""
    if not cn:
        return bytes(asn1_x509.Name.load(b"\x30\x00").dump())
    rdns = [[{"type": "organization_name", "value": asn1_x509.DirectoryString(
        name="utf8_string", value="Example")}],
            [{"type": "common_name", "value": asn1_x509.DirectoryString(
                name="printable_string" if string is asn1_core.PrintableString
                else "utf8_string", value=cn)}]]
    return bytes(asn1_x509.Name(name="", value=asn1_x509.RDNSequence(rdns)).dump())


def _san(names: list[str]) -> bytes:
    """DER Extensions asking for a subjectAltName of these DNS names."""
    san = asn1_x509.GeneralNames([asn1_x509.GeneralName(name="dns_name", value=n)
                                  for n in names])
    return bytes(asn1_x509.Extensions([{"extn_id": "subject_alt_name", "critical": False,
                                        "extn_value": san}]).dump())


def _both(request: profile.EndEntityRequest, serial: int, not_before: datetime,
          not_after: datetime, crl_url: str | None, ldap_url: str | None) -> None:
    assert TEMPLATE is not None
    reference = profile.end_entity_certificate(CA_KEY, CA_CERT, request, serial, not_before,
                                               not_after, crl_url, ldap_url)
    issued = TEMPLATE.issue(request, serial, not_before, not_after, crl_url, ldap_url)
    assert issued.der == reference.public_bytes(serialization.Encoding.DER)
    assert issued.not_before == reference.not_valid_before_utc
    assert issued.not_after == reference.not_valid_after_utc


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(SUBJECT_KEYS),
       cn=st.sampled_from(["", "r1.example.com", "Ünïcode router", "x" * 60]),
       string=st.sampled_from([asn1_core.PrintableString, asn1_core.UTF8String]),
       dns=st.lists(st.sampled_from(["a.example", "b.example.com", "c"]), max_size=3),
       serial=st.integers(min_value=1, max_value=2**159 - 1),
       start=st.integers(min_value=-10**6, max_value=10**9),
       days=st.integers(min_value=1, max_value=365 * 100),
       crl=st.sampled_from([None, "http://127.0.0.1:8080/crl/ca.crl"]),
       ldap=st.sampled_from([None, "ldap://127.0.0.1/cn=CA,o=X?certificateRevocationList"]))
def test_the_template_makes_the_builders_certificate(
        key: PrivateKey, cn: str, string: type[asn1_core.Asn1Value], dns: list[str],
        serial: int, start: int, days: int, crl: str | None, ldap: str | None) -> None:
    """Any key, subject (string types, empty with a SAN), SAN, serial, CDP and validity (to
    the microsecond; through and past 2050; past the CA certificate's end, where both clip)."""
    if not cn and not dns:
        dns = ["only-san.example"]
    if cn and string is asn1_core.PrintableString and not cn.isascii():
        string = asn1_core.UTF8String
    request = profile.EndEntityRequest(_name(cn, string), spki(key),
                                       _san(dns) if dns else b"")
    not_before = NOW + timedelta(seconds=start, microseconds=start % 999_999)
    _both(request, serial, not_before, not_before + timedelta(days=days), crl, ldap)


@pytest.mark.parametrize("not_after", [
    datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime(2050, 6, 30, 12, 0, 1, 5, tzinfo=UTC)], ids=["last-utctime", "2050", "mid-2050"])
def test_utctime_ends_with_2049(not_after: datetime) -> None:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on."""
    request = profile.EndEntityRequest(_name("r1", asn1_core.UTF8String),
                                       spki(SUBJECT_KEYS[0]), b"")
    _both(request, 99, NOW, not_after, None, None)


def test_a_request_the_profile_refuses_is_refused_alike() -> None:
    assert TEMPLATE is not None
    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    request = profile.EndEntityRequest(_name("r1", asn1_core.UTF8String), ed, b"")
    _refused_alike(request, 5, NOW, NOW + timedelta(days=1))


@pytest.mark.parametrize("after_end", [timedelta(seconds=1), timedelta(days=3)])
def test_a_request_after_the_cas_end_is_refused_alike(after_end: timedelta) -> None:
    """Found by review: the validity is clipped to the CA certificate's end, and a CA past
    its end must refuse (the builder does) rather than issue a certificate whose notAfter
    comes before its notBefore."""
    assert TEMPLATE is not None
    request = profile.EndEntityRequest(_name("late", asn1_core.UTF8String), spki(rsa_key(32)),
                                       b"")
    start = CA_CERT.not_valid_after_utc + after_end
    _refused_alike(request, 6, start, start + timedelta(days=30))


def _refused_alike(request: profile.EndEntityRequest, serial: int, start: datetime,
                   end: datetime) -> None:
    """The builder and the template refuse `request` with the same words."""
    assert TEMPLATE is not None
    with pytest.raises(ValueError) as builder:
        profile.end_entity_certificate(CA_KEY, CA_CERT, request, serial, start, end, None)
    with pytest.raises(ValueError) as template:
        TEMPLATE.issue(request, serial, start, end, None)
    assert str(template.value) == str(builder.value)


def test_a_ca_key_that_is_not_rsa_is_left_to_the_builder() -> None:
    key = ec_key(34)
    cert = profile.ca_certificate(key, x509.Name.from_rfc4514_string("CN=EC CA"), 9,
                                  NOW - timedelta(days=1), NOW + timedelta(days=30))
    assert CertificateTemplate.for_ca(key, cert) is None
