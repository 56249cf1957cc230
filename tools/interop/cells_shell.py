"""Our client (`trustledger exec`, the batch frontend) against micromdm's `scepserver` 2.1.0
(../shared/peers/scep-server.sh), as an operator would run the reference example session.

What the device installed is read back from its own log (`trustledger log show --json`:
CertificateReceived / EnrollmentFailed events), so `openssl verify` checks the certificate the
device holds, not a copy from micromdm's depot.

micromdm refuses a second certificate for a DN that already has one unless the first expires
within `-allowrenew` days (default 14): the usage-keys cells run once with `-allowrenew 0` (both
certificates issued) and once with the default, where the second request is refused by the peer's
policy; there the cell checks that our transcript says which certificate was issued, which was
refused, and why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tools.interop.matrix import cell
from tools.interop.support import (
    CHALLENGE,
    PeerCA,
    PeerFault,
    Workspace,
    expect,
    last_lines,
    openssl_verify,
    subject_of,
)

MICROMDM_DUPLICATE_DN = ("micromdm scepserver 2.1.0 refuses a second certificate for a DN that "
                         "has one unless it expires within -allowrenew days (default 14), so "
                         "usage keys with one subject cannot both enroll")

SESSION = """\
configure
hostname {hostname}
domain name mydomain.com
end
yes
crypto key generate rsa{usage} mykey
{sizes}
configure
crypto ca trustpoint myca
enrollment url {url}
enrollment retry count 25
enrollment retry period 2
rsakeypair mykey
{extra}end
yes
crypto ca authenticate myca
yes
crypto ca enroll myca
{challenge}
{challenge}
show crypto ca certificates
show crypto ca trustpoint myca
"""


@dataclass
class Session:
    transcript: str
    certificates: list[tuple[str, bytes]]  # (usage, DER) the device installed
    failures: list[dict[str, object]]  # EnrollmentFailed payloads


def session(ws: Workspace, mdm: PeerCA, *, hostname: str, usage_keys: bool = False,
            extra: tuple[str, ...] = (), challenge: str = CHALLENGE) -> Session:
    data = ws.root / "device"
    script = ws.root / "session.txt"
    script.write_text(SESSION.format(
        hostname=hostname, usage=" usage-keys" if usage_keys else "",
        sizes="\n" * (1 if usage_keys else 0), url=mdm.scep_url,
        extra="".join(f"{line}\n" for line in extra),
        challenge=challenge))
    done = ws.trustledger("exec", "--data", data, "-f", script, timeout=120)
    transcript = done.stdout + done.stderr
    expect("Traceback" not in transcript, f"a traceback in the transcript: "
                                          f"{last_lines(transcript, 3)}")
    shown = ws.trustledger("log", "show", data, "--json")
    expect(shown.returncode == 0, f"log show failed: {last_lines(shown.stderr)}")
    events = [json.loads(line) for line in shown.stdout.splitlines() if line.startswith("{")]
    certs = [(str(e["payload"]["usage"]), bytes.fromhex(e["payload"]["certificate"]))
             for e in events if e["type"] == "CertificateReceived"]
    failures = [e["payload"] for e in events if e["type"] == "EnrollmentFailed"]
    return Session(transcript, certs, failures)


def installed(ws: Workspace, mdm: PeerCA, s: Session, count: int = 1) -> str:
    expect(len(s.certificates) == count,
           f"the device installed {len(s.certificates)} certificate(s), expected {count}: "
           f"{_percent_lines(s.transcript)} ({mdm.proxy.summary()})")
    expect("%PKI-6-CERTRET: Certificate received from Certificate Authority" in s.transcript,
           "the transcript does not say the certificate was received")
    notes = [f"{usage}: {subject_of(der) or '(empty subject)'}, "
             f"{openssl_verify(ws, mdm.ca_pem, der)}" for usage, der in s.certificates]
    return "; ".join(notes)


@cell("scepserver", "reference-session")
def reference_session(ws: Workspace) -> str:
    mdm = ws.scepserver()
    s = session(ws, mdm, hostname="myrouter")
    detail = installed(ws, mdm, s)
    expect("Status             :Available" in s.transcript,
           "show crypto ca certificates does not show the router certificate as Available")
    return f"{detail}; {mdm.proxy.summary()}"


@cell("scepserver", "usage-keys")
def usage_keys(ws: Workspace) -> str:
    mdm = ws.scepserver(flags=("-allowrenew", "0"))
    s = session(ws, mdm, hostname="ukrouter", usage_keys=True)
    detail = installed(ws, mdm, s, count=2)
    expect(sorted(u for u, _ in s.certificates) == ["encryption", "signature"],
           f"usages installed: {[u for u, _ in s.certificates]}")
    return f"-allowrenew 0: {detail}"


@cell("scepserver", "usage-keys-default-policy", known_peer_bug=MICROMDM_DUPLICATE_DN)
def usage_keys_default_policy(ws: Workspace) -> str:
    mdm = ws.scepserver()
    s = session(ws, mdm, hostname="udrouter", usage_keys=True)
    if len(s.certificates) == 2:
        return f"both usage-key certificates issued under the default policy: " \
               f"{installed(ws, mdm, s, count=2)}"
    refusals = mdm.log_errors()
    expect(len(s.certificates) == 1 and refusals,
           f"expected one certificate issued and one refused, the device has "
           f"{len(s.certificates)}; scepserver: {refusals}; {_percent_lines(s.transcript)}")
    got, der = s.certificates[0]
    openssl_verify(ws, mdm.ca_pem, der)
    lost = "encryption" if got == "signature" else "signature"
    said = _percent_lines(s.transcript)
    # Our side: the transcript names the refused key's usage and the CA's reason, and the
    # issued one is installed and said to be.
    expect(_same_line(said, lost, REFUSED),
           f"the transcript does not say the {lost} certificate was refused: {said!r}")
    expect(_same_line(s.transcript, got, ISSUED),
           f"the transcript does not say the {got} certificate was issued: {said!r}")
    expect("badRequest" in said, f"the transcript does not give the CA's failInfo: {said!r}")
    raise PeerFault(f"{got} certificate issued and installed, {lost} refused "
                    f"(scepserver: {refusals[0]}); our transcript says so", MICROMDM_DUPLICATE_DN)


@cell("scepserver", "subject-name")
def subject_name(ws: Workspace) -> str:
    mdm = ws.scepserver()
    s = session(ws, mdm, hostname="snrouter",
                extra=("subject-name CN=sn.example.com,O=Example,C=US",))
    detail = installed(ws, mdm, s)
    subject = subject_of(s.certificates[0][1])
    expect(set(subject.split(",")) == {"CN=sn.example.com", "O=Example", "C=US"},
           f"issued subject {subject!r}, configured CN=sn.example.com,O=Example,C=US")
    return detail


@cell("scepserver", "get-only")
def get_only(ws: Workspace) -> str:
    # A CA whose GetCACaps lacks POSTPKIOperation (the proxy drops it and answers 405 to a POST)
    mdm = ws.scepserver(get_only=True)
    s = session(ws, mdm, hostname="gorouter")
    methods = sorted({x.method for x in mdm.proxy.operations()})
    expect(methods == ["GET"], f"PKIOperation sent as {methods} to a CA without "
                               f"POSTPKIOperation ({mdm.proxy.summary()})")
    return f"{installed(ws, mdm, s)}; {mdm.proxy.summary()}"


# micromdm 2.1.0 offers AES and DES3, SHA-1 and SHA-256 (and answers in DES + SHA-1 whatever it
# is sent). The proxy narrows GetCACaps to one cipher and one digest; our client must pick them
# (engine/scep/caps.py: the strongest advertised) and micromdm must issue.
CIPHERS = {"AES": "aes128_cbc", "DES3": "tripledes_3key"}  # asn1crypto's names
DIGESTS = {"SHA-256": "sha256", "SHA-1": "sha1"}


def _algorithms(ws: Workspace, cipher: str, digest: str, hostname: str) -> str:
    mdm = ws.scepserver(caps=(cipher, digest, "POSTPKIOperation", "Renewal"))
    s = session(ws, mdm, hostname=hostname)
    detail = installed(ws, mdm, s)
    sent = {(x.request.cipher, x.request.digest) for x in mdm.proxy.operations()
            if x.request is not None}
    want = (CIPHERS[cipher], DIGESTS[digest])
    expect(sent == {want}, f"GetCACaps offered only {cipher} and {digest}; our requests used "
                           f"{sorted(sent)} ({mdm.proxy.summary()})")
    return f"caps {cipher} {digest}: requests {want[0]} + {want[1]}; {detail}"


@cell("scepserver", "aes-sha256")
def aes_sha256(ws: Workspace) -> str:
    return _algorithms(ws, "AES", "SHA-256", "alg1")


@cell("scepserver", "aes-sha1")
def aes_sha1(ws: Workspace) -> str:
    return _algorithms(ws, "AES", "SHA-1", "alg2")


@cell("scepserver", "des3-sha256")
def des3_sha256(ws: Workspace) -> str:
    return _algorithms(ws, "DES3", "SHA-256", "alg3")


@cell("scepserver", "des3-sha1")
def des3_sha1(ws: Workspace) -> str:
    return _algorithms(ws, "DES3", "SHA-1", "alg4")


@cell("scepserver", "wrong-challenge")
def wrong_challenge(ws: Workspace) -> str:
    mdm = ws.scepserver()
    s = session(ws, mdm, hostname="wcrouter", challenge="not-" + CHALLENGE)
    replies = mdm.proxy.replies()
    expect(replies and replies[-1].pki_status == "FAILURE",
           f"scepserver did not refuse ({mdm.proxy.summary()})")
    expect(not s.certificates, "the device installed a certificate after a FAILURE")
    said = _percent_lines(s.transcript)
    expect(re.search(r"% Certificate enrollment for trustpoint myca failed[^\n]*badRequest",
                     said), f"no clear % message with the failInfo: {said!r}")
    expect(s.failures and s.failures[-1].get("fail_info") == "badRequest",
           f"EnrollmentFailed events: {s.failures}")
    return f"{said.splitlines()[-1]}; {mdm.proxy.summary()}"


REFUSED = r"(refus|reject|fail|denied|badRequest)"
ISSUED = r"(receiv|issu|install|granted)"


def _same_line(text: str, usage: str, verb: str) -> bool:
    """Some line names the key usage and the verb (in either order)."""
    return any(re.search(rf"\b{usage}\b", ln, re.IGNORECASE) and re.search(verb, ln, re.I)
               for ln in text.splitlines())


PROMPTS = ("% Start certificate enrollment", "% Create a challenge password",
           "% For security reasons", "% Please make a note", "% New data directory")


def _percent_lines(transcript: str) -> str:
    """The transcript's `%` lines, without the fixed ones `crypto ca enroll` always prints."""
    return "\n".join(ln for ln in transcript.splitlines()
                     if ln.startswith("%") and not ln.startswith(PROMPTS))
