"""The CA's random serials (engine/ca/profile.random_serial): positive, at most 16 octets of DER,
at least 64 bits, and never a DER INTEGER that needs a leading 0x00 octet (strongSwan 5.9.8
cannot open a CertRep enveloped to such a certificate: tests/interop/test_interop_serials.py)."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from engine.ca import profile


class Scripted:
    """Randomness that hands out the given draws in order."""

    def __init__(self, *draws: bytes) -> None:
        self._draws: Iterator[bytes] = iter(draws)
        self.taken = 0

    def token_bytes(self, n: int) -> bytes:
        draw = next(self._draws)
        assert len(draw) == n
        self.taken += 1
        return draw


def _der_content(serial: int) -> bytes:
    """The contents octets of `serial` as a DER INTEGER (minimal two's complement)."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)


# 0x01F8... >> 1 = 0xFC... in 15 octets: its DER is 00 FC ..., the CI flake's certificate
# (serial FC44E457ED9B3BDEDFE44D6FA2021F, seen by `pki --print` as fc:44:...).
NEEDS_ZERO = bytes.fromhex("01F889C8AFDB3677BDBFC89ADF44043E")
PLAIN = bytes.fromhex("9C3F00000000000000000000000000A1")


def test_a_draw_whose_der_needs_a_leading_zero_is_drawn_again() -> None:
    assert _der_content(int.from_bytes(NEEDS_ZERO, "big") >> 1)[:2] == b"\x00\xfc"
    randomness = Scripted(NEEDS_ZERO, PLAIN)
    serial = profile.random_serial(randomness)
    assert randomness.taken == 2
    assert serial == int.from_bytes(PLAIN, "big") >> 1
    assert _der_content(serial)[0] == 0x4E


def test_a_short_draw_is_drawn_again_as_before() -> None:
    randomness = Scripted(bytes(15) + b"\x07", PLAIN)
    assert profile.random_serial(randomness) == int.from_bytes(PLAIN, "big") >> 1


@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=40))
def test_every_serial_is_positive_short_and_starts_without_a_zero_octet(
        draws: list[bytes]) -> None:
    tail = [PLAIN]  # a draw every rule accepts ends the list
    serial = profile.random_serial(Scripted(*draws, *tail))
    der = _der_content(serial)
    assert serial >= 1 << 64
    assert 0 < der[0] < 0x80
    assert len(der) <= 16
