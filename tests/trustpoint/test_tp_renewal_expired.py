"""A renewal that failed until the router certificate expired: renewal never tries past the
certificate's end, so nothing more is scheduled, and `show crypto ca trustpoint` says so and
what to type (it showed `Renewal :retrying, N attempts ...` and nothing after it, as if an
attempt were still to come; `show crypto ca timers` had no RENEW line)."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.renewal.schedule import expiry, next_attempt
from projections.timefmt import ios_time
from tests.trustpoint.renewal_support import DAY, clock_set, enrolled, following_ca, timers
from tests.trustpoint.test_tp_renewal_cases import DownTransport
from tests.trustpoint.tp_support import status


def test_show_trustpoint_says_renewal_ended_with_the_certificate(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, certificate_days=10)
    enrolled(device, ca, server, "auto-enroll 80", period=1)
    device.ports.scep = DownTransport()
    ends = expiry(status(device))
    before = device.execute("show crypto ca trustpoint myca").output
    assert "Next renewal        :in " in before and "expired" not in before
    clock_set(device, ends - DAY)  # failing, retrying
    assert "Next renewal        :in " in device.execute("show crypto ca trustpoint myca").output
    clock_set(device, ends + DAY)
    assert next_attempt(device.state.trustpoint_configs["myca"], status(device)) is None
    assert "RENEW myca" not in timers(device)
    shown = device.execute("show crypto ca trustpoint myca").output.splitlines()
    assert shown[-1] == (f"Next renewal        :none: the router certificate expired at "
                         f"{ios_time(ends)}; enter 'crypto ca enroll myca'")
    assert shown[-3].startswith("Renewal             :retrying, ")


def test_the_last_failure_before_the_end_promises_no_attempt_past_it(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    """The attempt that fails one retry period before the end has no attempt after it: its
    %PKI-3-CERT_RENEW_FAIL said `next attempt at T`, T past the end, where none runs; it
    says none is left, and `show` says so until the end (review9)."""
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, certificate_days=10)
    enrolled(device, ca, server, "auto-enroll 80", period=1)
    device.ports.scep = DownTransport()
    ends = expiry(status(device))
    clock_set(device, ends - 30_000_000)  # half a minute before the end
    logged = device.execute("show logging").output
    last = [line for line in logged.splitlines() if "CERT_RENEW_FAIL" in line][-1]
    assert last.endswith("The current certificate stays in use; no attempt is left before "
                         "it expires (enter 'crypto ca enroll myca' to enroll again)."), last
    assert "next attempt at" not in last
    shown = device.execute("show crypto ca trustpoint myca").output.splitlines()
    assert shown[-1] == (f"Next renewal        :none: no attempt is left before the router "
                         f"certificate expires at {ios_time(ends)}; enter 'crypto ca enroll "
                         f"myca'")
