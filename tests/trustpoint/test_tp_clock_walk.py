"""Walking a pending enrollment through time with `clock set` (issue 15): moving the clock
forward runs every poll it passes, in order, each as its own command at its own time; moving
it back runs nothing and nothing runs twice; the log replays to the same state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from engine import Engine
from engine.ca.decide import Approval
from engine.ca.service import BuiltinCA
from engine.ports import FakeClock, to_micros
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    declare,
    enroll,
    event_types,
    identity_and_key,
    status,
)

MINUTE = 60_000_000
T0 = FakeClock().us  # 2025-11-27 00:00:00 UTC


def pending(device: Engine, ca_factory: CAFactory, *, period: int, count: int) -> BuiltinCA:
    ca, server = ca_factory(Approval.MANUAL)
    identity_and_key(device)
    declare(device, url=server.url, period=period, count=count)
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    assert event_types(enroll(device, password=ca.mint_challenge())) == [
        "EnrollmentRequested", "EnrollmentPending"]
    return ca


def polls(device: Engine) -> int:
    e = status(device).enrollment
    assert e is not None
    return e.polls


def test_clock_set_forward_runs_each_poll_it_passes_at_its_own_time(
        device: Engine, ca_factory: CAFactory,
        open_engine: Callable[..., Engine]) -> None:
    ca = pending(device, ca_factory, period=2, count=25)

    r = device.execute("clock set 00:10:30 27 November 2025")
    assert r.ok and [x.type for x in r.events] == ["ClockSet"]
    assert r.output.startswith("00:10:30.000 UTC Thu Nov 27 2025\n")
    assert [event_types(d) for d in r.due] == [["EnrollmentPending"]] * 5
    assert [d.events[0].at for d in r.due] == [T0 + m * MINUTE for m in (2, 4, 6, 8, 10)]
    assert {d.events[0].actor for d in r.due} == {"scheduler"}
    assert polls(device) == 5
    assert status(device).enrollment.next_poll_at == T0 + 12 * MINUTE  # type: ignore[union-attr]
    assert device.run_due() == []  # the walk left nothing due

    # Back: nothing runs, nothing runs twice; forward again to just before the next poll.
    back = device.execute("clock set 00:03:00 27 November 2025")
    assert back.ok and back.due == [] and device.run_due() == []
    assert device.execute("clock set 00:11:59 27 November 2025").due == []
    assert polls(device) == 5

    ca.approve(next(q.transaction_id for q in ca.requests()))
    done = device.execute("clock set 00:12:00 27 Nov 2025")
    # The last poll, then the CRL fetch right after the enrollment completed (issue 16).
    ((got,), (crl,)) = [d.events for d in done.due]
    assert (got.type, got.at) == ("CertificateReceived", T0 + 12 * MINUTE)
    assert (crl.type, crl.at) == ("CrlFetched", T0 + 12 * MINUTE)
    assert done.output.startswith(
        "00:12:00.000 UTC Thu Nov 27 2025\n"
        "%PKI-6-CERTRET: Certificate received from Certificate Authority for trustpoint myca\n"
        "%PKI-6-CRL_FETCHED: ")
    assert status(device).enrollment is None
    # No poll is left: what a walk to January runs is the CRL refresh timer alone.
    later = device.execute("clock set 00:00:00 1 January 2026").due
    assert later and {d.events[0].type for d in later} <= {"CrlFetched", "CrlFetchFailed"}

    # The log replays to the same state, and the clock runs on from where it was set.
    live = device.state
    device.store.close()
    again = open_engine(use_snapshots=False)
    assert again.state == live
    assert again.execute("show clock").output == "00:00:00.000 UTC Thu Jan 01 2026\n"


def test_a_walk_runs_the_polls_out_and_stops_with_the_timeout(
        device: Engine, ca_factory: CAFactory) -> None:
    pending(device, ca_factory, period=1, count=3)
    r = device.execute("clock set 12:00:00 27 November 2025")
    assert [event_types(d) for d in r.due] == [["EnrollmentPending"], ["EnrollmentPending"],
                                               ["EnrollmentFailed"]]
    assert [d.events[0].at for d in r.due] == [T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert not r.due[-1].ok  # the job that ended the enrollment failed; the set did not
    assert r.ok
    assert r.output.endswith(
        "%PKI-3-ENROLL_TIMEOUT: Certificate enrollment for trustpoint myca timed out (no "
        "certificate after 3 polls). Ask the CA administrator to approve the request, then "
        "enter 'crypto ca enroll myca' again.\n")
    assert status(device).enrollment is None
    assert device.execute("clock set 12:00:00 1 December 2025").due == []


def test_show_logging_keeps_the_clock_updates_in_order(device: Engine,
                                                      ca_factory: CAFactory) -> None:
    pending(device, ca_factory, period=1, count=2)
    device.execute("clock set 00:05:00 27 November 2025")
    lines = device.execute("show logging").output.splitlines()
    body = [ln for ln in lines if ln.startswith("RP/0/RP0/CPU0:")]
    assert body[0] == ("RP/0/RP0/CPU0:Nov 27 00:00:00.000 UTC: pki[0]: %SYS-6-CLOCKUPDATE: "
                       "System clock has been updated from 00:00:00.000 UTC Thu Nov 27 2025 to "
                       "00:05:00.000 UTC Thu Nov 27 2025, configured from console.")
    assert body[1].startswith("RP/0/RP0/CPU0:Nov 27 00:02:00.000 UTC: pki[0]: "
                              "%PKI-3-ENROLL_TIMEOUT:")
    assert to_micros(datetime(2025, 11, 27, 0, 5, tzinfo=UTC)) <= device.ports.clock.now_us()
