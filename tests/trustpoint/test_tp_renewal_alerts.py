"""Expiry notifications (issue 17) for router and CA certificates: 60 days before the end,
then weekly, then daily in the last week, as `%PKI-4-CERT_EXPIRY_WARNING` while more than a
week remains and `%PKI-1-CERT_EXPIRY_ALERT` after, each naming the trustpoint, the
certificate type, serial, issuer and days left; the typed configuration and grammar of
`auto-enroll` and `renewal-message-type`."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from hypothesis import given, strategies

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.certids import ios_name, ios_serial
from engine.ports import FakeClock
from engine.renewal.schedule import ALERT_DAYS, alert_after, days_left
from engine.trustpoints import trustpoint_config
from events.renewal import CertificateExpiryWarned
from tests.trustpoint.renewal_support import (
    DAY,
    HOUR,
    all_timers,
    assert_replays,
    clock_set,
    due_types,
    enrolled,
    following_ca,
    jobs,
)
from tests.trustpoint.tp_support import configure, status

T0 = 1_764_201_600_000_000  # 2025-11-27 00:00:00 UTC
WEEKLY = [60, 53, 46, 39, 32, 25, 18, 11]
DAILY = [7, 6, 5, 4, 3, 2, 1, 0]  # 0: at the end itself ("expired at")


def test_the_schedule_of_notices() -> None:
    end = 1000 * DAY
    points = []
    since = 0
    while (at := alert_after(end, since)) is not None:
        points.append((end - at) // DAY)
        since = at
    assert points == WEEKLY + DAILY == list(ALERT_DAYS)
    # A certificate with 20 days left when first watched: at once (the 60-day point has
    # passed), then on the schedule after that: 18, 11, 7, ... days.
    assert alert_after(end, 0) == end - 60 * DAY
    assert alert_after(end, end - 20 * DAY) == end - 18 * DAY
    assert alert_after(end, end - DAY) == end  # the end itself: said as it happens
    assert alert_after(end, end) is None  # none after it


@given(strategies.integers(min_value=1, max_value=70 * DAY))
def test_each_notice_says_fewer_days_than_the_one_before(left: int) -> None:
    """From a first notice at any moment (a certificate installed with `left` µs to go),
    the days-left each later notice says only go down: a notice given between two points
    (e.g. 4 days and 24 s left, found by hand after a renewal) says "5 days", and the next
    is the 4-day point's, not a second "5 days"."""
    end = 1000 * DAY
    said, since = [days_left(end, end - left)], end - left
    while (at := alert_after(end, since)) is not None:
        said.append(days_left(end, at))
        since = at
    assert said == sorted(set(said), reverse=True), said
    assert alert_after(end, end - 4 * DAY - 24_000_000) == end - 4 * DAY


@given(strategies.integers(min_value=1, max_value=3_600_000_000))
def test_a_notice_given_late_says_its_points_days_and_skips_none(late: int) -> None:
    """A running shell gives a notice at its next clock tick (a second or so after the
    point): each still says its point's days, and no later point is skipped (rounding down
    said "6 days" at the 7-day point, so the 6-day point looked said: 6, 4, 2 were lost)."""
    end = 1000 * DAY
    said, since = [], 0
    while (at := alert_after(end, since)) is not None:
        since = at + late
        said.append(days_left(end, since))
    assert said == list(ALERT_DAYS)


