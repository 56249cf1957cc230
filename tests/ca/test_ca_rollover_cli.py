"""`trustledger ca rollover DIR [--days N]` as the operator runs it, and what `ca list`,
`ca show` and `ca serve` then say about the current and next CA certificates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509

from engine.scep import CACertificates
from tests.ca.ca_support import ScepTestClient, rsa_key
from tests.ca.cli_support import cli, served


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ca"
    cli("init", root, "--subject", "CN=Rollover CLI CA", "--days", "30", "--cert-days", "10")
    return root


def test_rollover_prints_the_next_certificate_and_refuses_a_second(ca_dir: Path) -> None:
    out = cli("rollover", ca_dir, "--days", "60").stdout
    old = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    new = x509.load_pem_x509_certificate((ca_dir / "ca-2.pem").read_bytes())
    lines = out.splitlines()
    assert lines[0] == f"CA rolled over in {ca_dir}: CA certificate 2 is next"
    assert lines[1] == "  subject:      CN=Rollover CLI CA"
    assert lines[2] == f"  key:          rsa:2048 ({ca_dir / 'ca-2.key'}, mode 0600)"
    assert lines[5] == f"  valid until:  {new.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    assert lines[6] == (f"  takes over:   {old.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC "
                        "(when CA certificate 1 expires)")
    assert "GetCACaps now advertises GetNextCACert" in lines[7]
    assert (new.not_valid_after_utc - old.not_valid_after_utc).days == 60
    again = cli("rollover", ca_dir, check=False)
    assert again.returncode == 1
    assert again.stderr == ("% CA certificate 2 is already next (it takes over when the "
                            "current one expires)\n")
    listed = cli("list", ca_dir).stdout.splitlines()
    assert listed[0] == (f"CA certificate 1: current, valid until "
                         f"{old.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    assert listed[1] == (f"CA certificate 2: next, takes over "
                         f"{old.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    assert listed[2] == "No certificates issued."


def test_a_validity_past_100_years_is_a_usage_error_not_a_traceback(ca_dir: Path,
                                                                   tmp_path: Path) -> None:
    too_long = cli("rollover", ca_dir, "--days", "99999999", check=False)
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr
    assert "argument --days: at most 36500 (100 years)" in too_long.stderr
    assert not (ca_dir / "ca-2.pem").exists()
    init = cli("init", tmp_path / "other", "--cert-days", "36501", check=False)
    assert init.returncode == 2 and "at most 36500" in init.stderr


def test_a_ca_without_a_rollover_lists_as_before(ca_dir: Path) -> None:
    assert cli("list", ca_dir).stdout == "No certificates issued.\n"


@pytest.mark.integration
def test_serve_says_which_ca_certificate_is_current_and_next(ca_dir: Path) -> None:
    cli("rollover", ca_dir)
    with served(ca_dir, "--challenge", "pw", "--workers", "2") as srv:
        banner = srv.banner
        client = ScepTestClient(srv.scep_url, rsa_key(5), "r5", signing_time=None)
        cert = client.enroll("pw").certificate_for(client.key.public_key())
        assert cert is not None
        # the worker processes open requests enveloped to the next CA certificate too, and
        # the decider issues them under it
        new = x509.load_pem_x509_certificate((ca_dir / "ca-2.pem").read_bytes())
        shadow = ScepTestClient(srv.scep_url, client.key, "r5", signing_time=None,
                                cas=CACertificates(ca=new))
        under_new = shadow.renew(cert).certificate_for(client.key.public_key())
        assert under_new is not None
        under_new.verify_directly_issued_by(new)
        # a rollover while the server holds the CA is refused: it loads the keys at start
        busy = cli("rollover", ca_dir, check=False)
        assert busy.returncode == 1
        assert busy.stderr.startswith(f"% the CA in {ca_dir} is being served (`ca serve`); "
                                      "stop the server, roll over, and start it again")
    assert re.search(r"^  CA certificate 1: current, valid until \S+ \S+ UTC$", banner, re.M)
    assert re.search(r"^  CA certificate 2: next, takes over \S+ \S+ UTC$", banner, re.M)
    shown = cli("show", ca_dir, format(cert.serial_number, "x")).stdout
    assert "  Issued by       : CA certificate 1 (current)\n" in shown
