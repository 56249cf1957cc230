"""Failed renewal attempts back off (engine/renewal/schedule.py `retry_wait`): against a CA
that cannot be reached, consecutive failures of one renewal wait the retry period, then twice
it, four times ..., at most 60 minutes; the count resets when a renewal succeeds and when a
commit changes the trustpoint's lines (and at `crypto ca enroll`, and when the CA switch
ends a shadow enrollment). Each `%PKI-3-CERT_RENEW_FAIL` says when the next
attempt is, `show crypto ca timers` shows it, and the log replays to the live state."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.machines.renewal import RenewalPhase
from engine.renewal.schedule import next_attempt, retry_at, retry_wait
from events.renewal import RenewalFailed
from tests.trustpoint.renewal_support import (
    DAY,
    HOUR,
    assert_replays,
    clock_set,
    due_types,
    enrolled,
    following_ca,
    jobs,
    serial_of,
    timers,
)
from tests.trustpoint.test_tp_renewal_cases import DownTransport, iso
from tests.trustpoint.tp_support import configure, event_types, status

MINUTE = 60_000_000
WAITS = [1, 2, 4, 8, 16, 32, 60, 60]  # minutes, with `enrollment retry period 1`


def renewal_point(device: Engine) -> int:
    at = next_attempt(device.state.trustpoint_configs["myca"], status(device))
    assert at is not None
    return at


def attempts_at(start: int, waits: list[int]) -> list[int]:
    """When each attempt runs: the first at `start`, each next one `waits` minutes later."""
    times = [start]
    for wait in waits:
        times.append(times[-1] + wait * MINUTE)
    return times


def failures(r: list[RenewalFailed]) -> list[int]:
    return [ev.next_attempt_at for ev in r]


def down_from_the_renewal_point(device: Engine, tmp_path: Path,
                                network: InProcessTransport) -> int:
    """An enrolled device (auto-enroll 80, retry period 1 minute) whose CA is unreachable
    from its renewal point on: that point."""
    ca, server, _ = following_ca(tmp_path / "ca", device, network)
    enrolled(device, ca, server, "auto-enroll 80", period=1)
    device.ports.scep = DownTransport()
    return renewal_point(device)


def failed_events(r: object) -> list[RenewalFailed]:
    return [rec.event for job in jobs(r) for rec in job.events  # type: ignore[arg-type]
            if isinstance(rec.event, RenewalFailed)]


def test_the_wait_doubles_up_to_the_cap() -> None:
    assert [retry_wait(1, n) // MINUTE for n in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert [retry_wait(5, n) // MINUTE for n in range(5)] == [5, 10, 20, 40, 60]
    assert retry_wait(60, 0) == retry_wait(60, 100) == HOUR
    assert retry_wait(1, 10**6) == HOUR  # no huge shift after a very long outage


@pytest.mark.slow
def test_a_ca_down_for_a_day_backs_off_to_one_attempt_an_hour(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    at = down_from_the_renewal_point(device, tmp_path, scep_network)
    before = serial_of(device)
    r = clock_set(device, at + DAY)
    times = attempts_at(at, WAITS[:6] + [60] * 22)  # 1+2+...+32 = 63 minutes, then hourly
    assert times[-1] <= at + DAY < times[-1] + HOUR
    assert due_types(r) == [["RenewalRequested", "RenewalFailed"]] * len(times)  # 29, not 1,440
    assert [d.events[0].at for d in jobs(r)] == times
    assert failures(failed_events(r)) == [*times[1:], times[-1] + HOUR]
    # each line starts as before and says when the next attempt is
    assert [j.output.splitlines()[-1] for j in jobs(r)][:3] == [
        "%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint myca failed: Unable to "
        "reach the CA at http://ca.invalid/cgi-bin/pkiclient.exe: Connection refused. The "
        f"current certificate stays in use; next attempt at {iso(t)}."
        for t in times[1:4]]
    assert device.execute("show logging").output.count("%PKI-3-CERT_RENEW_FAIL") == len(times)
    st = status(device)
    assert st.renewal is not None and (st.renewal.phase, st.renewal.failures) == (
        RenewalPhase.RETRYING, len(times))
    assert f"({iso(times[-1] + HOUR)}) RENEW myca" in timers(device)
    assert serial_of(device) == before
    assert_replays(device)


def test_a_success_resets_the_back_off(device: Engine, tmp_path: Path,
                                       scep_network: InProcessTransport) -> None:
    at = down_from_the_renewal_point(device, tmp_path, scep_network)
    times = attempts_at(at, WAITS[:4])  # four failures: the next wait is 16 minutes
    r = clock_set(device, times[-1] - MINUTE)
    assert failures(failed_events(r)) == times[1:]
    before = serial_of(device)
    device.ports.scep = scep_network  # the CA is back
    r = clock_set(device, times[-1])
    assert due_types(r) == [["RenewalRequested", "RenewalCertificateReceived"]]
    st = status(device)
    assert serial_of(device) != before
    assert st.renewal is not None and (st.renewal.phase, st.renewal.failures) == (
        RenewalPhase.IDLE, 0)
    assert_replays(device)
    # The renewed certificate's own renewal fails: it waits one retry period, not 16 minutes.
    device.ports.scep = DownTransport()
    again = renewal_point(device)
    r = clock_set(device, again)
    assert failures(failed_events(r)) == [again + MINUTE]
    assert status(device).renewal.failures == 1  # type: ignore[union-attr]
    assert_replays(device)


def test_a_change_to_the_trustpoint_resets_the_back_off(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    at = down_from_the_renewal_point(device, tmp_path, scep_network)
    times = attempts_at(at, WAITS[:5])  # six failures, the next attempt 32 minutes later
    r = clock_set(device, times[-1])
    assert failures(failed_events(r)) == [*times[1:], times[-1] + 32 * MINUTE]
    # A commit that touches another part of the configuration changes nothing...
    configure(device, "hostname r2")
    assert status(device).renewal.failures == 6  # type: ignore[union-attr]
    # ...one that changes the trustpoint starts the count again, the retry one period away.
    configure(device, "crypto ca trustpoint myca", "enrollment retry period 2")
    now = device.ports.clock.now_us()
    st = status(device)
    assert st.renewal is not None and (st.renewal.failures, st.renewal.next_attempt_at) == (
        0, now + 2 * MINUTE)
    assert f"({iso(now + 2 * MINUTE)}) RENEW myca" in timers(device)
    assert_replays(device)
    r = clock_set(device, now + 2 * MINUTE + 4 * MINUTE)
    assert failures(failed_events(r)) == [now + 4 * MINUTE, now + 8 * MINUTE]  # 2, then 4
    assert_replays(device)


def test_crypto_ca_enroll_resets_the_back_off(device: Engine, tmp_path: Path,
                                              scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network)
    enrolled(device, ca, server, "auto-enroll 80", period=1)
    device.ports.scep = DownTransport()
    at = renewal_point(device)
    clock_set(device, attempts_at(at, WAITS[:3])[-1])
    assert status(device).renewal.failures == 4  # type: ignore[union-attr]
    device.ports.scep = scep_network  # the CA is back; the operator enrolls by hand
    password = ca.mint_challenge()
    r = device.execute("crypto ca enroll myca", answers=["yes", password, password])
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    st = status(device)
    assert st.renewal is not None and (st.renewal.phase, st.renewal.failures) == (
        RenewalPhase.IDLE, 0)
    assert_replays(device)


def test_a_shadow_enrollment_ended_by_the_ca_switch_keeps_no_count() -> None:
    """A shadow enrollment (CA rollover) still retrying when the CA's next certificate takes
    over ends idle (engine/rollover/folds.py `ca_activated`) with its count reset, as every
    idle renewal has it."""
    from engine.config import Change
    from engine.state import DeviceState, evolve
    from events.device import ConfigurationCommitted
    from events.renewal import RenewalRequested
    from events.rollover import ShadowCAAccepted, ShadowCAActivated
    from events.trustpoint import CACertificateAccepted, CertificateReceived, EnrollmentRequested
    from tests.core.test_core_fast_replay import CERT

    head = ("crypto ca trustpoint ca1",)
    lines = (Change(head, None, head[0]),
             Change((*head, "enrollment"), None, "enrollment url http://ca1.example"))
    history = [
        ConfigurationCommitted(1, "admin", "", "", tuple(c.to_wire() for c in lines), 0),
        CACertificateAccepted("ca1", b"ca", (), ("POSTPKIOperation",), "scep"),
        EnrollmentRequested("ca1", ("k1",), ("general",), ("t0",), "CN=r1", ("F1",), "scep",
                            1, 3),
        CertificateReceived("ca1", "k1", "general", b"cert", "t0"),
        ShadowCAAccepted("ca1", CERT, 9_000_000),
        RenewalRequested("ca1", "shadow", ("k1",), ("general",), ("t1",), "CN=r1", "pkcsreq",
                         1, 3),
        RenewalFailed("ca1", "shadow", "t1", "peer", "", "unreachable", 2**51),
    ]
    state, at = DeviceState(), 1_700_000_000_000_000
    for ev in history:
        at += 1_000
        state = evolve(state, ev, at, state.seq + 1)
    r = state.trustpoints["ca1"].renewal
    assert r is not None and (r.phase, r.failures) == (RenewalPhase.RETRYING, 1)
    state = evolve(state, ShadowCAActivated("ca1", "02", "01"), at + 1_000, state.seq + 1)
    r = state.trustpoints["ca1"].renewal
    assert r is not None and (r.phase, r.failures) == (RenewalPhase.IDLE, 0)


def test_a_wait_that_would_reach_the_end_is_cut_to_a_last_attempt_before_it() -> None:
    """The back-off never costs the last chance: a 60-minute wait from 30 minutes before the
    certificate's end lands one retry period before the end instead (it landed past the end,
    where no attempt runs, leaving the last half hour without one)."""
    end = 1000 * DAY
    assert retry_at(end - 90 * MINUTE, 1, 6, end) == end - 30 * MINUTE  # fits: the back-off's
    assert retry_at(end - 30 * MINUTE, 1, 6, end) == end - MINUTE  # cut: a last attempt
    assert retry_at(end - 30 * MINUTE, 5, 6, end) == end - 5 * MINUTE
    assert retry_at(end - 30_000_000, 1, 6, end) == 0  # too late: no attempt is promised
    assert retry_at(end - 30 * MINUTE, 1, 6, None) == end + 30 * MINUTE  # a shadow's: as is


def test_a_failure_with_no_attempt_left_before_the_end_promises_none() -> None:
    """The last attempt's failure said `next attempt at T`, T after the certificate's end,
    where no attempt runs (review9): it says none is left, and what to do."""
    from engine.renewal.messages import failed

    ev = RenewalFailed("ca1", "renew", "", "peer", "", "Unable to reach the CA.", 0)
    assert failed(ev) == (
        "%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint ca1 failed: Unable to "
        "reach the CA. The current certificate stays in use; no attempt is left before it "
        "expires (enter 'crypto ca enroll ca1' to enroll again).")