def test_router_and_ca_certificates_are_notified(device: Engine, tmp_path: Path,
                                                 scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=120,
                                 certificate_days=100)
    enrolled(device, ca, server)  # no auto-enroll
    st = status(device)
    router = x509.load_der_x509_certificate(st.certificates[0].der)
    assert st.ca_certificate is not None
    ca_cert = x509.load_der_x509_certificate(st.ca_certificate)
    router_end = int(router.not_valid_after_utc.timestamp()) * 1_000_000
    ca_end = int(ca_cert.not_valid_after_utc.timestamp()) * 1_000_000
    assert (router_end, ca_end) == (T0 + 100 * DAY, T0 + 120 * DAY)
    assert all_timers(device) == ("PKI Timers\n"  # the CRL fetch after the enrollment, now
                                  "|        0:00.000\n"
                                  "|        0:00.000  (2025-11-27T00:00:00Z) CRL myca\n"
                                  "| 40d 0:00:00.000  (2026-01-06T00:00:00Z) ALERT myca\n"
                                  # CA rollover: 90% of the CA certificate's lifetime
                                  "|107d 23:59:30.000  (2026-03-14T23:59:30Z) SHADOW myca\n")

    r = clock_set(device, T0 + 119 * DAY)
    recorded = [rec.event for d in jobs(r) for rec in d.events]
    warned = [ev for ev in recorded if isinstance(ev, CertificateExpiryWarned)]
    # (this CA made no next certificate: the rollover's message when found, daily silent
    # re-checks, and its message once more in the CA certificate's last week)
    rollover = [type(ev).__name__ for ev in recorded if ev not in warned]
    assert rollover == ["ShadowCANotOffered", *["ShadowCARechecked"] * 5,
                        "ShadowCANotOffered", *["ShadowCARechecked"] * 5]
    mine = [ev for ev in warned if ev.certificate_type == "general"]
    theirs = [ev for ev in warned if ev.certificate_type == "CA"]
    assert [ev.days_left for ev in mine] == WEEKLY + DAILY
    assert [ev.days_left for ev in theirs] == WEEKLY + DAILY[:-1]  # its end is a day on
    assert {(ev.serial, ev.issuer) for ev in mine} == {(ios_serial(router),
                                                        ios_name(router.issuer))}
    assert {(ev.serial, ev.issuer) for ev in theirs} == {(ios_serial(ca_cert),
                                                          ios_name(ca_cert.issuer))}
    outputs = [d.output for d in jobs(r)]
    assert outputs[0] == (
        "%PKI-4-CERT_EXPIRY_WARNING: Trustpoint myca: Router certificate (General Purpose) "
        f"serial {ios_serial(router)} issued by {ios_name(router.issuer)} expires in 60 days "
        "(2026-03-07T00:00:00Z); auto-enroll off\n")
    seven = next(o for o in outputs if "(General Purpose)" in o and " 7 days" in o)
    assert seven.startswith("%PKI-1-CERT_EXPIRY_ALERT: Trustpoint myca: Router certificate")
    one = next(o for o in outputs if "CA certificate" in o and "in 1 day " in o)
    assert one == (
        f"%PKI-1-CERT_EXPIRY_ALERT: Trustpoint myca: CA certificate serial "
        f"{ios_serial(ca_cert)} issued by {ios_name(ca_cert.issuer)} expires in 1 day "
        "(2026-03-27T00:00:00Z); auto-enroll off\n")
    ended = next(o for o in outputs if "(General Purpose)" in o and "expired" in o)
    assert ended == (  # the router certificate's end, said as it happens (renewal stops)
        "%PKI-1-CERT_EXPIRY_ALERT: Trustpoint myca: Router certificate (General Purpose) "
        f"serial {ios_serial(router)} issued by {ios_name(router.issuer)} expired at "
        "2026-03-07T00:00:00Z; auto-enroll off\n")
    logged = device.execute("show logging").output
    assert logged.count("%PKI-4-CERT_EXPIRY_WARNING") == 16
    assert logged.count("%PKI-1-CERT_EXPIRY_ALERT") == 15
    assert_replays(device)
    # Each notice ran once: going on does not repeat them (the last daily re-check runs,
    # and the CA certificate's end is said as it happens).
    assert due_types(clock_set(device, T0 + 121 * DAY)) == [["ShadowCARechecked"],
                                                            ["CertificateExpiryWarned"]]


def test_configuration(device: Engine) -> None:
    configure(device, "crypto ca trustpoint myca", "auto-enroll 70",
              "renewal-message-type renewalreq")
    cfg = trustpoint_config(device.state, "myca")
    assert cfg is not None and (cfg.auto_enroll, cfg.renewal_message_type) == (70,
                                                                              "renewalreq")
    shown = device.execute("show running-config").output
    assert "crypto ca trustpoint myca\n auto-enroll 70\n renewal-message-type renewalreq\n" \
        in shown
    for bad in ("auto-enroll 0", "auto-enroll 100", "auto-enroll x",
                "renewal-message-type getcert"):
        assert device.execute("configure").ok
        assert device.execute("crypto ca trustpoint myca").ok
        r = device.execute(bad)
        assert not r.ok and "% Invalid input detected at '^' marker." in r.output, bad
        assert device.execute("abort").ok
    configure(device, "crypto ca trustpoint myca", "no auto-enroll",
              "no renewal-message-type")
    cfg = trustpoint_config(device.state, "myca")
    assert cfg is not None and (cfg.auto_enroll, cfg.renewal_message_type) == (None,
                                                                              "pkcsreq")
    device.execute("configure")
    device.execute("crypto ca trustpoint myca")
    assert device.execute("auto-enroll ?").output == (
        "  <1-99>  Percentage of the certificate's lifetime after which it is renewed\n")
    assert device.execute("renewal-message-type ?").output == (
        "  pkcsreq     PKCSReq signed by the current certificate (default)\n"
        "  renewalreq  RenewalReq (RFC 8894)\n")
    device.execute("abort")


