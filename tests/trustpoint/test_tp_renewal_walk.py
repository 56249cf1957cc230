"""Certificates that never lapse (issue 17): with `auto-enroll 80`, moving the engine clock
with `clock set` walks a device through three successive renewals against the built-in CA
with no operator action. Each renewal is a PKCSReq with the same key pair, signed by the
current certificate and carrying no challenge password; the trustpoint stays enrolled
throughout; the events, the `%PKI` messages and `show crypto ca timers` (with the CRL refresh
that runs beside the renewals) are asserted at each step, and the log replays to the live
state at every step."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.certids import ios_serial
from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from projections.timers import left
from tests.trustpoint.renewal_support import (
    all_timers,
    assert_replays,
    clock_set,
    due_types,
    enrolled,
    following_ca,
    is_crl_refresh,
    jobs,
    serial_of,
)
from tests.trustpoint.tp_support import event_types, status

T0 = FakeClock().us  # 2025-11-27 00:00:00 UTC
MINUTE = 60_000_000
DAY = 1440 * MINUTE

# The CA makes a certificate valid from 5 minutes before it issues it (clock skew) to 365
# days after: 80% of that lifetime is 292 days and 4 minutes after its start, so each renewal
# comes 291 days 23:59 after the one before; the 60-day expiry notice 305 days after it.
STEPS = [
    ("2026-09-14T23:59:00Z", "2026-09-28T00:00:00Z"),
    ("2027-07-03T23:58:00Z", "2027-07-16T23:59:00Z"),
    ("2028-04-20T23:57:00Z", "2028-05-03T23:58:00Z"),
    ("2029-02-06T23:56:00Z", "2029-02-19T23:57:00Z"),
]


SHADOW = "2034-11-24T23:59:30Z"  # CA rollover: 90% of the 10-year CA certificate's lifetime


def expected_timers(renew: str, alert: str, now: int = T0, crl: int | None = None) -> str:
    """The timers view at `now`: `renew`'s interval before `renew`, its CRL refresh due at `crl`
    (the cached CRL's nextUpdate, within a week: the walk refreshed it weekly) or, None, now
    (after the enrollment)."""
    due = "|        0:00.000" if crl is None else f"|{left(crl - now):>16}"
    refresh = (due, due + "  ({}) CRL myca")
    return ("PKI Timers\n"
            f"{refresh[0]}\n"
            f"{refresh[1].format(_iso(T0 if crl is None else crl))}\n"
            f"|291d 23:59:00.000  ({renew}) RENEW myca\n"
            f"|305d 0:00:00.000  ({alert}) ALERT myca\n"
            f"|{left(us_of(SHADOW) - now):>16}  ({SHADOW}) SHADOW myca\n")


def us_of(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()) * 1_000_000


def test_three_renewals_with_no_operator_action(device: Engine, tmp_path: Path,
                                               scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network)
    enrolled(device, ca, server, "auto-enroll 80")
    assert all_timers(device) == expected_timers(*STEPS[0])
    assert_replays(device)
    (first,) = status(device).certificates
    key_id = first.key_id

    serials = [serial_of(device)]
    for n, (renew, _alert) in enumerate(STEPS[:3], start=1):
        # Just before the renewal point nothing runs; at it, one job renews.
        before = clock_set(device, us_of(renew) - 1_000_000)
        assert jobs(before) == []
        r = clock_set(device, us_of(renew))
        # The CRL refreshes ran beside the renewals, far under the walk's WALK_LIMIT: each got
        # a fresh CRL (the CA re-issues one past half its lifetime on GetCRL or download),
        # so none is retried. The one after the renewal finds the CRL of 1 s before.
        refreshes = [event_types(j) for j in before.due]  # at each CRL's nextUpdate, weekly
        assert len(refreshes) >= 40 and all(t == ["CrlFetched"] for t in refreshes)
        assert [event_types(j) for j in r.due if is_crl_refresh(j)] == [["CrlFetched"]]
        assert "WALK_LIMIT" not in before.output + r.output
        assert due_types(r) == [["RenewalRequested", "RenewalCertificateReceived"]]
        (job,) = jobs(r)
        assert {rec.at for rec in job.events} == {us_of(renew)}
        assert {rec.actor for rec in job.events} == {"scheduler"}
        requested, received = (rec.event for rec in job.events)
        assert requested.message_type == "pkcsreq" and requested.key_ids == (key_id,)
        assert requested.purpose == received.purpose == "renew"
        new = x509.load_der_x509_certificate(received.certificate)
        assert received.not_before == int(new.not_valid_before_utc.timestamp()) * 1_000_000
        serials.append(new.serial_number)
        serial = ios_serial(new)
        assert job.output == (
            "%PKI-6-CERTRENEWAUTO: Renewing the router certificate of trustpoint myca "
            "(PKCSReq signed by the current certificate)\n"
            "%PKI-6-CERT_RENEWED: Trustpoint myca: renewed router certificate (General "
            f"Purpose, serial {serial}) installed, valid until {_end_of(new)}\n")
        assert _end_of(new) == _iso(us_of(renew) + 365 * DAY)
        st = status(device)
        assert st.lifecycle is Lifecycle.ENROLLED and st.enrollment is None
        ((rc),) = st.certificates
        assert rc.key_id == key_id and rc.der == received.certificate  # same key pair
        assert st.renewal is not None and st.renewal.phase is RenewalPhase.IDLE
        assert (st.renewal.attempts, st.renewal.last_result) == (1, "issued")
        (cached,) = device.state.crls.crls
        crl_at = cached.next_update
        assert crl_at is not None and us_of(renew) < crl_at <= us_of(renew) + 7 * DAY
        assert all_timers(device) == expected_timers(*STEPS[n], now=us_of(renew), crl=crl_at)
        assert_replays(device)

    # The CA renewed each certificate on the strength of the one before, once each.
    assert serial_of(device) == serials[-1] and len(set(serials)) == 4
    renewed = {c.serial: c.renewed_by for c in ca.state.certificates.values()}
    assert len(renewed) == 4 and sum(by is None for by in renewed.values()) == 1
    logged = device.execute("show logging").output
    assert logged.count("%PKI-6-CERTRENEWAUTO") == 3
    assert logged.count("%PKI-6-CERT_RENEWED") == 3
    assert "EXPIRY" not in logged and "RENEW_FAIL" not in logged  # renewed before any notice


def _end_of(cert: x509.Certificate) -> str:
    return f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"


def _iso(us: int) -> str:
    from datetime import UTC, datetime

    return f"{datetime.fromtimestamp(us // 1_000_000, UTC):%Y-%m-%dT%H:%M:%SZ}"
