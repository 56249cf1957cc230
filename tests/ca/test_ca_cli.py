"""`python -m engine.ca.cli`: every subcommand, with and without a running `ca serve`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from engine.ca import cli as ca_cli
from engine.scep import FailInfo, PkiStatus
from projections.certfmt import ios_serial
from tests.ca.ca_support import ScepTestClient, http_request, rsa_key
from tests.ca.cli_support import REPO, cli, served

pytestmark = pytest.mark.usefixtures("cli_locale")  # every test under C.UTF-8 and C


@pytest.fixture
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh CA per test: each test runs once per locale, and enrollments are one-time."""
    root = tmp_path_factory.mktemp("cli") / "ca"
    out = cli("init", root, "--subject", "/C=US/O=Example/CN=CLI Test CA", "--cert-days", "90")
    assert "CA initialized" in out.stdout
    assert (root / "ca.key").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=CLI Test CA,O=Example,C=US"
    return root


def test_init_refuses_an_existing_ca_and_bad_keys(ca_dir: Path, tmp_path: Path) -> None:
    again = cli("init", ca_dir, check=False)
    assert again.returncode == 1 and again.stderr.startswith("% ")
    bad = cli("init", tmp_path / "x", "--key", "dsa:1024", check=False)
    assert bad.returncode == 2  # argparse: not one of the choices


@pytest.mark.integration
@pytest.mark.slow
def test_commands_go_through_the_running_server(ca_dir: Path) -> None:
    with served(ca_dir, "--manual") as srv:
        info = json.loads((ca_dir / "admin.json").read_text())
        assert info["admin_url"].startswith("http://127.0.0.1:")
        # a one-time challenge minted while the server holds the log
        out = cli("challenge", ca_dir)
        password = out.stdout.strip().splitlines()[-1]
        assert len(password) >= 20
        client = ScepTestClient(srv.scep_url, rsa_key(40), "cli1", signing_time=None)
        assert client.enroll(password).status is PkiStatus.PENDING
        listed = cli("requests", ca_dir).stdout
        assert client.transaction_id in listed and "challenge:one-time" in listed
        approved = cli("approve", ca_dir, client.transaction_id).stdout
        assert "approved; certificate" in approved
        # the server refuses a second approval: its sentence crosses the admin wire and is
        # printed with one `%`
        twice = cli("approve", ca_dir, client.transaction_id, check=False)
        assert twice.returncode == 1, twice.stderr
        assert twice.stderr.startswith("% ") and twice.stderr.count("%") == 1, twice.stderr
        rep = client.poll()
        assert rep.status is PkiStatus.SUCCESS
        cert = rep.certificate_for(client.key.public_key())
        assert cert is not None
        serial = ios_serial(cert)  # as the router prints it (issue 14 item 10)
        assert serial in approved and serial in cli("list", ca_dir).stdout
        reused = ScepTestClient(srv.scep_url, rsa_key(41), "cli2", signing_time=None)
        rep = reused.enroll(password)
        assert (rep.status, rep.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)

        pending = ScepTestClient(srv.scep_url, rsa_key(42), "cli3", signing_time=None)
        assert pending.enroll(None).status is PkiStatus.PENDING
        assert "rejected" in cli("reject", ca_dir, pending.transaction_id, "--reason",
                                 "unknown device").stdout
        assert pending.poll().fail_info is FailInfo.BAD_REQUEST

        missing = cli("approve", ca_dir, "NO-SUCH-TXID", check=False)
        assert missing.returncode == 1 and "no request" in missing.stderr

        revoked = cli("revoke", ca_dir, serial, "--reason", "keyCompromise").stdout
        assert "CRL number 2" in revoked
        status, _, body = http_request(f"{srv.url}/crl/ca.crl")
        assert status == 200
        crl = x509.load_der_x509_crl(body)
        assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert not (ca_dir / "admin.json").exists()
    # with no server, commands act on the directory directly
    listing = cli("list", ca_dir).stdout
    assert f"{serial}  revoked (keyCompromise)" in listing
    unknown = cli("revoke", ca_dir, "abcdef", check=False)
    assert unknown.returncode == 1 and "no certificate with serial abcdef" in unknown.stderr
    offline = cli("challenge", ca_dir).stdout.strip().splitlines()[-1]
    assert len(offline) >= 20 and offline != password
    assert "No pending requests." in cli("requests", ca_dir).stdout
    assert "rejected" in cli("requests", ca_dir, "--all").stdout