def test_when_a_renewal_attempt_is_due() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from engine.machines.renewal import RenewalPhase
    from engine.machines.trustpoint import Lifecycle
    from engine.renewal.schedule import next_attempt
    from engine.trustpoints import (
        RenewalState,
        RouterCertificate,
        TrustpointConfig,
        TrustpointStatus,
    )
    from tests.trustpoint.tp_support import der, issue, rsa_key, self_signed_ca

    ca_key = rsa_key(0)
    ca = self_signed_ca(ca_key, "Unit CA")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cert = issue(ca_key, ca, rsa_key(1).public_key(), ca.subject, start,
                 start + timedelta(days=100))
    begin = int(start.timestamp()) * 1_000_000
    rc = RouterCertificate("k1", "general", der(cert), begin)
    cfg = TrustpointConfig("myca", enrollment_url="http://ca.example", auto_enroll=75)
    st = TrustpointStatus("myca", Lifecycle.ENROLLED, der(ca), certificates=(rc,))
    assert next_attempt(cfg, st) == begin + 75 * DAY
    assert next_attempt(replace(cfg, auto_enroll=None), st) is None
    terminal = replace(cfg, enrollment_url=None, terminal=True)
    assert next_attempt(terminal, st) is None  # a renewal is a SCEP exchange
    assert next_attempt(cfg, replace(st, lifecycle=Lifecycle.ENROLLING)) is None
    retrying = RenewalState(RenewalPhase.RETRYING, "renew", begin, 3, begin, "peer: down",
                            next_attempt_at=begin + 80 * DAY)
    assert next_attempt(cfg, replace(st, renewal=retrying)) == begin + 80 * DAY
    shadow = replace(retrying, purpose="shadow")  # CA rollover retries its own enrollment
    assert next_attempt(cfg, replace(st, renewal=shadow)) is None
    expired = replace(retrying, next_attempt_at=begin + 100 * DAY)  # signs with an expired one
    assert next_attempt(cfg, replace(st, renewal=expired)) is None
    pending = replace(retrying, phase=RenewalPhase.PENDING)
    assert next_attempt(cfg, replace(st, renewal=pending)) is None
    assert next_attempt(cfg, replace(st, next_certificates=(rc,))) is None  # one is held


def test_the_timers_layout_groups_by_trustpoint() -> None:
    from projections.timers import render_timers

    now = T0
    pending = [("alert b", now + 40 * DAY), ("renew a", now + 2 * DAY + 3_600_000_000),
               ("trustpool update", now + 479_104_000), ("poll a", now + 61_500_000),
               ("crl b", now + 5 * 3_600_000_000 + 1_000)]
    assert render_timers(pending, now) == (
        "PKI Timers\n"
        "|        1:01.500\n"
        "|        1:01.500  (2025-11-27T00:01:01Z) POLL a\n"
        "|  2d 1:00:00.000  (2025-11-29T01:00:00Z) RENEW a\n"
        "|        7:59.104\n"
        "|        7:59.104  (2025-11-27T00:07:59Z) TRUSTPOOL update\n"
        "|     5:00:00.001\n"
        "|     5:00:00.001  (2025-11-27T05:00:00Z) CRL b\n"
        "| 40d 0:00:00.000  (2026-01-06T00:00:00Z) ALERT b\n")
    assert render_timers([], now) == "PKI Timers\n"
    # A timer already due (its job runs at the next tick) shows no time left.
    assert render_timers([("poll a", now - 5)], now).splitlines()[1] == "|        0:00.000"


