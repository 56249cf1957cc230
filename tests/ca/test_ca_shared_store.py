"""The built-in CA with its log in a PostgreSQL store (`ca init|serve --store URL --device ID`):
`ca serve` over the store issues a certificate to a device whose own log is in the same store,
and the other `ca` commands find the CA's log through DIR/STORE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from events.pgstore import list_logs
from tests.ca.cli_support import REPO, cli, served

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSION = """\
configure
hostname pgrouter
domain name example.net
end
yes
crypto key generate rsa mykey

configure
crypto ca trustpoint myca
enrollment url {url}
rsakeypair mykey
end
yes
crypto ca authenticate myca
yes
crypto ca enroll myca
{challenge}
{challenge}
show crypto ca certificates
"""


def test_ca_serve_over_the_store_issues_to_a_device_over_the_store(pg_url: str,
                                                                   tmp_path: Path) -> None:
    ca_dir, device = tmp_path / "ca", tmp_path / "device"
    cli("init", ca_dir, "--store", pg_url, "--device", "ca-main")
    assert json.loads((ca_dir / "STORE").read_text()) == {"store": pg_url, "device": "ca-main"}
    assert not (ca_dir / "log").exists() and (ca_dir / "ca.key").is_file()
    with served(ca_dir, "--challenge", "pw-5150-static", "--workers", "1") as srv:
        script = SESSION.format(url=srv.url, challenge="pw-5150-static")
        done = subprocess.run([sys.executable, "-m", "engine.cli", "exec", "--data", device,
                               "--store", pg_url, "--device", "r1", "-f", "-"], input=script,
                              capture_output=True, text=True, cwd=REPO, timeout=120,
                              check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert ("Router certificate\nKey usage          :General Purpose\n"
                "Status             :Available") in done.stdout
    listed = cli("list", ca_dir).stdout  # read-only, through DIR/STORE
    assert "pgrouter.example.net" in listed
    logs = {info.log_id: info for info in list_logs(pg_url)}
    assert logs["ca-main"].kind == "ca" and logs["r1"].kind == "device"
    for log_id in ("ca-main", "r1"):
        verified = subprocess.run([sys.executable, "-m", "engine.cli", "log", "verify",
                                   "--store", pg_url, "--device", log_id], capture_output=True,
                                  text=True, cwd=REPO, timeout=60, check=False)
        assert verified.returncode == 0, verified.stderr
        assert f"head seq  : {logs[log_id].head_seq}\n" in verified.stdout
        assert "chain     : OK" in verified.stdout
    other = cli("serve", ca_dir, "--port", "0", "--store", pg_url, "--device", "ca-other",
                check=False)
    assert other.returncode == 1 and "refusing to mix them" in other.stderr


def test_a_store_that_does_not_answer_leaves_no_audit_directory(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    refused = cli("init", ca_dir, "--store", "postgresql://u@127.0.0.1:1/x", "--device", "c",
                  check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("% Cannot open the event store")
    assert not (ca_dir / "audit").exists() and not (ca_dir / "STORE").exists()


def test_the_ca_takes_its_store_spelled_another_way(pg_url: str, tmp_path: Path) -> None:
    """`postgres://` for `postgresql://`, or an option that does not change the database:
    the store DIR/STORE records (engine/storebinding.py same_store), as for a device."""
    from engine.ca.service import BuiltinCA
    from engine.storebinding import Binding

    ca_dir = tmp_path / "ca"
    cli("init", ca_dir, "--store", pg_url, "--device", "ca-main")
    alias = pg_url.replace("postgresql://", "postgres://", 1) + "?application_name=x"
    with BuiltinCA.open(ca_dir, store=Binding(alias, "ca-main")) as ca:
        assert ca.state.initialized
