"""`parse_bundle` on damaged input: any byte flipped or any cut of a PKCS#7 (certs-only and
signed) or PEM bundle either parses to CA certificates or is a `BundleRefused` naming a
cause; nothing else escapes (no traceback can reach the operator)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.trustpool.bundle import BundleRefused, parse_bundle
from tests.trustpool.pool_certs import ca, p7b, pem, years

_ROOT = ca("Fuzz Root", *years(2020, 2040))
_OTHER = ca("Fuzz Other", *years(2021, 2041))[0]
SAMPLES = [p7b([_ROOT[0], _OTHER]), p7b([_ROOT[0]], "PEM"), pem([_ROOT[0], _OTHER])]
NOW = 1_764_201_600_000_000


def _check(data: bytes) -> None:
    try:
        bundle = parse_bundle(data, [_ROOT[0]], NOW)
    except BundleRefused as e:
        assert e.cause and "%" not in e.cause
    else:
        assert bundle.ders


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(SAMPLES))), st.integers(min_value=0), st.integers(1, 255))
def test_a_flipped_byte(which: int, at: int, mask: int) -> None:
    data = bytearray(SAMPLES[which])
    data[at % len(data)] ^= mask
    _check(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(SAMPLES))), st.integers(min_value=0))
def test_a_cut(which: int, at: int) -> None:
    data = SAMPLES[which]
    _check(data[: at % len(data)])


def test_a_certificate_version_out_of_range_is_refused() -> None:
    """Found by the flipped-byte search: byte 44 of the PEM sample turns the first
    certificate's version into 10, which cryptography refuses with InvalidVersion (not a
    ValueError): a refusal with a cause, not a traceback."""
    data = bytearray(SAMPLES[2])
    data[44] ^= 2
    try:
        parse_bundle(bytes(data), [_ROOT[0]], NOW)
    except BundleRefused as e:
        assert "not a valid X.509 certificate" in e.cause
    else:
        raise AssertionError("a certificate with version 10 was accepted")
