"""`show logging` (issue 14 item 7): every `%PKI-...` message the polls printed, with its time,
derived from the events, so it survives a restart and a replay shows the messages up to then.
Also the synchronous success line in the same `%PKI-6-CERTRET:` words (item 6) and counts that
read right for one (item 8)."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from engine import Engine
from engine.ca.decide import Approval
from engine.ca.server import serve
from engine.cli import main
from engine.ports import FakeClock
from engine.scep_client import HttpxTransport
from events.registry import event_from
from events.trustpoint import EnrollmentPending
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    declare,
    enroll,
    event_types,
    identity_and_key,
)

CERTRET = ("%PKI-6-CERTRET: Certificate received from Certificate Authority for trustpoint "
           "myca")
HEAD = ("Syslog logging: enabled (0 messages dropped, 0 flushes, 0 overruns)\n"
        "    Buffer logging: level debugging, {n} logged\n\n"
        "Log Buffer (1000 messages):\n\n")


@pytest.mark.integration
def test_show_logging_is_a_projection_of_the_log(
        device: Engine, ca_factory: CAFactory, clock: FakeClock, device_dir: Path,
        open_engine: Callable[..., Engine]) -> None:
    ca, server = ca_factory(Approval.MANUAL, http=True)  # over HTTP: down, then up again
    identity_and_key(device)
    declare(device, url=server.url, period=1, count=5)
    assert authenticate(device).ok
    assert device.execute("show logging").output == HEAD.format(n="0 messages")
    r = enroll(device, password=ca.mint_challenge())
    assert r.output.endswith("% Certificate request pending at the CA: polling every 1 minute, "
                             "up to 5 times.\n")
    (req,) = ca.requests()
    server.stop()
    device.ports.scep = HttpxTransport(timeout=5)  # the stopped CA's kept-alive connection
    clock.advance(60)  # 00:01:00: the CA is down
    (failed,) = device.run_due()
    assert failed.output.startswith("%PKI-4-POLL_FAILED: trustpoint myca: ")
    ca.approve(req.transaction_id)
    again = serve(ca, port=server.port, approval=Approval.MANUAL, admin=False)
    try:
        clock.advance(60)  # 00:02:00: the certificate comes
        (done,) = device.run_due()
    finally:
        again.stop()
    assert event_types(done) == ["CertificateReceived"] and done.output == CERTRET + "\n"

    expected = (HEAD.format(n="2 messages")
                + f"RP/0/RP0/CPU0:Nov 27 00:01:00.000 UTC: pki[0]: {failed.output}"
                + f"RP/0/RP0/CPU0:Nov 27 00:02:00.000 UTC: pki[0]: {CERTRET}\n")
    assert device.execute("show logging").output == expected
    assert device.execute("show logging | include CERTRET").output == (
        f"RP/0/RP0/CPU0:Nov 27 00:02:00.000 UTC: pki[0]: {CERTRET}\n")
    device.close()
    for snapshots in (True, False):  # a restart, with and without the snapshot
        reopened = open_engine(use_snapshots=snapshots)
        assert reopened.execute("show logging").output == expected
        reopened.close()

    out = io.StringIO()  # a replay to 00:01:30 shows the first message only
    with redirect_stdout(out):
        assert main(["replay", str(device_dir), "--until", "2025-11-27T00:01:30Z",
                     "--show", "show logging"]) == 0
    assert out.getvalue().endswith(
        HEAD.format(n="1 message") + f"RP/0/RP0/CPU0:Nov 27 00:01:00.000 UTC: pki[0]: "
        f"{failed.output}")


def test_a_v1_pending_event_still_replays() -> None:
    old = {"trustpoint": "myca", "transaction_id": "T", "polls": 2, "next_poll_at": 5}
    assert event_from("EnrollmentPending", 1, old) == EnrollmentPending("myca", "T", 2, 5, "")


@pytest.mark.integration
def test_counts_of_one_read_right(device: Engine, ca_factory: CAFactory,
                                  clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL, http=True)  # over HTTP: down, then up again
    identity_and_key(device)
    declare(device, url=server.url, period=1, count=1)
    assert authenticate(device).ok
    r = enroll(device, password=ca.mint_challenge())
    assert r.output.endswith("% Certificate request pending at the CA: polling every 1 minute, "
                             "up to 1 time.\n")
    clock.advance(60)
    (timed_out,) = device.run_due()
    assert timed_out.output == (
        "%PKI-3-ENROLL_TIMEOUT: Certificate enrollment for trustpoint myca timed out (no "
        "certificate after 1 poll). Ask the CA administrator to approve the request, then "
        "enter 'crypto ca enroll myca' again.\n")
    assert device.execute("show logging | count ENROLL_TIMEOUT").output == \
        "Number of lines which match regexp = 1\n"
