"""The CA's ports: time, randomness and key generation come in from outside.

The live CA uses `SystemClock`, `SystemRandomness` and `GeneratedKeys`; tests pass a
`FixedClock` they advance by hand, a `SeededRandomness`, and keys made once per session, so
serials, nonces, one-time challenges and validity dates are reproducible.
"""

from __future__ import annotations

import os
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

KEY_SPECS = ("rsa:2048", "rsa:4096", "ecdsa:p256")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class Randomness(Protocol):
    def token_bytes(self, n: int) -> bytes:
        """`n` unpredictable bytes (serials, nonces, one-time challenges)."""
        ...


class KeyFactory(Protocol):
    def generate(self, spec: str) -> PrivateKey:
        """A new private key for `spec` (one of `KEY_SPECS`)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (thread-safe)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._at += delta


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


class GeneratedKeys:
    def generate(self, spec: str) -> PrivateKey:
        if spec == "rsa:2048":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if spec == "rsa:4096":
            return rsa.generate_private_key(public_exponent=65537, key_size=4096)
        if spec == "ecdsa:p256":
            return ec.generate_private_key(ec.SECP256R1())
        raise ValueError(f"unknown key spec {spec!r}; expected one of {', '.join(KEY_SPECS)}")


def to_micros(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
