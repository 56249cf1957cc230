"""micromdm's `scepclient` (Debian package `scep` 2.1.0) enrolls against `trustledger ca serve`.

What scepclient really does (checked against its source and behaviour): it derives the
transactionID from its key, sends DES-CBC + SHA-1 PKCSReqs (sha1WithRSAEncryption), and on
PENDING logs "sleeping for 30 seconds, then trying again." and re-sends the very same message.
It keeps key, csr.pem and self.pem in the key's directory, so a re-run after an approval sends
the same transactionID and gets the issued certificate. The tests do that (kill while it sleeps,
approve, re-run) rather than wait 30 s.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ca.ca_support import http_request
from tests.ca.cli_support import Served, cli, served

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("scepclient") is None, reason="scepclient not installed"),
]

CHALLENGE = "interop-secret"


def scepclient(url: str, workdir: Path, cn: str, challenge: str | None = CHALLENGE,
               **popen: object) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)  # fresh dir per identity (csr.pem is reused)
    args = ["scepclient", "-server-url", url, "-private-key", str(workdir / "device.key"),
            "-certificate", str(workdir / "device.pem"), "-cn", cn, "-organization", "Example",
            "-ou", "NET", "-country", "US"]
    if challenge is not None:
        args += ["-challenge", challenge]
    return args


def run_scepclient(url: str, workdir: Path, cn: str, challenge: str | None = CHALLENGE,
                   ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(scepclient(url, workdir, cn, challenge), capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interop") / "ca"
    cli("init", root, "--subject", "CN=Interop CA,O=Example")
    return root


@pytest.fixture(scope="module")
def auto(ca_dir: Path) -> Iterator[Served]:
    with served(ca_dir, "--challenge", CHALLENGE) as srv:
        yield srv


def openssl_verify(ca_dir: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca_dir / "ca.pem"), str(cert)],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("path", ["/scep", "/cgi-bin/pkiclient.exe"])
def test_scepclient_enrolls_with_auto_approval(auto: Served, ca_dir: Path, tmp_path: Path,
                                               path: str) -> None:
    cn = f"router{len(path)}.example.com"
    done = run_scepclient(auto.url + path, tmp_path / "dev", cn)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pkiStatus=SUCCESS" in done.stderr
    verified = openssl_verify(ca_dir, tmp_path / "dev" / "device.pem")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert cn in cli("list", ca_dir).stdout
    # renewal: scepclient sends a RenewalReq signed by the certificate it now holds
    renewed = run_scepclient(auto.url + path, tmp_path / "dev", cn)
    assert renewed.returncode == 0, renewed.stderr
    assert cli("list", ca_dir).stdout.count(cn) == 2


def test_scepclient_with_wrong_challenge_fails_with_bad_request(auto: Served,
                                                                tmp_path: Path) -> None:
    done = run_scepclient(auto.scep_url, tmp_path / "bad", "wrong.example.com", "nope")
    assert done.returncode == 1
    assert "failInfo: badRequest" in done.stdout + done.stderr


def test_openssl_parses_the_crl(auto: Served, tmp_path: Path) -> None:
    status, ctype, body = http_request(f"{auto.url}/crl/ca.crl")
    assert (status, ctype) == (200, "application/pkix-crl")
    (tmp_path / "ca.crl").write_bytes(body)
    text = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "ca.crl"),
                           "-noout", "-issuer", "-crlnumber"], capture_output=True, text=True,
                          check=True).stdout
    assert "Interop CA" in text and "crlNumber" in text


@pytest.mark.slow
def test_scepclient_with_manual_approval(tmp_path: Path) -> None:
    root = tmp_path / "manual-ca"
    cli("init", root, "--subject", "CN=Manual CA,O=Example")
    dev = tmp_path / "dev"
    with served(root, "--approval", "manual", "--challenge", CHALLENGE) as srv:
        log = (tmp_path / "scepclient.log").open("w")
        proc = subprocess.Popen(scepclient(srv.scep_url, dev, "manual.example.com"),
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            txid = ""
            deadline = time.monotonic() + 30
            while not txid and time.monotonic() < deadline:
                lines = [ln for ln in cli("requests", root).stdout.splitlines()
                         if "manual.example.com" in ln and "pending" in ln]
                txid = lines[0].split()[0] if lines else ""
                if not txid:
                    time.sleep(0.2)
            assert txid, "the request never showed up as pending"
            # The CA logs the request before it answers: scepclient may not have read PENDING
            # yet when `requests` lists it.
            while "PENDING" not in (tmp_path / "scepclient.log").read_text():
                assert proc.poll() is None and time.monotonic() < deadline + 30, \
                    (tmp_path / "scepclient.log").read_text()
                time.sleep(0.05)
            assert proc.poll() is None  # scepclient got PENDING and waits to re-send
        finally:
            proc.kill()
            proc.wait()
            log.close()
        assert "PENDING" in (tmp_path / "scepclient.log").read_text()
        assert not (dev / "device.pem").exists()
        assert "approved" in cli("approve", root, txid).stdout
        done = run_scepclient(srv.scep_url, dev, "manual.example.com")
        assert done.returncode == 0, done.stderr
        verified = openssl_verify(root, dev / "device.pem")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        issued = cli("requests", root, "--all").stdout
        assert txid in issued and "issued" in issued


@pytest.mark.slow
def test_scepclient_enrolls_against_ra_mode(tmp_path: Path) -> None:
    # scepclient envelopes to every certificate GetCACert returned (CA, RA signing, RA
    # encryption); we decrypt with the RA encryption key and sign the CertRep as the RA.
    root = tmp_path / "ra-ca"
    cli("init", root, "--ra", "--subject", "CN=RA Mode CA,O=Example")
    with served(root, "--challenge", CHALLENGE) as srv:
        status, ctype, _ = http_request(f"{srv.scep_url}?operation=GetCACert")
        assert (status, ctype) == (200, "application/x-x509-ca-ra-cert")
        done = run_scepclient(srv.scep_url, tmp_path / "dev", "ra.example.com")
        assert done.returncode == 0, done.stderr
    verified = openssl_verify(root, tmp_path / "dev" / "device.pem")
    assert verified.returncode == 0, verified.stdout + verified.stderr
