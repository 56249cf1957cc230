"""Helpers for the renewal tests: a built-in CA whose clock is the device's engine clock (so
a `clock set` on the device moves the CA too, and a certificate issued during a renewal is
dated at the time the renewal runs), `clock set` to an exact instant, and the check that the
device's log replays to the state it has live."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.decide import Approval
from engine.ca.server import InProcessCA, serve_in_process
from engine.ca.service import BuiltinCA
from engine.engine import Result
from engine.messages import MONTHS
from engine.ports import Clock
from engine.state import DeviceState, replay_rows
from tests.trustpoint.tp_support import (
    authenticate,
    declare,
    enroll,
    event_types,
    identity_and_key,
    make_ca,
    status,
)

DAY = 86_400_000_000
HOUR = 3_600_000_000


@dataclass
class FollowingClock:
    """The device's engine clock, plus `ahead_us` (a CA whose clock runs ahead)."""

    device: Clock
    ahead_us: int = 0

    def now_us(self) -> int:
        return self.device.now_us() + self.ahead_us

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_us() / 1e6, UTC)


def following_ca(root: Path, device: Engine, network: InProcessTransport,
                 approval: Approval = Approval.AUTO, *, url: str = "http://ca.invalid",
                 **kw: object) -> tuple[BuiltinCA, InProcessCA, FollowingClock]:
    clock = FollowingClock(device.ports.clock)
    ca = make_ca(root, clock, **kw)  # type: ignore[arg-type]
    return ca, serve_in_process(ca, network, url, approval=approval), clock


def enrolled(device: Engine, ca: BuiltinCA, server: InProcessCA, *extra: str,
             period: int = 60, count: int = 5) -> None:
    """The reference session up to an installed router certificate, with `extra` lines in
    the trustpoint (e.g. `auto-enroll 80`)."""
    identity_and_key(device)
    declare(device, url=server.url, period=period, count=count, extra=extra)
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    r = enroll(device, password=ca.mint_challenge())
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output


def clock_set(device: Engine, us: int) -> Result:
    """`clock set` to the instant `us` (whole seconds)."""
    t = datetime.fromtimestamp(us // 1_000_000, UTC)
    r = device.execute(f"clock set {t:%H:%M:%S} {t.day} {MONTHS[t.month - 1]} {t.year}")
    assert r.ok, r.output
    return r


def due_types(r: Result) -> list[list[str]]:
    """The event types of each job a `clock set` ran."""
    return [event_types(d) for d in r.due]


def timers(device: Engine) -> str:
    return device.execute("show crypto ca timers").output


def serial_of(device: Engine, name: str = "myca") -> int:
    from cryptography import x509

    (rc,) = status(device, name).certificates
    return x509.load_der_x509_certificate(rc.der).serial_number


def assert_replays(device: Engine) -> None:
    """The device's log, folded from the start, gives the state it has live."""
    replayed = replay_rows(DeviceState(), device.store.read_rows(typed=True))
    assert replayed == device.state
