"""Renewal's other paths (issue 17), against the built-in CA on the device's engine clock:
a renewal the CA leaves PENDING and then approves (polled on the trustpoint's retry period,
the current certificate in use meanwhile), one it rejects (logged, retried, the current
certificate kept), a CA that is down for a day of the renewal window, a RenewalReq, a renewed
certificate whose validity begins later (held, then activated; no expiry notice while it
covers the expiry), and an operator's `crypto ca enroll` taking over from a renewal in
flight. The log replays to the live state after every step."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.decide import Approval
from engine.ca.server import InProcessCA, serve_in_process
from engine.ca.service import BuiltinCA
from engine.certids import ios_serial
from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.renewal.schedule import next_attempt
from engine.scep_client import HttpReply, TransportError
from engine.trustpoints import RouterCertificate
from events.renewal import RenewalCertificateReceived, RenewalFailed
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
from tests.trustpoint.tp_support import CHALLENGE, configure, event_types, status

MINUTE = 60_000_000


def renewal_point(device: Engine) -> int:
    at = next_attempt(device.state.trustpoint_configs["myca"], status(device))
    assert at is not None
    return at


def iso(us: int) -> str:
    from datetime import UTC, datetime

    return f"{datetime.fromtimestamp(us // 1_000_000, UTC):%Y-%m-%dT%H:%M:%SZ}"


def manual(ca: BuiltinCA, server: InProcessCA, network: InProcessTransport) -> None:
    """From now on the CA holds every request for its operator (manual approval)."""
    server.stop()
    serve_in_process(ca, network, server.url, approval=Approval.MANUAL)


def pending_renewal(device: Engine, tmp_path: Path,
                    network: InProcessTransport) -> tuple[BuiltinCA, int]:
    """An enrolled device (auto-enroll 50, retry every 30 minutes, 4 polls) whose renewal
    the CA holds: (the CA, when the renewal was sent)."""
    ca, server, _ = following_ca(tmp_path / "ca", device, network)
    enrolled(device, ca, server, "auto-enroll 50", period=30, count=4)
    manual(ca, server, network)
    at = renewal_point(device)
    r = clock_set(device, at)
    assert due_types(r) == [["RenewalRequested", "RenewalPending"]]
    assert jobs(r)[0].output == ("%PKI-6-CERTRENEWAUTO: Renewing the router certificate of "
                               "trustpoint myca (PKCSReq signed by the current "
                               "certificate)\n")
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED and st.renewal is not None
    assert (st.renewal.phase, st.renewal.polls, st.renewal.next_poll_at) == (
        RenewalPhase.PENDING, 0, at + 30 * MINUTE)
    assert_replays(device)
    return ca, at


def test_pending_then_approved(device: Engine, tmp_path: Path,
                               scep_network: InProcessTransport) -> None:
    ca, at = pending_renewal(device, tmp_path, scep_network)
    before = serial_of(device)
    assert timers(device).splitlines()[:3] == [
        "PKI Timers", "|       30:00.000", f"|       30:00.000  ({iso(at + 30 * MINUTE)}) "
        "POLL myca"]
    shown = device.execute("show crypto ca trustpoint myca").output
    assert "State               :enrolled\n" in shown
    assert "Renewal             :pending, 1 attempt since " in shown
    assert "  Polls             :0 of 4\n  Next poll         :in 00:30:00 (" in shown

    # Two polls while the CA holds it: still the old certificate, still enrolled.
    r = clock_set(device, at + 60 * MINUTE)
    assert due_types(r) == [["RenewalPending"], ["RenewalPending"]]
    assert serial_of(device) == before and status(device).renewal.polls == 2  # type: ignore[union-attr]
    assert_replays(device)

    (held,) = [q for q in ca.requests() if q.status.value == "pending"]
    assert held.renewal_of is not None and held.authorization == "renewal"
    ca.approve(held.transaction_id)
    r = clock_set(device, at + 90 * MINUTE)
    assert due_types(r) == [["RenewalCertificateReceived"]]
    assert jobs(r)[0].output.startswith("%PKI-6-CERT_RENEWED: Trustpoint myca: renewed router "
                                      "certificate (General Purpose, serial ")
    st = status(device)
    assert serial_of(device) != before and st.lifecycle is Lifecycle.ENROLLED
    assert st.renewal is not None and (st.renewal.phase, st.renewal.last_result) == (
        RenewalPhase.IDLE, "issued")
    assert "POLL" not in timers(device) and "RENEW myca" in timers(device)
    assert_replays(device)


def test_pending_past_the_retry_count_is_retried(device: Engine, tmp_path: Path,
                                                 scep_network: InProcessTransport) -> None:
    _ca, at = pending_renewal(device, tmp_path, scep_network)
    r = clock_set(device, at + 120 * MINUTE)  # the 4th poll is the last of the attempt
    assert due_types(r) == [["RenewalPending"]] * 3 + [["RenewalFailed"]]
    assert jobs(r)[-1].output == (
        "%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint myca failed: no "
        "certificate after 4 polls. The current certificate stays in use; next attempt at "
        f"{iso(at + 150 * MINUTE)}.\n")
    st = status(device)
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.RETRYING
    assert f"({iso(at + 150 * MINUTE)}) RENEW myca" in timers(device)
    # The next attempt asks again; the CA still holds the same transaction.
    r = clock_set(device, at + 150 * MINUTE)
    assert due_types(r) == [["RenewalRequested", "RenewalPending"]]
    assert status(device).renewal.attempts == 2  # type: ignore[union-attr]
    assert_replays(device)


def test_rejected_keeps_the_certificate_and_retries(device: Engine, tmp_path: Path,
                                                    scep_network: InProcessTransport) -> None:
    ca, at = pending_renewal(device, tmp_path, scep_network)
    before = status(device).certificates
    (held,) = [q for q in ca.requests() if q.status.value == "pending"]
    ca.reject(held.transaction_id, "not this router")
    r = clock_set(device, at + 30 * MINUTE)
    assert due_types(r) == [["RenewalFailed"]]
    (failed,) = (rec.event for rec in jobs(r)[0].events)
    assert isinstance(failed, RenewalFailed)
    assert (failed.reason, failed.fail_info) == ("failure", "badRequest")
    assert failed.next_attempt_at == at + 60 * MINUTE
    assert jobs(r)[0].output.startswith(
        "%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint myca failed: badRequest: ")
    assert "not this router" in jobs(r)[0].output
    assert jobs(r)[0].output.endswith(" The current certificate stays in use; next attempt at "
                                    f"{iso(at + 60 * MINUTE)}.\n")
    st = status(device)
    assert st.certificates == before and st.lifecycle is Lifecycle.ENROLLED
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.RETRYING
    shown = device.execute("show crypto ca trustpoint myca").output
    assert "Renewal             :retrying, 1 attempt since " in shown
    assert "(failure (badRequest): " in shown
    assert "Next renewal        :in 00:30:00 (" in shown
    assert_replays(device)
    # Never silently stuck: the next attempt runs, and is refused again, and logged again.
    r = clock_set(device, at + 60 * MINUTE)
    assert due_types(r) == [["RenewalRequested", "RenewalFailed"]]
    logged = device.execute("show logging").output
    assert logged.count("%PKI-3-CERT_RENEW_FAIL") == 2
    assert status(device).certificates == before
    assert_replays(device)


class DownTransport:
    """A CA that cannot be reached: every request fails as a refused connection would."""

    def get(self, url: str, params: Mapping[str, str]) -> HttpReply:
        raise TransportError("Connection refused")

    def post(self, url: str, params: Mapping[str, str], body: bytes) -> HttpReply:
        raise TransportError("Connection refused")


def test_a_ca_down_for_a_day_of_the_window(device: Engine, tmp_path: Path,
                                           scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network)
    enrolled(device, ca, server, "auto-enroll 80")  # retry every 60 minutes
    before = serial_of(device)
    at = renewal_point(device)
    device.ports.scep = DownTransport()
    r = clock_set(device, at + 23 * HOUR)
    assert due_types(r) == [["RenewalRequested", "RenewalFailed"]] * 24
    assert [d.events[0].at for d in jobs(r)] == [at + n * HOUR for n in range(24)]
    assert jobs(r)[0].output.endswith(
        "%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint myca failed: Unable to "
        "reach the CA at http://ca.invalid/cgi-bin/pkiclient.exe: Connection refused. The "
        f"current certificate stays in use; next attempt at {iso(at + HOUR)}.\n")
    st = status(device)
    assert serial_of(device) == before and st.lifecycle is Lifecycle.ENROLLED
    assert st.renewal is not None and st.renewal.attempts == 24
    assert_replays(device)

    device.ports.scep = scep_network  # the CA is back
    r = clock_set(device, at + 24 * HOUR)
    assert due_types(r) == [["RenewalRequested", "RenewalCertificateReceived"]]
    st = status(device)
    assert serial_of(device) != before
    assert st.renewal is not None and (st.renewal.attempts, st.renewal.phase) == (
        25, RenewalPhase.IDLE)
    assert st.renewal.started_at == at
    assert_replays(device)


def test_renewalreq(device: Engine, tmp_path: Path,
                    scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network)
    enrolled(device, ca, server, "auto-enroll 80", "renewal-message-type renewalreq")
    before = serial_of(device)
    r = clock_set(device, renewal_point(device))
    assert due_types(r) == [["RenewalRequested", "RenewalCertificateReceived"]]
    assert jobs(r)[0].output.startswith(
        "%PKI-6-CERTRENEWAUTO: Renewing the router certificate of trustpoint myca "
        "(RenewalReq signed by the current certificate)\n")
    assert jobs(r)[0].events[0].event.message_type == "renewalreq"
    newest = max(ca.requests(), key=lambda q: q.received_at)
    assert newest.message_type == 17 and newest.authorization == "renewal"  # RenewalReq
    assert serial_of(device) != before
    assert_replays(device)


def held_renewal(device: Engine, tmp_path: Path, network: InProcessTransport
                 ) -> tuple[RouterCertificate, RenewalCertificateReceived]:
    """An enrolled device (auto-enroll 90) whose renewed certificate begins 20 days after
    the renewal (the CA's clock runs ahead): (the current certificate, the held one's
    event)."""
    ca, server, ca_clock = following_ca(tmp_path / "ca", device, network)
    enrolled(device, ca, server, "auto-enroll 90")
    # The CA's clock runs 20 days ahead from now on (its tolerance of signing times too).
    server.stop()
    serve_in_process(ca, network, server.url, signing_time_tolerance=timedelta(days=30))
    ca_clock.ahead_us = 20 * DAY
    (current,) = status(device).certificates
    at = renewal_point(device)  # 36.5 days before the end: after the 60..39-day notices
    r = clock_set(device, at)
    assert due_types(r) == [["CertificateExpiryWarned"]] * 4 + [
        ["RenewalRequested", "RenewalCertificateReceived"]]
    assert [d.events[0].event.days_left for d in jobs(r)[:4]] == [60, 53, 46, 39]
    received = jobs(r)[-1].events[1].event
    assert isinstance(received, RenewalCertificateReceived)
    assert received.not_before == at + 20 * DAY - 5 * MINUTE
    new = x509.load_der_x509_certificate(received.certificate)
    assert jobs(r)[-1].output.endswith(
        f"%PKI-6-CERT_RENEW_HELD: Trustpoint myca: renewed router certificate (General "
        f"Purpose, serial {ios_serial(new)}) held until its validity begins "
        f"({iso(received.not_before)})\n")
    return current, received


def test_a_certificate_valid_later_is_held_then_activated(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    current, received = held_renewal(device, tmp_path, scep_network)
    new = x509.load_der_x509_certificate(received.certificate)
    starts = received.not_before
    end = int(x509.load_der_x509_certificate(current.der).not_valid_after_utc.timestamp()
              ) * 1_000_000
    st = status(device)
    assert st.certificates == (current,) and len(st.next_certificates) == 1
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.HELD
    certs = device.execute("show crypto ca certificates").output
    assert ("Next router certificate\nKey usage          :General Purpose\n"
            "Status             :Held\n" f"Serial Number      :{ios_serial(new)}\n") in certs
    # The held certificate covers the expiry: no notice for the router certificate at 32 or
    # 25 days; it takes over at its notBefore. (The CA certificate's first notice is due 60
    # days before its end, in 2035.)
    assert timers(device).splitlines()[1:] == [
        "|19d 23:55:00.000", f"|19d 23:55:00.000  ({iso(starts)}) RENEW myca",
        "|2956d 12:00:00.000  (2034-11-24T23:59:30Z) SHADOW myca",  # CA rollover (90%)
        "|3261d 12:00:30.000  (2035-09-26T00:00:00Z) ALERT myca"]
    assert_replays(device)
    r = clock_set(device, starts)
    assert due_types(r) == [["NextCertificateActivated"]]
    assert jobs(r)[0].output == (
        "%PKI-6-CERT_RENEW_ACTIVE: Trustpoint myca: the held router certificate (General "
        f"Purpose, serial {ios_serial(new)}) is now in use\n")
    st = status(device)
    assert [c.der for c in st.certificates] == [received.certificate]
    assert st.next_certificates == () and st.renewal is not None
    assert st.renewal.phase is RenewalPhase.IDLE
    assert starts < end
    assert "Next router certificate" not in device.execute("show crypto ca certificates").output
    assert_replays(device)


def test_crypto_ca_enroll_takes_over_a_renewal_in_flight(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    ca, _at = pending_renewal(device, tmp_path, scep_network)
    r = device.execute("crypto ca enroll myca", answers=["yes", CHALLENGE, CHALLENGE])
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentPending"], r.output
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLING and st.renewal is not None
    assert (st.renewal.phase, st.renewal.last_result) == (RenewalPhase.IDLE,
                                                           "superseded by crypto ca enroll")
    # One poll, the enrollment's; no renewal timer while the operator's enrollment runs.
    lines = timers(device).splitlines()
    assert [line.split(") ")[-1] for line in lines[2:]] == ["POLL myca", "ALERT myca",
                                                            "SHADOW myca"]  # CA rollover
    # (the installed certificate's first expiry notice: 60 days before its end)
    assert "(2026-09-28T00:00:00Z) ALERT myca" in lines[-2]
    (held,) = [q for q in ca.requests() if q.status.value == "pending"]
    ca.approve(held.transaction_id)
    r = clock_set(device, status(device).enrollment.next_poll_at)  # type: ignore[union-attr]
    assert due_types(r) == [["CertificateReceived"]]
    assert status(device).lifecycle is Lifecycle.ENROLLED
    assert "RENEW myca" in timers(device)  # the new certificate's renewal point
    assert_replays(device)


def test_zeroizing_the_key_drops_a_held_certificate(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    held_renewal(device, tmp_path, scep_network)
    r = device.execute("crypto key zeroize rsa mykey", answers=["yes"])
    assert "KeyPairZeroized" in event_types(r), r.output
    st = status(device)
    assert st.certificates == () and st.next_certificates == ()
    assert "RENEW" not in timers(device)
    assert_replays(device)


def test_a_renewal_days_away_reads_in_days() -> None:
    from projections.trustpoints import _duration

    assert _duration((291 * 86_400 + 23 * 3600 + 58 * 60 + 43) * 1_000_000) == "291d 23:58:43"
    assert _duration(1_800_000_000) == "00:30:00"


def test_no_auto_enroll_cancels_a_retrying_renewal(device: Engine, tmp_path: Path,
                                                   scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network)
    enrolled(device, ca, server, "auto-enroll 80")  # retry every 60 minutes
    at = renewal_point(device)
    device.ports.scep = DownTransport()
    assert due_types(clock_set(device, at)) == [["RenewalRequested", "RenewalFailed"]]
    assert "Renewal             :retrying, 1 attempt since " in device.execute(
        "show crypto ca trustpoint myca").output

    configure(device, "crypto ca trustpoint myca", "no auto-enroll")
    st = status(device)
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.IDLE
    assert st.renewal.next_attempt_at == 0
    shown = device.execute("show crypto ca trustpoint myca").output
    assert "Renewal             :idle, 1 attempt since " in shown
    assert "Connection refused; cancelled: auto-enroll is off)\n" in shown
    assert "Next renewal" not in shown and "retrying" not in shown
    assert_replays(device)
    assert jobs(clock_set(device, at + 2 * HOUR)) == []  # nothing retries it

    # auto-enroll again: a fresh renewal, due at once (the renewal point has passed)
    device.ports.scep = scep_network
    configure(device, "crypto ca trustpoint myca", "auto-enroll 80")
    r = clock_set(device, at + 2 * HOUR + MINUTE)
    assert due_types(r) == [["RenewalRequested", "RenewalCertificateReceived"]]
    st = status(device)
    assert st.renewal is not None and (st.renewal.phase, st.renewal.attempts) == (
        RenewalPhase.IDLE, 1)
    assert_replays(device)


def test_a_shadow_enrollment_retry_is_not_cancelled_by_no_auto_enroll() -> None:
    from dataclasses import replace

    from engine.renewal.folds import cancelled
    from engine.state import DeviceState
    from engine.trustpoints import RenewalState, TrustpointConfig, TrustpointStatus
    from events.device import ConfigurationCommitted

    retrying = RenewalState(RenewalPhase.RETRYING, "shadow", 1, 1, 1, "peer: down",
                            next_attempt_at=5)
    st = TrustpointStatus("myca", Lifecycle.ENROLLED, renewal=retrying)
    state = DeviceState(trustpoints={"myca": st},
                        trustpoint_configs={"myca": TrustpointConfig("myca")})
    ev = ConfigurationCommitted(1, "", "", "", ())
    assert cancelled(state, ev, 9) is state  # the rollover retries its own, auto-enroll or not
    renew = replace(st, renewal=replace(retrying, purpose="renew"))
    after = cancelled(replace(state, trustpoints={"myca": renew}), ev, 9)
    r = after.trustpoints["myca"].renewal
    assert r is not None and (r.phase, r.next_attempt_at) == (RenewalPhase.IDLE, 0)
