"""certmonger 0.79.17 `getcert` (the full daemon, on a private D-Bus session bus) against our CA.

We call ../shared/peers/certmonger-enroll.sh in place rather than keep a copy: CI puts a
read-only copy of shared/ beside the checkout, and the script writes only into the directory it
is given (certmonger's state, the private bus, the key and certificate). `CM_NO_LEGACY_SHIM=1`:
our CA answers with AES, so certmonger needs no OpenSSL legacy provider (nor gcc to build one).
certmonger sends AES-256-CBC + SHA-256 and uses GET for PKIOperation.

`renewal` runs tools/interop/certmonger-renew.sh (the same private-bus setup, then `getcert
resubmit`): certmonger renews with a PKCSReq signed by the certificate it holds (not a
RenewalReq), with the same key and the challenge again; our CA takes it as a renewal.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from cryptography import x509

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


@cell("certmonger", "renewal")
def renewal(ws: Workspace) -> str:
    ca = ws.our_ca()
    need("certmonger", "getcert", "dbus-run-session", "dbus-send")
    cn = "cm4.example.com"
    done = ws.run(["bash", str(Path(__file__).with_name("certmonger-renew.sh")),
                   str(ws.root / "cm"), ca.scep_url, str(ca.ca_pem), f"CN={cn},O=Example",
                   CHALLENGE, cn], timeout=150, env={**os.environ, "CM_TIMEOUT": "120"})
    ca.answered("SUCCESS")
    expect(done.returncode == 0, f"getcert request + resubmit failed: "
                                 f"{last_lines(done.stdout + done.stderr)}")
    types = ca.message_types()
    expect(types == ["PKCSReq", "PKCSReq"], f"expected two PKCSReqs, saw {types}")
    first, renewed = ws.root / "cm" / "cert-1.pem", ws.root / "cm" / "cert.pem"
    old, new = (x509.load_pem_x509_certificate(p.read_bytes()) for p in (first, renewed))
    expect(old.serial_number != new.serial_number, "the resubmit returned the old certificate")
    said = (ws.root / "ca-serve.log").read_text(errors="replace")
    renewed_serials = [int(m, 16) for m in re.findall(r" renewed .* renews=([0-9A-Fa-f]+)", said)]
    expect(renewed_serials == [old.serial_number],
           f"our CA did not log the resubmit as a renewal of {old.serial_number:X}")
    return (f"enrolled then renewed {subject_of(renewed)} (renews={old.serial_number:X}); "
            f"{expect_dns_name(renewed, cn)}; {openssl_verify(ws, ca.ca_pem, renewed)}; "
            f"{ca.proxy.summary()}")
