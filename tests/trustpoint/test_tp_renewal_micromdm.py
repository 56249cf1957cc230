"""Live: automatic renewal against micromdm's real `scepserver` (issue 17), both message
types. micromdm checks a challenge even in a RenewalReq, and refuses a second certificate for
a subject unless the current one expires within `-allowrenew` days: a device renews on its
own against a scepserver started without `-challenge` and with `-allowrenew 0`; against one
that enforces a challenge the renewal is refused (badRequest), logged, and retried."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from engine import Engine
from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock, SystemClock
from tests.support.peer_support import free_port, peers_dir
from tests.trustpoint.renewal_support import serial_of
from tests.trustpoint.tp_support import (
    authenticate,
    declare,
    enroll,
    event_types,
    identity_and_key,
    open_device,
    status,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY_S = 86_400


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "?operation=GetCACaps", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _scepserver(work: Path, challenge: str) -> Iterator[str]:
    script = peers_dir("scepserver", "socat") / "scep-server.sh"
    port = free_port()
    url = f"http://127.0.0.1:{port}/scep"
    proc = subprocess.Popen([str(script), "run", str(work), str(port), challenge, "--",
                             "-allowrenew", "0"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = work / "scepserver.log"
                pytest.fail("micromdm scepserver did not start: "
                            + (log.read_text(errors="replace")[-2000:] if log.exists() else ""))
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def open_mdm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scepserver that checks no challenge (`-allowrenew 0`)."""
    yield from _scepserver(tmp_path_factory.mktemp("mdm"), "")


@pytest.fixture(scope="module")
def strict_mdm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scepserver that enforces the challenge `secret123`."""
    yield from _scepserver(tmp_path_factory.mktemp("mdm"), "secret123")


@pytest.fixture
def live_device(tmp_path: Path) -> Iterator[tuple[Engine, FakeClock]]:
    # micromdm stamps certificates with the machine's clock: the device starts on it.
    clock = FakeClock(SystemClock().now_us())
    e = open_device(tmp_path / "device", clock)
    yield e, clock
    e.close()


def _enrolled(device: Engine, url: str, message_type: str, password: str) -> None:
    identity_and_key(device)
    declare(device, url=url, period=60, count=3,
            extra=["auto-enroll 1", f"renewal-message-type {message_type}"])
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    r = enroll(device, password=password)
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output


@pytest.mark.parametrize("message_type", ["pkcsreq", "renewalreq"])
def test_renews_against_micromdm(open_mdm: str, live_device: tuple[Engine, FakeClock],
                                 message_type: str) -> None:
    device, clock = live_device
    _enrolled(device, open_mdm, message_type, "anything")
    (before,) = status(device).certificates
    clock.advance(4 * DAY_S)  # past 1% of the 365-day lifetime
    (job,) = device.run_due()
    assert event_types(job) == ["RenewalRequested", "RenewalCertificateReceived"], job.output
    assert job.events[0].event.message_type == message_type
    st = status(device)
    (after,) = st.certificates
    assert after.key_id == before.key_id and after.der != before.der
    new, old = (x509.load_der_x509_certificate(c.der) for c in (after, before))
    assert new.subject == old.subject and new.public_key() == old.public_key()
    assert serial_of(device) == new.serial_number
    assert st.lifecycle is Lifecycle.ENROLLED
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.IDLE


def test_a_challenge_enforcing_micromdm_refuses_the_renewal(
        strict_mdm: str, live_device: tuple[Engine, FakeClock]) -> None:
    device, clock = live_device
    _enrolled(device, strict_mdm, "renewalreq", "secret123")
    (before,) = status(device).certificates
    clock.advance(4 * DAY_S)
    (job,) = device.run_due()
    assert event_types(job) == ["RenewalRequested", "RenewalFailed"]
    failed = job.events[1].event
    assert (failed.reason, failed.fail_info) == ("failure", "badRequest")
    assert job.output.splitlines()[-1].startswith(
        "%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint myca failed: badRequest: ")
    st = status(device)
    assert st.certificates == (before,) and st.lifecycle is Lifecycle.ENROLLED
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.RETRYING
    clock.advance(3600)
    (again,) = device.run_due()
    assert event_types(again) == ["RenewalRequested", "RenewalFailed"]
