"""`trustledger ca init|serve|sign --clock ISO-TIME` (issue 15): the CA's clock starts at that
time and runs on, for that run only; it is not an event, so the next run is back on the
system clock; serve's workers run on the same clock (a signingTime at the set time passes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.ca.profile import CLOCK_SKEW
from engine.scep import PkiStatus
from events.filelog import FileEventLog
from tests.ca.ca_support import ScepTestClient, make_csr, rsa_key
from tests.ca.cli_support import cli, served

pytestmark = pytest.mark.usefixtures("cli_locale")  # every test under C.UTF-8 and C

INIT_AT = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
SIGN_AT = datetime(2027, 6, 1, 0, 0, tzinfo=UTC)


def close_to(t: datetime, want: datetime) -> bool:
    """Within the minute the run took (the clock runs on from the time set)."""
    return want <= t < want + timedelta(minutes=1)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ca"
    out = cli("init", root, "--clock", "2027-03-01T10:00:00Z", "--cert-days", "30")
    assert "CA initialized" in out.stdout
    return root


def test_init_starts_the_ca_at_the_clock(ca_dir: Path) -> None:
    cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    assert close_to(cert.not_valid_before_utc + CLOCK_SKEW, INIT_AT)
    with FileEventLog.open(ca_dir / "log", readonly=True) as log:
        records = list(log.read())
    assert all(close_to(datetime.fromtimestamp(r.at / 1e6, UTC), INIT_AT) for r in records)
    assert not [r.type for r in records if "Clock" in r.type]  # not recorded: see cli.py


def test_sign_runs_on_its_own_clock_then_the_system_clock_again(ca_dir: Path,
                                                                 tmp_path: Path) -> None:
    csr = tmp_path / "r1.csr"
    csr.write_bytes(make_csr(rsa_key(61), "r1", challenge=None, dns=("r1.example.com",))
                    .public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "r1.pem"
    cli("sign", ca_dir, "--csr", csr, "--out", out, "--clock", "2027-06-01T00:00:00")
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert close_to(cert.not_valid_before_utc + CLOCK_SKEW, SIGN_AT)  # no zone: UTC
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30) + CLOCK_SKEW

    again = tmp_path / "r1b.pem"
    cli("sign", ca_dir, "--csr", csr, "--out", again)  # no --clock: the system clock
    now = datetime.now(UTC)
    cert = x509.load_pem_x509_certificate(again.read_bytes())
    assert abs(cert.not_valid_before_utc + CLOCK_SKEW - now) < timedelta(minutes=1)


def test_a_bad_clock_is_refused_before_anything_happens(tmp_path: Path) -> None:
    bad = cli("init", tmp_path / "x", "--clock", "next tuesday", check=False)
    assert bad.returncode == 2
    assert "argument --clock: not an ISO time: 'next tuesday'" in bad.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_serve_and_its_workers_run_on_the_clock(ca_dir: Path, tmp_path: Path) -> None:
    serve_at = datetime(2027, 9, 1, 12, 0, tzinfo=UTC)
    with served(ca_dir, "--clock", "2027-09-01T12:00:00Z", "--challenge", "pw-clock-1",
                "--workers", "2") as srv:
        assert srv.banner.startswith("CA clock set to 2027-09-01 12:00:")
        assert "for this run (--clock; not recorded in the log)" in srv.banner
        # A signingTime at the CA's time: more than a day from the system clock, so a worker
        # on the system clock would answer badTime.
        client = ScepTestClient(srv.scep_url, rsa_key(62), "r2", signing_time=serve_at)
        rep = client.enroll("pw-clock-1")
        assert rep.status is PkiStatus.SUCCESS, rep.fail_info
        cert = rep.certificate_for(client.key.public_key())
        assert cert is not None
        assert close_to(cert.not_valid_before_utc + CLOCK_SKEW, serve_at)
        csr = tmp_path / "r3.csr"
        csr.write_bytes(make_csr(rsa_key(63), "r3").public_bytes(serialization.Encoding.PEM))
        refused = cli("sign", ca_dir, "--csr", csr, "--clock", "2027-01-01T00:00:00Z",
                      check=False)
        assert refused.returncode == 1
        assert "is being served (`ca serve`): its clock is the server's" in refused.stderr
