"""The trustpool as folded state: its certificates (built-in and downloaded), the last update,
and the update timer's fields; and which certificates are usable when.

Rules (the reference's "CA Trust Pool Management", IOS XR where it is silent):
- The pool is one entity: an update replaces the whole downloaded part, or nothing.
- A built-in certificate cannot be replaced, but it is inactive while a downloaded certificate
  has the same subject (shown as such).
- Certificates outside their validity (expired, not yet valid) are kept and shown, but are
  never an anchor while invalid. With `crypto ca rsa 1024 disable`, RSA keys of 1024 bits or
  less are kept and shown, but not used.

A `PoolCert` keeps, beside the DER, what show and the anchor search read (names as DER,
validity in µs, key size): parsed once when the event is folded, so neither parses again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.machines.trustpool import UpdateTimer

if TYPE_CHECKING:  # the state imports this module: a `show` never loads cryptography.x509
    from cryptography import x509


@contextmanager
def quiet() -> Iterator[None]:
    """Root certificates older than RFC 5280's rules (a serial number that is not positive)
    make `cryptography` warn on stderr: they are the bundle's, not news to the operator."""
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def load(der: bytes) -> x509.Certificate:
    from cryptography import x509

    with quiet():
        cert = x509.load_der_x509_certificate(der)
        _ = cert.serial_number
    return cert


WEAK_RSA_BITS = 1024  # `crypto ca rsa 1024 disable`: this many bits or fewer are not used


@dataclass(frozen=True, slots=True)
class PoolCert:
    der: bytes
    subject: bytes  # DER of the subject Name
    issuer: bytes  # DER of the issuer Name
    not_before: int  # µs since the epoch
    not_after: int  # µs since the epoch
    rsa_bits: int  # 0 for a key that is not RSA

    @classmethod
    def from_der(cls, der: bytes) -> PoolCert:
        """From a certificate the event carries (checked when it was accepted)."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        cert = load(der)
        key = cert.public_key()
        bits = key.key_size if isinstance(key, rsa.RSAPublicKey) else 0
        return cls(der, cert.subject.public_bytes(), cert.issuer.public_bytes(),
                   _micros(cert.not_valid_before_utc.timestamp()),
                   _micros(cert.not_valid_after_utc.timestamp()), bits)

    def certificate(self) -> x509.Certificate:
        return load(self.der)

    def valid_at(self, now: int) -> bool:
        return self.not_before <= now <= self.not_after

    @property
    def weak(self) -> bool:
        return 0 < self.rsa_bits <= WEAK_RSA_BITS


def _micros(seconds: float) -> int:
    return round(seconds) * 1_000_000


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    """The last update, as `show crypto ca trustpool policy` reports it."""

    at: int
    url: str
    automatic: bool
    ok: bool
    signature: str  # "unsigned", "signed by ...", "" for a failure
    count: int  # certificates downloaded
    cause: str  # why it failed ("" when ok)


@dataclass(frozen=True, slots=True)
class TrustpoolState:
    builtin_sha256: str = ""
    builtin_source: str = ""
    builtin: tuple[PoolCert, ...] = ()
    downloaded: tuple[PoolCert, ...] = ()
    last_update: UpdateRecord | None = None
    timer: UpdateTimer = UpdateTimer.IDLE
    target: int = 0  # µs: the expiry the timer watches (0: none)
    armed_at: int = 0  # µs: when the timer started watching it
    since: int = 0  # µs: armed, or the last automatic attempt (the schedule counts from it)
    failures: int = 0  # automatic attempts failed in a row
    warned_at: int = 0  # µs: the last TRUSTPOOL_AUTO_UPDATE_DISABLED warning (0: none)

    def shadowed(self) -> frozenset[bytes]:
        """Subjects (DER) of the downloaded certificates: built-ins with these are inactive."""
        return frozenset(c.subject for c in self.downloaded)


@dataclass(frozen=True, slots=True)
class Entry:
    """One certificate of the pool as `show` lists it, with what keeps it from use."""

    cert: PoolCert
    origin: str  # "Built-In" | "Downloaded"
    inactive: bool  # a built-in shadowed by a downloaded certificate of the same subject
    weak: bool  # RSA <= 1024 bits while `crypto ca rsa 1024 disable` is configured

    def usable_at(self, now: int) -> bool:
        """An anchor at `now`: active, strong enough, and within its validity."""
        return not self.inactive and not self.weak and self.cert.valid_at(now)


def entries(pool: TrustpoolState, rsa_1024_disabled: bool) -> Iterator[Entry]:
    """Every certificate of the pool: the built-in ones, then the downloaded ones."""
    shadowed = pool.shadowed()
    for c in pool.builtin:
        yield Entry(c, "Built-In", c.subject in shadowed, rsa_1024_disabled and c.weak)
    for c in pool.downloaded:
        yield Entry(c, "Downloaded", False, rsa_1024_disabled and c.weak)


def active(pool: TrustpoolState) -> Iterator[PoolCert]:
    """The certificates the pool holds in place (built-ins not shadowed, and downloads)."""
    shadowed = pool.shadowed()
    yield from (c for c in pool.builtin if c.subject not in shadowed)
    yield from pool.downloaded


def earliest_expiry(pool: TrustpoolState, after: int = 0) -> int:
    """The earliest notAfter among the active certificates later than `after` (µs), or 0."""
    ends = [c.not_after for c in active(pool) if c.not_after > after]
    return min(ends, default=0)
