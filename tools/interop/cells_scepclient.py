"""micromdm `scepclient` (Debian `scep` 2.1.0) against our CA.

scepclient keeps its key, `csr.pem` and `self.pem` in the key's directory and re-uses them; when
`-certificate` already exists it sends a RenewalReq signed by it. On PENDING it logs "sleeping for
30 seconds" and re-sends the same message: the manual cells stop it while it sleeps, act as the
CA operator, and run it again from the same directory (same key, same transactionID), which is
what it would do after its sleep.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509

from tools.interop.matrix import cell
from tools.interop.support import (
    CHALLENGE,
    OurCA,
    Workspace,
    expect,
    last_lines,
    need,
    openssl_verify,
    subject_of,
)


def args(ca: OurCA, device: Path, cn: str, challenge: str | None = CHALLENGE) -> list[str]:
    need("scepclient")
    device.mkdir(parents=True, exist_ok=True)
    out = ["scepclient", "-server-url", ca.scep_url, "-private-key", str(device / "device.key"),
           "-certificate", str(device / "device.pem"), "-cn", cn, "-organization", "Example",
           "-ou", "NET", "-country", "US"]
    return out + (["-challenge", challenge] if challenge is not None else [])


def run(ws: Workspace, ca: OurCA, device: Path, cn: str,
        challenge: str | None = CHALLENGE) -> subprocess.CompletedProcess[str]:
    return ws.run(args(ca, device, cn, challenge))


def enrolled(ws: Workspace, ca: OurCA, done: subprocess.CompletedProcess[str],
             device: Path) -> str:
    ca.answered("SUCCESS")
    expect(done.returncode == 0, f"scepclient failed after our SUCCESS: "
                                 f"{last_lines(done.stdout + done.stderr)}")
    cert = device / "device.pem"
    return f"issued {subject_of(cert)}; {openssl_verify(ws, ca.ca_pem, cert)}; " \
           f"{ca.proxy.summary()}"


def refused(ca: OurCA, done: subprocess.CompletedProcess[str], fail_info: str) -> str:
    ca.answered("FAILURE", fail_info)
    said = done.stdout + done.stderr
    expect(done.returncode != 0, "scepclient exited 0 after our FAILURE")
    expect(f"failInfo: {fail_info}" in said,
           f"scepclient did not report failInfo {fail_info}: {last_lines(said)}")
    return f"FAILURE {fail_info}, scepclient says so; {ca.proxy.summary()}"


@cell("scepclient", "auto")
def auto(ws: Workspace) -> str:
    ca = ws.our_ca()
    device = ws.path("dev")
    return enrolled(ws, ca, run(ws, ca, device, "c1.example.com"), device)


@cell("scepclient", "wrong-challenge")
def wrong_challenge(ws: Workspace) -> str:
    ca = ws.our_ca()
    return refused(ca, run(ws, ca, ws.path("dev"), "c2.example.com", "not-" + CHALLENGE),
                   "badRequest")


@cell("scepclient", "manual-approve")
def manual_approve(ws: Workspace) -> str:
    ca = ws.our_ca(approval="manual")
    device = ws.path("dev")
    txid = _pending(ws, ca, device, "c3.example.com")
    ca.admin("approve", txid)
    return "PENDING, approved; " + enrolled(ws, ca, run(ws, ca, device, "c3.example.com"),
                                              device)


@cell("scepclient", "manual-reject")
def manual_reject(ws: Workspace) -> str:
    ca = ws.our_ca(approval="manual")
    device = ws.path("dev")
    txid = _pending(ws, ca, device, "c4.example.com")
    ca.admin("reject", txid, "--reason", "interop matrix says no")
    done = run(ws, ca, device, "c4.example.com")
    expect(not (device / "device.pem").exists(), "a certificate was written after a reject")
    return "PENDING, rejected; " + refused(ca, done, "badRequest")


@cell("scepclient", "ra-mode")
def ra_mode(ws: Workspace) -> str:
    ca = ws.our_ca(ra=True)
    device = ws.path("dev")
    return enrolled(ws, ca, run(ws, ca, device, "c5.example.com"), device)


@cell("scepclient", "renewal")
def renewal(ws: Workspace) -> str:
    return _renewal(ws, "c6.example.com", CHALLENGE)


@cell("scepclient", "renewal-no-challenge")
def renewal_no_challenge(ws: Workspace) -> str:
    return _renewal(ws, "c7.example.com", None)


def _renewal(ws: Workspace, cn: str, challenge: str | None) -> str:
    ca = ws.our_ca()
    device = ws.path("dev")
    enrolled(ws, ca, run(ws, ca, device, cn), device)
    first = _serial(device / "device.pem")
    if challenge is None:
        (device / "csr.pem").unlink()  # else scepclient re-sends the CSR with the challenge
    done = run(ws, ca, device, cn, challenge)
    if challenge is None:
        csr = x509.load_pem_x509_csr((device / "csr.pem").read_bytes())
        expect(not any(a.oid == x509.oid.AttributeOID.CHALLENGE_PASSWORD
                       for a in csr.attributes), "scepclient put a challenge into the renewal")
    detail = enrolled(ws, ca, done, device)
    expect(ca.message_types() == ["PKCSReq", "RenewalReq"],
           f"expected PKCSReq then RenewalReq, saw {ca.message_types()}")
    expect(_serial(device / "device.pem") != first, "the renewal returned the old certificate")
    return "renewed; " + detail


def _pending(ws: Workspace, ca: OurCA, device: Path, cn: str) -> str:
    """Run scepclient until our CA has answered PENDING and it sleeps; its transaction ID."""
    proc = ws.start(args(ca, device, cn), ws.root / "scepclient-pending.log")
    try:
        txid = ca.pending(cn)
        ca.answered("PENDING")
    finally:
        proc.terminate()  # it sleeps 30 s before re-sending; we re-run it instead
        proc.wait(timeout=10)
    expect(not (device / "device.pem").exists(), "a certificate was written while PENDING")
    return txid


def _serial(pem: Path) -> int:
    return x509.load_pem_x509_certificate(pem.read_bytes()).serial_number
