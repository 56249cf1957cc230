"""The one runtime performs the CA's effects through the ports it is given: the clock, the
randomness, the CA key (`Signer`); a CA opened read-only has no signer and signs nothing."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest

from engine.ca import profile
from engine.ca.commands import (
    DrawSerial,
    MintChallenge,
    RefreshCRL,
    SignCertificate,
    SignCRL,
    Signed,
    challenge_digest,
    decide,
    fold,
)
from engine.ca.errors import CAError
from engine.ca.state import CAState
from engine.effects import DrawRandom, Effect, Now
from engine.ports import FakeClock, FixedClock, SeededRandomness, to_micros
from engine.runtime import Ports, drive
from events.ca import CAInitialized, ChallengeMinted, CRLIssued
from tests.ca.ca_support import T0

DAY = 86400 * 1_000_000


class RecordingSigner:
    def __init__(self) -> None:
        self.signed: list[Effect] = []

    def sign_certificate(self, eff: SignCertificate) -> Signed:
        self.signed.append(eff)
        return Signed(b"cert", to_micros(eff.not_before), to_micros(eff.not_after))

    def sign_crl(self, eff: SignCRL) -> bytes:
        self.signed.append(eff)
        return b"crl-%d" % eff.number


def initialized() -> CAState:
    return fold(CAState(), [
        CAInitialized("CN=Test CA", "rsa:2048", b"ca-der", None, None, 365, 7 * 86400),
        CRLIssued(1, b"crl-1", to_micros(T0), to_micros(T0) + 7 * DAY)], to_micros(T0))


def test_time_and_randomness_come_from_the_ports() -> None:
    def handler() -> Generator[Effect, Any, tuple[int, bytes, int]]:
        now = yield Now()
        drawn = yield DrawRandom(4)
        serial = yield DrawSerial()
        return now, drawn, serial

    clock = FakeClock(us=1_800_000_000_123_456)
    got = drive(handler(), Ports(clock=clock, randomness=SeededRandomness(3)))
    expected = SeededRandomness(3)
    assert got == (1_800_000_000_123_456, expected.token_bytes(4),
                   profile.random_serial(expected))


def test_a_crl_is_signed_through_the_signer_port_at_the_clock_time() -> None:
    signer = RecordingSigner()
    clock = FixedClock(T0 + timedelta(days=2, microseconds=250))
    decided = drive(decide(initialized(), RefreshCRL(force=True)),
                    Ports(clock=clock, signer=signer))
    [eff] = signer.signed
    assert isinstance(eff, SignCRL)
    assert eff.number == 2 and eff.this_update == (T0 + timedelta(days=2))
    assert decided.events == [CRLIssued(2, b"crl-2", to_micros(eff.this_update),
                                        to_micros(eff.next_update))]


def test_a_challenge_password_is_drawn_from_the_randomness_port() -> None:
    decided = drive(decide(initialized(), MintChallenge(timedelta(minutes=5))),
                    Ports(clock=FixedClock(T0), randomness=SeededRandomness(9)))
    password = SeededRandomness(9).token_bytes(15).hex()
    assert decided.value == password
    assert decided.events == [ChallengeMinted(challenge_digest(password),
                                              to_micros(T0) + 300 * 1_000_000)]


def test_without_a_signer_nothing_is_signed() -> None:
    with pytest.raises(CAError, match="read-only"):
        drive(decide(initialized(), RefreshCRL(force=True)), Ports(clock=FixedClock(T0)))
