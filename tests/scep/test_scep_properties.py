"""Property tests: whatever bytes arrive, parse functions raise only ScepError."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scep_support import NOW, name, pki, random_bytes, vector, vector_cert, vector_key

from engine.scep import (
    CA_CERT_CONTENT_TYPE,
    CA_RA_CERT_CONTENT_TYPE,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    RequestParameters,
    ScepError,
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
