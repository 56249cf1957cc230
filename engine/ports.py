"""Ports: how the pure middle reaches the world, one set for the device and the CA. Each has a
Protocol and a real adapter; tests pass fakes. Nothing in decide/evolve touches these
directly: the runtime (engine/runtime.py) performs effects through them.

The live engine and CA use `SystemClock`, `SystemRandomness` and (engine/keystore.py)
`CryptographyKeyGenerator`; tests pass a `FakeClock` (µs, advanced by seconds) or a
`FixedClock` (an aware datetime, advanced by a timedelta), `SeededRandomness` and key pools,
so serials, nonces, one-time challenges and validity dates are reproducible.

The engine clock is an `EngineClock`: whichever of those clocks the engine was given (the
base) plus an offset. The device's offset is what `clock set` recorded (the `ClockSet` event,
folded into `DeviceState.clock_offset_us`; the Engine keeps its EngineClock in step with the
folded state); the built-in CA's is `--clock ISO-TIME`, for one run. A scheduled job runs on a
`PinnedClock`: the time it ran at, standing still.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""A CA's signing key (the device's keys also include Ed25519: engine.keys.PrivateKey)."""


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch (UTC)."""
        ...

    def now(self) -> datetime:
        """The same instant, timezone-aware UTC."""
        ...


class Randomness(Protocol):
    def token_bytes(self, n: int) -> bytes:
        """`n` unpredictable bytes (serials, nonces, one-time challenges, CEKs)."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000

    def now(self) -> datetime:
        return from_micros(self.now_us())


class FakeClock:
    """A clock tests move by hand, in seconds. (It and `PinnedClock` are plain slotted
    classes: every start-up defines them, and a dataclass costs ~0.15-0.3 ms to define;
    issue 12.)"""

    __slots__ = ("us",)

    def __init__(self, us: int = 1_764_201_600_000_000) -> None:  # 2025-11-27 00:00 UTC
        self.us = us

    def now_us(self) -> int:
        return self.us

    def now(self) -> datetime:
        return from_micros(self.us)

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1_000_000)


class FixedClock:
    """A clock that only moves when told to, by a timedelta (thread-safe)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def now_us(self) -> int:
        return to_micros(self.now())

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._at += delta


class EngineClock:
    """The engine clock: a base clock plus `offset_us` (what `clock set` recorded). The base
    keeps running, so the engine clock runs on from the time that was set."""

    def __init__(self, base: Clock, offset_us: int = 0) -> None:
        self.base = base
        self.offset_us = offset_us

    def now_us(self) -> int:
        return self.base.now_us() + self.offset_us

    def now(self) -> datetime:
        return from_micros(self.now_us())

    def offset_to(self, at_us: int) -> int:
        """The offset that makes this clock read `at_us` now."""
        return at_us - self.base.now_us()


class PinnedClock:
    """A clock that stands at one instant (µs): the time a scheduled job runs at."""

    __slots__ = ("us",)

    def __init__(self, us: int) -> None:
        self.us = us

    def now_us(self) -> int:
        return self.us

    def now(self) -> datetime:
        return from_micros(self.us)


class SystemRandomness:
    def token_bytes(self, n: int) -> bytes:
        return os.urandom(n)


class SeededRandomness:
    """Deterministic bytes for tests. Never for a live CA: its output is predictable."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - test double, predictable on purpose
        self._lock = threading.Lock()

    def token_bytes(self, n: int) -> bytes:
        with self._lock:
            return self._rng.randbytes(n)


class Prompter(Protocol):
    def ask(self, prompt: str, secret: bool) -> str | None:
        """The operator's answer, or None when there is nobody to ask (end of input)."""
        ...


Writer = Callable[[str], None]


def to_micros(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


__all__ = ["Clock", "EngineClock", "FakeClock", "FixedClock", "PinnedClock", "PrivateKey",
           "Prompter", "Randomness", "SeededRandomness", "SystemClock", "SystemRandomness",
           "Writer", "from_micros", "to_micros"]
