"""strongSwan 5.9.8 `pki --scep` (Debian `strongswan-pki`) enrolls against `trustledger ca serve`.

Issue 13: `--san` requests (PKCS#10 attributes in BER, not DER, order) were refused with
badRequest, and `--rsa-padding pss` pkiMessages with "unsupported signature algorithm". Each
case here enrolls end to end and checks the certificate with `openssl verify -CAfile`.

Two strongSwan 5.9.8 bugs shape what our CA must send (../shared/peers/README.md §3): caps are
tested by enum value (so we advertise SHA-384 and DES3 beside AES), and only SignerInfo
algorithm rsaEncryption is accepted in a CertRep (which is what we sign with).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.ca.cli_support import Served, cli, served
from tests.support.peer_support import peers_dir

pytestmark = pytest.mark.integration

CHALLENGE = "strongswan-secret"


@pytest.fixture(scope="module", autouse=True)
def peers() -> Path:
    """The peers directory (skips without `pki`, fails under CI: see peer_support)."""
    return peers_dir("pki")


def pki(*args: str | Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pki", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=_env(), check=False)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    conf = peers_dir("pki") / "strongswan-pki.conf"
    if conf.exists():  # silences the TPM plugin; pki works without it
        env["STRONGSWAN_CONF"] = str(conf)
    return env


def new_key(path: Path, *extra: str) -> Path:
    done = pki("--gen", "--type", "rsa", "--size", "2048", *extra, "--outform", "pem")
    assert done.returncode == 0, done.stderr
    path.write_text(done.stdout)
    return path


def scep_args(url: str, key: Path, cn: str, ca_pem: Path, out: Path,
              *extra: str) -> list[str | Path]:
    return ["--scep", "--url", url, "--in", key, "--dn", f"C=US, O=Example, CN={cn}",
            "--cacert-enc", ca_pem, "--cacert-sig", ca_pem, "--outform", "pem", *extra]


def openssl_verify(ca_pem: Path, cert: Path) -> str:
    done = subprocess.run(["openssl", "verify", "-CAfile", str(ca_pem), str(cert)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("strongswan") / "ca"
    cli("init", root, "--subject", "CN=strongSwan Interop CA,O=Example")
    return root


@pytest.fixture(scope="module")
def auto(ca_dir: Path) -> Iterator[Served]:
    with served(ca_dir, "--challenge", CHALLENGE) as srv:
        yield srv


def _enroll(srv: Served, ca_dir: Path, tmp_path: Path, cn: str,
            *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / f"{cn}.pem"
    done = pki(*scep_args(srv.scep_url, new_key(tmp_path / f"{cn}.key"), cn,
                          ca_dir / "ca.pem", out, "--password", CHALLENGE, *extra))
    if done.returncode == 0:
        out.write_text(done.stdout)
    return done, out


def test_pki_scepca_fetches_our_ca(auto: Served, ca_dir: Path, tmp_path: Path) -> None:
    done = pki("--scepca", "--url", auto.scep_url, "--caout", tmp_path / "ca.pem",
               "--outform", "pem")
    assert done.returncode == 0, done.stderr
    got = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert got == x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())


@pytest.mark.parametrize("extra", [(), ("--san", "ss-san.example.com")], ids=["plain", "san"])
def test_pki_scep_enrolls(auto: Served, ca_dir: Path, tmp_path: Path,
                          extra: tuple[str, ...]) -> None:
    cn = f"ss-{len(extra)}.example.com"
    done, out = _enroll(auto, ca_dir, tmp_path, cn, *extra)
    assert done.returncode == 0, done.stderr
    assert f'Issued certificate "C=US, O=Example, CN={cn}"' in done.stderr
    assert openssl_verify(ca_dir / "ca.pem", out).endswith(": OK")
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    if extra:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["ss-san.example.com"]


def test_pki_scep_with_pss_padding_enrolls(auto: Served, ca_dir: Path, tmp_path: Path) -> None:
    done, out = _enroll(auto, ca_dir, tmp_path, "ss-pss.example.com", "--rsa-padding", "pss",
                        "--san", "ss-pss.example.com")
    assert done.returncode == 0, done.stderr
    assert openssl_verify(ca_dir / "ca.pem", out).endswith(": OK")


def test_pki_scep_wrong_challenge_is_a_clean_bad_request(auto: Served, ca_dir: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "wrong.pem"
    done = pki(*scep_args(auto.scep_url, new_key(tmp_path / "wrong.key"), "ss-wrong",
                          ca_dir / "ca.pem", out, "--san", "ss-wrong", "--password", "nope"))
    assert done.returncode != 0
    assert "badRequest" in done.stderr, done.stderr


@pytest.mark.slow
def test_pki_scep_with_manual_approval_polls_until_issued(tmp_path: Path) -> None:
    ca_dir = tmp_path / "manual-ca"  # its own CA: the module's is held by its server
    cli("init", ca_dir, "--subject", "CN=strongSwan Manual CA,O=Example")
    # With --password, pki's request carries both attributes, in BER order (without one it
    # has only the extensionRequest, and no ordering to get wrong).
    with served(ca_dir, "--manual", "--challenge", CHALLENGE) as srv:
        cn = "ss-manual.example.com"
        out = tmp_path / "manual.pem"
        args = scep_args(srv.scep_url, new_key(tmp_path / "manual.key"), cn,
                         ca_dir / "ca.pem", out, "--san", cn, "--password", CHALLENGE,
                         "--interval", "1s", "--maxpolltime", "60")
        proc = subprocess.Popen(["pki", *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env())
        try:
            txid = _wait_for_pending(ca_dir, cn)
            cli("approve", ca_dir, txid)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, stderr
        assert "SCEP request pending" in stderr
        out.write_text(stdout)
        assert openssl_verify(ca_dir / "ca.pem", out).endswith(": OK")


def _wait_for_pending(ca_dir: Path, cn: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in cli("requests", ca_dir).stdout.splitlines()[1:]:
            if f"CN={cn}" in line and " pending " in f" {line} ":
                return line.split()[0]
        time.sleep(0.3)
    raise AssertionError(f"no pending request for {cn}: {cli('requests', ca_dir).stdout}")


@pytest.mark.slow
def test_pki_scep_against_a_strict_ca(tmp_path: Path) -> None:
    """--strict: pki signs with the requested key (strict's same-key rule is met) and, by
    default, AES + SHA-256: issued. SHA-1 + 3DES: FAILURE badAlg, failInfo 0, which pki must
    receive as badAlg (not badRequest)."""
    ca_dir = tmp_path / "strict-ca"
    cli("init", ca_dir, "--subject", "CN=strongSwan Strict CA,O=Example")
    with served(ca_dir, "--strict", "--challenge", CHALLENGE) as srv:
        done, out = _enroll(srv, ca_dir, tmp_path, "ss-strict.example.com",
                            "--san", "ss-strict.example.com")
        assert done.returncode == 0, done.stderr
        assert openssl_verify(ca_dir / "ca.pem", out).endswith(": OK")
        done, _ = _enroll(srv, ca_dir, tmp_path, "ss-sha1.example.com", "--digest", "sha1",
                          "--cipher", "des3")
        assert done.returncode != 0
        assert "failInfo:     badAlg" in done.stderr, done.stderr