# -- found in review: secrets in logs, on the command line, and a half-made CA ----------------

LOG_A_SECRET = textwrap.dedent("""
    import socket, sys, structlog
    {setup}
    structlog.get_logger("probe").warning("probe", challenge="hunter2-secret",
                                          blob=b"hunter2-bytes")
""")


@pytest.mark.parametrize("entry", ["cli", "worker"])
def test_entry_points_configure_logging_with_secret_redaction(tmp_path: Path,
                                                              entry: str) -> None:
    """Each process's own structlog set-up puts engine.keystore.redact_secrets first: what it
    logs after its entry point ran has no secret in it."""
    if entry == "cli":
        setup = (f"from engine.ca.cli import main\n"
                 f"main(['list', {str(tmp_path / 'none')!r}])")
    else:  # a worker whose decider hangs up before the init frame: it configures, then exits
        setup = ("from engine.ca.worker import main\n"
                 "chan, peer = socket.socketpair()\n"
                 "take, give = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                 "peer.close()\n"
                 f"main([{str(tmp_path)!r}, '--channel-fd', str(chan.detach()), "
                 "'--handoff-fd', str(take.detach())])")
    done = subprocess.run([sys.executable, "-c", LOG_A_SECRET.format(setup=setup)], cwd=REPO,
                          check=False,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "probe" in out and "[redacted]" in out
    assert "hunter2" not in out


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def environ(pid: int) -> bytes:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read()


@pytest.mark.integration
@pytest.mark.slow
def test_the_static_challenge_from_a_file_or_the_environment(
        ca_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "challenge"
    secret.write_text("from-a-file-5150\n")
    secret.chmod(0o600)
    with served(ca_dir, "--challenge-file", str(secret), "--workers", "1") as srv:
        assert "static challenge: yes" in srv.banner
        assert "from-a-file-5150" not in cmdline(srv.proc.pid)
        client = ScepTestClient(srv.scep_url, rsa_key(43), "cli4", signing_time=None)
        assert client.enroll("from-a-file-5150").status is PkiStatus.SUCCESS
    monkeypatch.setenv("TRUSTLEDGER_CA_CHALLENGE", "from-the-env-5151")
    with served(ca_dir, "--workers", "2") as srv:
        client = ScepTestClient(srv.scep_url, rsa_key(44), "cli5", signing_time=None)
        assert client.enroll("from-the-env-5151").status is PkiStatus.SUCCESS
        pids = [int(p) for p in srv.banner.rsplit("workers: ", 1)[1].split(",")]
        assert len(pids) == 2
        for pid in pids:  # the workers never get it
            assert b"TRUSTLEDGER_CA_CHALLENGE" not in environ(pid)
    monkeypatch.delenv("TRUSTLEDGER_CA_CHALLENGE")
    secret.write_text("\n")
    empty = cli("serve", ca_dir, "--port", "0", "--challenge-file", secret, check=False)
    assert empty.returncode == 1 and "holds no challenge password" in empty.stderr
    both = cli("serve", ca_dir, "--challenge-file", secret, "--challenge", "x", check=False)
    assert both.returncode == 2  # one or the other
    helped = cli("serve", "--help").stdout
    assert "/proc/PID/cmdline" in helped and "TRUSTLEDGER_CA_CHALLENGE" in helped


@pytest.mark.slow
def test_ca_commands_on_a_device_data_directory_say_it_holds_no_ca(tmp_path: Path) -> None:
    """A device's log is not a CA's: every `trustledger ca` command names the mistake in one
    `%` line, exit status 2, and leaves the directory as it was (no traceback)."""
    script = tmp_path / "s.txt"
    script.write_text("configure\nhostname r1\ncommit\nend\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def trustledger(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=60, check=False)

    device = tmp_path / "d"
    assert trustledger("exec", "--data", device, "-f", script).returncode == 0
    before = {p: p.read_bytes() for p in (device / "log").glob("*.seg")}
    for command in (["list", device], ["show", device, "01"], ["revoke", device, "01"],
                    ["requests", device], ["approve", device, "x"], ["reject", device, "x"],
                    ["challenge", device], ["init", device]):
        done = trustledger("ca", *command)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr == f"% {device} holds no CA (it is a device data directory).\n"
    assert {p: p.read_bytes() for p in (device / "log").glob("*.seg")} == before


@pytest.mark.parametrize(("cpus", "workers"), [(None, 1), (1, 1), (2, 1), (3, 2), (8, 7)])
def test_serve_leaves_the_deciding_process_a_cpu_of_its_own(
        monkeypatch: pytest.MonkeyPatch, cpus: int | None, workers: int) -> None:
    """`ca serve` without --workers: one worker process per CPU but one (on 2 CPUs, one
    process: measured faster than a decider beside 2 workers); it was one per CPU."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    parser = argparse.ArgumentParser()
    ca_cli.register(parser.add_subparsers())
    assert ca_cli.default_workers(cpus) == workers
    assert parser.parse_args(["ca", "serve", "DIR"]).workers == workers
    assert parser.parse_args(["ca", "serve", "DIR", "--workers", "3"]).workers == 3


def test_the_default_counts_the_cpus_this_process_may_run_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `taskset -c 0` (or a container's cpuset) on an 8-CPU machine, 8 - 1 workers
    would oversubscribe the one CPU the server may use: the affinity mask counts."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    parser = argparse.ArgumentParser()
    ca_cli.register(parser.add_subparsers())
    assert parser.parse_args(["ca", "serve", "DIR"]).workers == 1


@pytest.mark.parametrize("port", ["99999", "-5", "http"])
def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path, port: str) -> None:
    """It ended in bind()'s OverflowError traceback."""
    done = cli("serve", tmp_path / "ca", "--port", port, check=False)
    assert done.returncode == 2
    assert "argument --port: not a TCP port (0-65535)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("url", ["http://admin:S3cretPw@127.0.0.1:8080", "ftp://127.0.0.1/"])
def test_a_public_url_with_a_password_or_not_http_is_a_usage_error(tmp_path: Path,
                                                                  url: str) -> None:
    """It went into every issued certificate's CRL distribution point, password and all."""
    done = cli("serve", tmp_path / "ca", "--public-url", url, check=False)
    assert done.returncode == 2 and "argument --public-url: " in done.stderr, done.stderr
    assert "S3cretPw" not in done.stderr and "Traceback" not in done.stderr


def test_replay_of_a_ca_directory_says_it_is_a_ca(tmp_path: Path) -> None:
    """It named CAInitialized as an event type this build does not fold."""
    cli("init", tmp_path / "ca", "--subject", "/CN=Replay Test CA")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(tmp_path / "ca"),
                           "--until", "3"], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"% {tmp_path / 'ca'} holds a ca log, not a device's"), \
        done.stderr


def test_a_reader_that_stops_reading_gets_no_error(tmp_path: Path) -> None:
    """`trustledger log show DIR | head -1` printed `% Broken pipe.` on stderr."""
    cli("init", tmp_path / "ca", "--subject", "/CN=Pipe Test CA")
    done = subprocess.run(f"'{sys.executable}' -m engine.cli log show '{tmp_path / 'ca'}' "
                          "| head -c 1", shell=True, capture_output=True, text=True,
                          timeout=60, cwd=REPO, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stderr == "", done.stderr
