"""The DER fast path of parse_csr (engine/scep/_fastcsr.py): for every request it takes, it
gives what the asn1crypto path gives; it hands every other request (and every refusal) to
asn1crypto, so errors and their wording stay the full parser's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from engine.ca import profile
from engine.ca.profile import requested_extensions
from engine.scep import Credential, ScepError, build_csr, parse_csr
from engine.scep import csr as csr_module
from engine.scep._fastcsr import RawRequest, read_name, read_request
from engine.scep.csr import CertificationRequest
from engine.scep.request import parse_request
from tests.scep import raw_der as R
from tests.scep.scep_support import name, pki, vector, vector_cert, vector_key
from tests.scep.test_scep_properties import STRUCTURED, _attribute, _extension, _names

CN = R.OID_CN


@contextmanager
def _without_fast_path() -> Iterator[None]:
    saved = csr_module.read_request
    csr_module.read_request = lambda der, check: None  # type: ignore[assignment]
    try:
        yield
    finally:
        csr_module.read_request = saved


def _outcome(der: bytes) -> tuple[object, ...]:
    """What parse_csr hands out for `der` (or the error it raises), comparable."""
    try:
        req = parse_csr(der)
    except ScepError as e:
        return ("refused", e.reason, e.detail)
    return _fields(req)


def _fields(req: CertificationRequest) -> tuple[object, ...]:
    return (req.csr.public_bytes(serialization.Encoding.DER), req.challenge_password,
            req.signature_digest, req.signature_algorithm, req.der, req.extension_request,
            req.subject.rfc4514_string(), req.dns_names, req.ip_addresses)


def _slow(der: bytes) -> tuple[object, ...]:
    with _without_fast_path():
        return _outcome(der)


def _csr(subject: bytes, *attributes: bytes) -> bytes:
    return R.csr(pki().client_key, subject, list(attributes))


def _san(*general_names: bytes) -> bytes:
    return R.extension_request(R.extension(R.OID_SAN, R.tlv(0x30, b"".join(general_names))))


def _micromdm_csr() -> bytes:
    ca = Credential(vector_cert("micromdm_ca.pem"), vector_key("micromdm_ca.key.pem"))
    request = parse_request(vector("pkcsreq_des_sha1_micromdm.der"), recipients=[ca])
    assert request.csr is not None
    return request.csr.der


def _out_of_der_order(*attributes: bytes) -> bytes:
    """A request whose attributes are not sorted (strongSwan's `pki --req --san`)."""
    first, second = sorted(attributes, reverse=True)
    key = pki().client_key
    info = R.tlv(0x30, b"\x02\x01\x00" + R.cn("r1") + R.spki(key)
                 + R.tlv(0xA0, first + second))
    return R._signed(key, info, "sha256")


FAST = {
    "ours": build_csr(pki().client_key, name("router1.example.com"), challenge_password="pw",
                      dns_names=["router1.example.com"]).public_bytes(
        serialization.Encoding.DER),
    "no-challenge": build_csr(pki().client_key, name("r2")).public_bytes(
        serialization.Encoding.DER),
    "printable-utf8-ia5": _csr(R.name([(CN, 0x13, b"r1")], [("2.5.4.10", 0x0C, "Zürich".encode())],
                                      [("2.5.4.11", 0x16, b"ops")]), R.challenge("pw")),
    "ios-unstructured": _csr(R.name([("1.2.840.113549.1.9.2", 0x16, b"r1.example.com")],
                                    [("2.5.4.5", 0x13, b"FTX1234")]),
                             R.challenge("pw", tag=0x0C)),
    "san-ip": _csr(R.cn("r1"), R.challenge("secret"),
                   _san(R.tlv(0x82, b"r1.example.com"), R.tlv(0x87, b"\xc0\x00\x02\x01"))),
    "empty-subject-san": _csr(R.tlv(0x30, b""), _san(R.tlv(0x82, b"r1.example.com"))),
    "duplicate-extension": _csr(R.cn("r1"), R.extension_request(
        R.extension("1.2.3.4", b"\x05\x00"), R.extension("1.2.3.4", b"\x05\x00"))),
    "bad-signature": R.csr(pki().ca.private_key, R.cn("r1"), [R.challenge("pw")],
                           subject_key=R.spki(pki().client_key)),
}


@pytest.mark.parametrize("case", sorted(FAST))
def test_the_fast_path_reads_what_asn1crypto_reads(case: str) -> None:
    der = FAST[case]
    assert read_request(der, csr_module._check_extension_request) is not None  # it ran
    assert _outcome(der) == _slow(der)
    if _outcome(der)[0] != "refused":  # what the CA records, read as it used to be
        assert parse_csr(der).extension_request == requested_extensions(der)


def test_a_micromdm_request_takes_the_fast_path() -> None:
    der = _micromdm_csr()
    raw = read_request(der, csr_module._check_extension_request)
    assert isinstance(raw, RawRequest) and raw.challenge_password is not None
    assert _outcome(der) == _slow(der)


def test_what_it_hands_out_is_the_request_as_signed() -> None:
    der = FAST["san-ip"]
    raw = read_request(der, csr_module._check_extension_request)
    assert raw is not None
    assert raw.info == der[4:4 + 4 + int.from_bytes(der[6:8], "big")]  # SEQUENCE, long form
    assert raw.challenge_password == "secret"
    assert raw.extension_request == parse_csr(der).extension_request != b""


FULL_PARSER = {
    "teletex-subject": _csr(R.name([(CN, 0x14, b"r1")])),
    "bmp-subject": _csr(R.name([(CN, 0x1E, "r1".encode("utf-16-be"))])),
    "email-subject": _csr(R.name([("1.2.840.113549.1.9.1", 0x16, b"pki@example.com")])),
    "integer-subject": _csr(R.name([(CN, 0x02, b"\x01")])),
    "utf8-not-utf8": _csr(R.name([(CN, 0x0C, b"\xff\xfe")])),
    "three-letter-country": _csr(R.name([("2.5.4.6", 0x13, b"USA")])),
    "empty-rdn": _csr(R.tlv(0x30, R.tlv(0x31, b""))),
    "unknown-attribute": _csr(R.cn("r1"), R.attribute("1.2.3.4", b"\x05\x00")),
    "challenge-twice": _csr(R.cn("r1"), R.challenge("a"), R.challenge("b")),
    "challenge-bmp": _csr(R.cn("r1"), R.challenge("pw", tag=0x1E)),
    "san-truncated": _csr(R.cn("r1"), R.extension_request(
        R.extension(R.OID_SAN, b"\x30\x03\x82\x01"))),
    "out-of-der-order": _out_of_der_order(R.extension_request(), R.challenge("pw")),
    "trailing-bytes": _csr(R.cn("r1"), R.challenge("pw")) + b"\x00",
}


@pytest.mark.parametrize("case", sorted(FULL_PARSER))
def test_other_shapes_and_refusals_go_to_asn1crypto(case: str) -> None:
    der = FULL_PARSER[case]
    assert read_request(der, csr_module._check_extension_request) is None
    assert _outcome(der) == _slow(der)


@STRUCTURED
@given(subject=_names, attributes=st.lists(_attribute, max_size=3))
def test_random_requests_read_the_same_with_and_without_the_fast_path(
        subject: bytes, attributes: list[bytes]) -> None:
    der = R.csr(pki().client_key, subject, attributes)
    assert _outcome(der) == _slow(der)


_SAN_DNS = R.extension(R.OID_SAN, R.tlv(0x30, R.tlv(0x82, b"r1.example.com")))
# Requests of the shapes peers send, with values of every kind the fast path decides on.
_plain_ava = st.tuples(
    st.sampled_from([CN, "2.5.4.10", "2.5.4.6", "2.5.4.5", "1.2.840.113549.1.9.2",
                     "1.2.840.113549.1.9.1", "0.9.2342.19200300.100.1.25", "1.2.3.4"]),
    st.sampled_from([0x13, 0x0C, 0x16, 0x14]),
    st.one_of(st.text("abcXYZ019 -.", min_size=1, max_size=8).map(str.encode),
              st.text(max_size=6).map(lambda t: t.encode("utf-8")), st.binary(max_size=3),
              st.sampled_from([b"US", b"router1"])))
_plain_names = st.lists(st.lists(_plain_ava, min_size=1, max_size=2), max_size=3).map(
    lambda rdns: R.name(*rdns))
_plain_attributes = st.lists(st.one_of(
    st.builds(lambda tag, text: R.attribute(R.OID_CHALLENGE, R.tlv(tag, text.encode())),
              st.sampled_from([0x13, 0x0C, 0x16, 0x1E]), st.text(max_size=6)),
    st.builds(lambda e: R.extension_request(*e), st.lists(st.one_of(
        _extension, st.sampled_from([_SAN_DNS, R.extension("1.2.3.4", b"\x05\x00")])),
        max_size=2))),
    max_size=2, unique_by=lambda a: a[:14])


@STRUCTURED
@given(subject=_plain_names, attributes=_plain_attributes)
def test_plain_requests_read_the_same_with_and_without_the_fast_path(
        subject: bytes, attributes: list[bytes]) -> None:
    der = R.csr(pki().client_key, subject, attributes)
    assert _outcome(der) == _slow(der)


# -- the CA's profile.name_from_der: the subject it writes into the certificate it issues


def _profile_name(der: bytes) -> tuple[object, ...]:
    """What name_from_der gives (its DER, with each value's string type), or the error."""
    try:
        built = profile.name_from_der.__wrapped__(der)
    except (ValueError, TypeError, KeyError) as e:
        return ("refused", type(e), str(e))
    return (built.public_bytes(), [(a.oid, a.value, a._type) for a in built])


def _profile_name_slow(der: bytes) -> tuple[object, ...]:
    saved = profile.read_name
    profile.read_name = lambda der: None  # type: ignore[assignment]
    try:
        return _profile_name(der)
    finally:
        profile.read_name = saved


NAMES = {
    "ours": name("router1.example.com").public_bytes(),
    "three-types": R.name([(CN, 0x13, b"r1")], [("2.5.4.10", 0x0C, "Zürich".encode())],
                          [("2.5.4.11", 0x16, b"ops")], [("2.5.4.6", 0x13, b"CH")]),
    "ios-unstructured": R.name([("1.2.840.113549.1.9.2", 0x16, b"r1.example.com"),
                                ("1.2.840.113549.1.9.8", 0x13, b"192.0.2.1")]),
    "multi-valued-rdn": R.name([(CN, 0x13, b"r1"), ("2.5.4.5", 0x13, b"FTX1")]),
    "empty": R.tlv(0x30, b""),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_the_profile_builds_the_same_subject_with_the_walker(case: str) -> None:
    der = NAMES[case]
    assert read_name(der) is not None  # the fast path ran
    assert _profile_name(der) == _profile_name_slow(der)


@pytest.mark.parametrize("der", [R.name([(CN, 0x14, b"r1")]), R.name([(CN, 0x1E, b"\x00r")]),
                                 R.name([("1.2.840.113549.1.9.1", 0x16, b"a@b.example")]),
                                 R.name([(CN, 0x02, b"\x01")]), R.tlv(0x30, R.tlv(0x31, b"")),
                                 R.name([("2.5.4.6", 0x13, b"USA")]), R.cn("r1") + b"\x00"])
def test_other_names_are_built_by_asn1crypto(der: bytes) -> None:
    assert read_name(der) is None
    assert _profile_name(der) == _profile_name_slow(der)


@STRUCTURED
@given(der=_plain_names)
def test_random_names_build_the_same_with_and_without_the_walker(der: bytes) -> None:
    assert _profile_name(der) == _profile_name_slow(der)
