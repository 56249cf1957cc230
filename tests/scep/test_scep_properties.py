"""Property tests: whatever bytes arrive, parse functions raise only ScepError."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.scep import (
    CA_CERT_CONTENT_TYPE,
    CA_RA_CERT_CONTENT_TYPE,
    CACertificates,
    CertificationRequest,
    CertRep,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    RequestParameters,
    ScepError,
    ScepRequest,
    build_ca_certificates,
    build_cert_rep_success,
    build_csr,
    build_pkcs_req,
    decode_message_param,
    new_nonce,
    parse_ca_certificates,
    parse_capabilities,
    parse_cert_rep,
    parse_csr,
    parse_request,
    read_certs_only,
)
from engine.scep.cms import open_envelope
from tests.scep import raw_der as R
from tests.scep.scep_support import (
    NOW,
    cert_rep_success_raw,
    name,
    pkcs_req,
    pki,
    random_bytes,
    raw_certs_only,
    read_certificate_like_a_caller,
    read_like_a_caller,
    vector,
    vector_cert,
    vector_key,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning")

PROFILE = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def _client_params() -> RequestParameters:
    p = pki()
    return RequestParameters(signer=p.client, recipient=p.ca.certificate, transaction_id="TX",
                             sender_nonce=b"N" * 16, cipher=ContentCipher.AES_128_CBC,
                             digest=DigestAlgorithm.SHA256, signing_time=NOW)


@functools.cache
def _micromdm_ca() -> Credential:
    return Credential(vector_cert("micromdm_ca.pem"), vector_key("micromdm_ca.key.pem"))


def _parsers() -> dict[str, Callable[[bytes], object]]:
    p = pki()
    return {
        "request": lambda b: parse_request(b, recipients=[p.ca]),
        "request_micromdm": lambda b: parse_request(b, recipients=[_micromdm_ca()]),
        "cert_rep": lambda b: parse_cert_rep(b, signers=[p.ca.certificate],
                                             transaction_id="TX", sender_nonce=b"N" * 16,
                                             recipient=p.client),
        "csr": parse_csr,
        "caps": parse_capabilities,
        "ca_cert": lambda b: parse_ca_certificates(CA_CERT_CONTENT_TYPE, b),
        "ca_ra_cert": lambda b: parse_ca_certificates(CA_RA_CERT_CONTENT_TYPE, b),
        "certs_only": lambda b: read_certs_only(b, "test"),
        "envelope": lambda b: open_envelope(b, [p.ca]),
        "message_param": decode_message_param,
    }


PARSERS = sorted(_parsers())


def _only_scep_errors(parse: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(ScepError):
        parse(data)


@pytest.mark.parametrize("parser", PARSERS)
@PROFILE
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_scep_error(parser: str, data: bytes) -> None:
    _only_scep_errors(_parsers()[parser], data)


@pytest.mark.parametrize("parser", PARSERS)
@PROFILE
@given(data=st.binary(max_size=300))
def test_der_shaped_random_bytes(parser: str, data: bytes) -> None:
    """A SEQUENCE header in front gets random bytes past the first length check."""
    _only_scep_errors(_parsers()[parser], b"\x30\x82" + len(data).to_bytes(2, "big") + data)


def _samples() -> dict[str, bytes]:
    p = pki()
    rp = _client_params()
    csr = build_csr(p.client_key, name("r"), challenge_password="pw")
    req_der = build_pkcs_req(rp, csr, random_bytes=random_bytes(1))
    req = parse_request(req_der, recipients=[p.ca])
    rep_der = build_cert_rep_success(req.reply_to, signer=p.ca,
                                     sender_nonce=new_nonce(random_bytes(2)),
                                     random_bytes=random_bytes(3),
                                     certificates=[p.ca.certificate])
    return {
        "request": req_der,
        "cert_rep": rep_der,
        "micromdm_request": vector("pkcsreq_des_sha1_micromdm.der"),
        "ca_ra_cert": build_ca_certificates(p.ca.certificate, [p.ra_sign.certificate])[1],
    }


MUTATION_TARGETS = {
    "request": "request", "cert_rep": "cert_rep", "micromdm_request": "request_micromdm",
    "ca_ra_cert": "ca_ra_cert",
}


@pytest.mark.parametrize("sample", sorted(MUTATION_TARGETS))
@PROFILE
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(min_value=0)))
def test_mutated_real_messages(sample: str, flips: list[tuple[int, int]],
                               cut: int | None) -> None:
    """Byte flips and truncations of valid messages: parsed or refused with ScepError."""
    data = bytearray(_samples_cache()[sample])
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    if cut is not None:
        del data[cut % len(data):]
    _only_scep_errors(_parsers()[MUTATION_TARGETS[sample]], bytes(data))


_CACHE: dict[str, bytes] = {}


def _samples_cache() -> dict[str, bytes]:
    if not _CACHE:
        _CACHE.update(_samples())
    return _CACHE


# ------------------------------------------ structured mutations: names, attributes, extensions
#
# Random bytes rarely get past a signature check. These examples are correctly signed messages
# whose *contents* are mutated: name values of any ASN.1 type (or a valid string of the wrong
# one), attributes with zero or several values, extensions whose values are random DER trees
# or subjectAltNames with random GeneralNames. Whatever the core accepts must then be readable
# by a caller without any exception (cryptography parses those parts lazily).

_STRING_TAGS = [0x0C, 0x13, 0x14, 0x16, 0x1C, 0x1E]
_OTHER_TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x12, 0x17, 0x1A, 0x1B, 0x80, 0x81]
_NAME_OIDS = ["2.5.4.3", "2.5.4.6", "2.5.4.10", "2.5.4.11", "2.5.4.5", "2.5.4.45",
              "1.2.840.113549.1.9.1", "0.9.2342.19200300.100.1.25", "1.2.840.113549.1.9.2",
              "1.2.3.4"]
_EXTENSION_OIDS = [R.OID_SAN, "2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.14",
                   "2.5.29.35", "2.5.29.31", "2.5.29.30", "1.3.6.1.5.5.7.1.1", "1.2.3.4"]

_primitive = st.tuples(st.sampled_from(_STRING_TAGS + _OTHER_TAGS),
                       st.one_of(st.binary(max_size=12),
                                 st.text(max_size=8).map(lambda t: t.encode("utf-8")),
                                 st.sampled_from([b"US", b"router1", b"\x00\x00\x00A"]))
                       ).map(lambda tv: R.tlv(*tv))
_der_tree = st.recursive(
    _primitive,
    lambda children: st.tuples(st.sampled_from([0x30, 0x31, 0xA0, 0xA1, 0xA3]),
                               st.lists(children, max_size=3)
                               ).map(lambda tc: R.tlv(tc[0], b"".join(tc[1]))),
    max_leaves=6)
_ava = st.tuples(st.sampled_from(_NAME_OIDS), st.sampled_from(_STRING_TAGS + _OTHER_TAGS),
                 st.one_of(st.binary(max_size=10),
                           st.sampled_from([b"US", b"router1", b"a@b.example"])))
_names = st.lists(st.lists(_ava, max_size=2), max_size=3).map(lambda rdns: R.name(*rdns))
_general_name = st.one_of(
    st.tuples(st.integers(0, 8), st.binary(max_size=18)).map(
        lambda tb: R.tlv(0x80 | tb[0] | (0x20 if tb[0] in (0, 3, 4, 5) else 0), tb[1])),
    st.sampled_from([R.tlv(0x82, b"r1.example.com"), R.tlv(0x87, b"\xc0\x00\x02\x01"),
                     R.tlv(0x86, b"http://example.com/"), R.tlv(0x81, b"pki@example.com")]),
    st.builds(lambda n: R.tlv(0xA4, n), _names))
_san_value = st.lists(_general_name, max_size=3).map(lambda g: R.tlv(0x30, b"".join(g)))
_extension = st.one_of(
    st.builds(lambda v, c: R.extension(R.OID_SAN, v, c), _san_value, st.booleans()),
    st.builds(R.extension, st.sampled_from(_EXTENSION_OIDS),
              st.one_of(_der_tree, st.binary(max_size=12)), st.booleans()))
_attribute = st.one_of(
    st.builds(lambda e: R.extension_request(*e), st.lists(_extension, max_size=3)),
    st.builds(lambda vs: R.attribute(R.OID_CHALLENGE, *vs), st.lists(_primitive, max_size=2)),
    st.builds(lambda t, vs: R.attribute(t, *vs),
              st.sampled_from(["1.2.3.4", "1.2.840.113549.1.9.2", R.OID_EXTENSION_REQUEST]),
              st.lists(_der_tree, max_size=2)))
STRUCTURED = settings(max_examples=120, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


def _accepted_or_scep_error(parse: Callable[[], object]) -> object | None:
    try:
        return parse()
    except ScepError:
        return None


@STRUCTURED
@given(subject=_names, attributes=st.lists(_attribute, max_size=3))
def test_signed_requests_with_mutated_contents(subject: bytes, attributes: list[bytes]) -> None:
    """parse_csr and parse_request: refused with ScepError, or fully readable."""
    der = R.csr(pki().client_key, subject, attributes)
    req = _accepted_or_scep_error(lambda: parse_csr(der))
    if req is not None:
        assert isinstance(req, CertificationRequest)
        read_like_a_caller(req)
    message = _accepted_or_scep_error(
        lambda: parse_request(pkcs_req(der), recipients=[pki().ca]))
    if message is not None:
        assert isinstance(message, ScepRequest) and message.csr is not None
        assert req is not None  # the request layer adds no leniency of its own
        read_like_a_caller(message.csr)


_WEEK = dt.timedelta(days=7)


@STRUCTURED
@given(subject=_names, issuer=_names, extensions=st.lists(_extension, max_size=3))
def test_certificates_with_mutated_contents(subject: bytes, issuer: bytes,
                                            extensions: list[bytes]) -> None:
    """GetCACert (alone or in a bundle) and CertRep SUCCESS carrying such a certificate."""
    p = pki()
    der = R.certificate(p.client_key, subject, issuer=issuer, extensions=extensions,
                        not_before=NOW - _WEEK, not_after=NOW + _WEEK)
    handed_out: list[x509.Certificate] = []
    single = _accepted_or_scep_error(lambda: parse_ca_certificates(CA_CERT_CONTENT_TYPE, der))
    if single is not None:
        assert isinstance(single, CACertificates)
        handed_out.append(single.ca)
    bundle = raw_certs_only([der, p.ca.certificate.public_bytes(serialization.Encoding.DER)])
    roles = _accepted_or_scep_error(lambda: parse_ca_certificates(CA_RA_CERT_CONTENT_TYPE,
                                                                  bundle))
    if roles is not None:
        assert isinstance(roles, CACertificates)
        handed_out += [roles.ca, *roles.chain]
    rep = _accepted_or_scep_error(lambda: parse_cert_rep(
        cert_rep_success_raw(raw_certs_only([der])), signers=[p.ca.certificate],
        transaction_id="TX", sender_nonce=b"N" * 16, recipient=p.client))
    if rep is not None:
        assert isinstance(rep, CertRep)
        handed_out += rep.certificates
    for cert in handed_out:
        read_certificate_like_a_caller(cert)


_valid_ava = st.tuples(
    st.sampled_from(["2.5.4.3", "2.5.4.10", "2.5.4.11", "2.5.4.5"]),
    st.sampled_from([0x0C, 0x13]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -.",
            min_size=1, max_size=12).map(str.encode))


@STRUCTURED
@given(rdns=st.lists(st.lists(_valid_ava, min_size=1, max_size=2, unique_by=lambda a: a[0]),
                     max_size=4),
       dns=st.lists(st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,2}", fullmatch=True),
                    max_size=2),
       sha1=st.booleans())
def test_wellformed_requests_are_accepted_as_sent(rdns: list[list[tuple[str, int, bytes]]],
                                                  dns: list[str], sha1: bool) -> None:
    """The other half of the contract: nothing well-formed is refused, and the subject and
    SANs read back are exactly those sent, whatever the signature's digest."""
    sans = R.tlv(0x30, b"".join(R.tlv(0x82, d.encode()) for d in dns))
    der = R.csr(pki().client_key, R.name(*rdns),
                [R.extension_request(R.extension(R.OID_SAN, sans))] if dns else [],
                digest="sha1" if sha1 else "sha256")
    req = parse_csr(der)
    assert req.subject.public_bytes() == R.name(*rdns)
    assert req.dns_names == tuple(dns)
    assert req.signature_digest is (DigestAlgorithm.SHA1 if sha1 else DigestAlgorithm.SHA256)