def test_a_revoked_router_certificate_gets_no_expiry_notices() -> None:
    """Its one notice was %PKI-3-CERTIFICATE_REVOKED ("enroll again"); nothing renews from
    `revoked`, so the other certificates' notices say auto-enroll off."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from engine.machines.trustpoint import Lifecycle
    from engine.renewal.jobs import alert, due_alerts
    from engine.state import DeviceState
    from engine.trustpoints import RouterCertificate, TrustpointConfig, TrustpointStatus
    from tests.trustpoint.tp_support import der, issue, rsa_key, self_signed_ca

    ca_key = rsa_key(0)
    ca = self_signed_ca(ca_key, "Unit CA")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    begin = int(start.timestamp()) * 1_000_000
    general, signature = (
        RouterCertificate(f"k{n}", usage, der(issue(ca_key, ca, rsa_key(n).public_key(),
                                                     ca.subject, start,
                                                     start + timedelta(days=100))), begin)
        for n, usage in ((1, "general"), (2, "signature")))
    cfg = TrustpointConfig("myca", enrollment_url="http://ca.example", auto_enroll=80)
    st = TrustpointStatus("myca", Lifecycle.REVOKED, None,
                          certificates=(replace(general, revoked_at=begin + DAY), signature))
    state = DeviceState(trustpoints={"myca": st}, trustpoint_configs={"myca": cfg})
    now = begin + 95 * DAY
    assert len(due_alerts(state, now)) == 1
    said = alert(state, "myca", now)
    assert [(ev.certificate_type, ev.auto_enroll) for ev in said.events] == [
        ("signature", False)]
    assert "(Signature)" in str(said.output) and str(said.output).endswith("auto-enroll off")
    revoked_only = replace(st, certificates=st.certificates[:1])
    assert due_alerts(replace(state, trustpoints={"myca": revoked_only}), now) == []


def test_a_notice_waits_for_a_rollover_fetch_but_not_for_a_daily_recheck() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from engine.machines.trustpoint import Lifecycle
    from engine.renewal.schedule import alert_due
    from engine.trustpoints import (
        RolloverState,
        RouterCertificate,
        TrustpointConfig,
        TrustpointStatus,
    )
    from tests.trustpoint.tp_support import der, issue, rsa_key, self_signed_ca

    ca_key = rsa_key(0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    begin = int(start.timestamp()) * 1_000_000
    ca = self_signed_ca(ca_key, "Unit CA", begin - 100 * DAY, days=110)  # shadow point passed
    rc = RouterCertificate("k1", "general", der(issue(
        ca_key, ca, rsa_key(1).public_key(), ca.subject, start, start + timedelta(days=5))),
        begin)
    cfg = TrustpointConfig("myca", enrollment_url="http://ca.example", auto_enroll=80)
    st = TrustpointStatus("myca", Lifecycle.ENROLLED, der(ca), certificates=(rc,))
    # the first GetNextCACert is due (it may bring the shadow that covers the certificate)
    assert alert_due(cfg, st, "general", rc.der) is None
    # a CA that offered none, re-checked daily: the notice does not wait for that
    rechecking = replace(st, rollover=RolloverState(not_offered_at=begin - DAY,
                                                    next_attempt_at=begin))
    assert alert_due(cfg, rechecking, "general", rc.der) == begin + 5 * DAY - 60 * DAY
    assert alert_due(replace(cfg, auto_enroll=None), st, "general", rc.der) is not None


def test_a_notice_that_comes_after_the_end_says_the_certificate_expired(
        device: Engine, clock: FakeClock, tmp_path: Path,
        scep_network: InProcessTransport) -> None:
    """A device that was down past its router certificate's end runs the notice it missed
    when it comes back: the notice says the certificate expired (it said "expires in 0
    days" for one that had ended three weeks before, found by hand after a `clock set` walk
    stopped at its job limit)."""
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=120,
                                 certificate_days=10)
    enrolled(device, ca, server)
    clock_set(device, T0 + 9 * DAY - HOUR)  # the 1-day notice is due at T0 + 9 days
    clock.advance(30 * 86_400)  # down for a month: the engine clock moves with the system's
    results = device.run_due()
    notices = [line for r in results for line in r.output.splitlines() if "Router" in line]
    assert notices == [
        "%PKI-1-CERT_EXPIRY_ALERT: Trustpoint myca: Router certificate (General Purpose) "
        f"serial {ios_serial(_router(device))} issued by {ios_name(_router(device).issuer)} "
        "expired at 2025-12-07T00:00:00Z; auto-enroll off"], notices
    assert "expired at 2025-12-07T00:00:00Z" in device.execute("show logging").output
    assert_replays(device)


def _router(device: Engine) -> x509.Certificate:
    return x509.load_der_x509_certificate(status(device).certificates[0].der)
