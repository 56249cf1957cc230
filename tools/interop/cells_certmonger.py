"""certmonger 0.79.17 `getcert` (the full daemon, on a private D-Bus session bus) against our CA.

We call ../shared/peers/certmonger-enroll.sh in place rather than keep a copy: CI puts a
read-only copy of shared/ beside the checkout, and the script writes only into the directory it
is given (certmonger's state, the private bus, the key and certificate). `CM_NO_LEGACY_SHIM=1`:
our CA answers with AES, so certmonger needs no OpenSSL legacy provider (nor gcc to build one).
certmonger sends AES-256-CBC + SHA-256 and uses GET for PKIOperation.
"""

from __future__ import annotations

import os
import subprocess

from tools.interop.matrix import cell
from tools.interop.support import (
    CHALLENGE,
    OurCA,
    Workspace,
    expect,
    expect_dns_name,
    last_lines,
    need,
    openssl_verify,
    peers_dir,
    subject_of,
)


def getcert(ws: Workspace, ca: OurCA, cn: str, challenge: str = CHALLENGE,
            ) -> subprocess.CompletedProcess[str]:
    need("certmonger", "getcert", "dbus-run-session", "dbus-send")
    env = {**os.environ, "CM_NO_LEGACY_SHIM": "1", "CM_TIMEOUT": "60"}
    return ws.run(["bash", str(peers_dir() / "certmonger-enroll.sh"), str(ws.root / "cm"),
                   ca.scep_url, str(ca.ca_pem), f"CN={cn},O=Example", challenge, cn],
                  timeout=90, env=env)


def enrolled(ws: Workspace, ca: OurCA, done: subprocess.CompletedProcess[str], cn: str) -> str:
    ca.answered("SUCCESS")
    expect(done.returncode == 0, f"getcert failed after our SUCCESS: "
                                 f"{last_lines(done.stdout + done.stderr)}")
    cert = ws.root / "cm" / "cert.pem"
    return (f"issued {subject_of(cert)}; {expect_dns_name(cert, cn)}; "
            f"{openssl_verify(ws, ca.ca_pem, cert)}; {ca.proxy.summary()}")


@cell("certmonger", "auto")
def auto(ws: Workspace) -> str:
    ca = ws.our_ca()
    return enrolled(ws, ca, getcert(ws, ca, "cm1.example.com"), "cm1.example.com")


@cell("certmonger", "wrong-challenge")
def wrong_challenge(ws: Workspace) -> str:
    ca = ws.our_ca()
    done = getcert(ws, ca, "cm2.example.com", "not-" + CHALLENGE)
    ca.answered("FAILURE", "badRequest")
    expect(done.returncode != 0, "getcert succeeded after our FAILURE")
    expect("CA_REJECTED" in done.stdout, f"certmonger did not end in CA_REJECTED: "
                                         f"{last_lines(done.stdout + done.stderr)}")
    return f"FAILURE badRequest, certmonger CA_REJECTED; {ca.proxy.summary()}"


@cell("certmonger", "ra-mode")
def ra_mode(ws: Workspace) -> str:
    ca = ws.our_ca(ra=True)
    return enrolled(ws, ca, getcert(ws, ca, "cm3.example.com"), "cm3.example.com")
