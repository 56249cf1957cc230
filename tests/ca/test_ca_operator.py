"""The CA operator's console: what `ca init`, `ca serve`, `ca requests`, `ca show` and
`demo --dir` print (issue 14 items 9-12)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from engine.ca.console import router_serial
from engine.ca.decide import RENEWAL_REQ, Approval, Policy
from engine.ca.service import challenge_digest, replay
from engine.scep import PkiStatus
from events.filelog import FileEventLog
from projections.certfmt import ios_serial, md5_spaced
from projections.trustpoints import render_ca_offer
from tests.ca.ca_support import ScepTestClient, enroll_cmd, make_ca, rsa_key
from tests.ca.cli_support import REPO, cli, served


def test_init_prints_the_fingerprint_as_the_router_shows_it(tmp_path: Path) -> None:
    out = cli("init", tmp_path / "ca").stdout
    cert = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.pem").read_bytes())
    der = cert.public_bytes(Encoding.DER)
    md5 = hashlib.md5(der).hexdigest().upper()
    expected = [f"Fingerprint:{' '.join(md5[i:i + 2] for i in range(0, 32, 2))}",
                f"SHA256 Fingerprint:{hashlib.sha256(der).hexdigest().upper()}"]
    lines = out.splitlines()
    at = lines.index("The CA certificate's fingerprint, as `crypto ca authenticate` shows it "
                     "on the router:")
    assert lines[at + 1:at + 3] == expected
    # ... and the router's `crypto ca authenticate` prints those very lines.
    router = render_ca_offer(cert.public_bytes(Encoding.DER)).splitlines()
    assert expected[0] in router and expected[1] in router


@pytest.mark.integration
def test_demo_dir_prints_the_command_that_serves_its_ca_again(tmp_path: Path) -> None:
    from engine.demo import run_demo

    out = io.StringIO()
    assert run_demo(out, tmp_path / "demo") == 0
    text = out.getvalue()
    url = re.search(r"enrollment url (http://\S+)", text)
    assert url is not None
    m = re.search(r"^! the CA again, on the URL the trustpoint enrolls at: (.*)$", text, re.M)
    assert m is not None
    argv = shlex.split(m.group(1))
    assert argv[:3] == ["trustledger", "ca", "serve"] and argv[3] == str(tmp_path / "demo" / "ca")
    port = argv[argv.index("--port") + 1]
    assert url.group(1) == f"http://127.0.0.1:{port}"
    # The printed command brings the CA back on that URL (served() adds its own --port 0,
    # which the later --port overrides).
    with served(Path(argv[3]), "--port", port, "--workers", "1") as srv:
        assert srv.url == url.group(1)


@contextmanager
def serving_to(root: Path, out: Path, *args: str) -> Iterator[str]:
    """`ca serve ROOT --port 0 ARGS`, its console written to `out`; yields the SCEP URL."""
    with out.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "engine.ca.cli", "serve", str(root),
                                 "--port", "0", *args], stdout=sink, stderr=subprocess.DEVNULL,
                                text=True, cwd=REPO, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            deadline = time.monotonic() + 30
            while not (m := re.search(r"listening on (http://\S+)", out.read_text())):
                assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
                time.sleep(0.05)
            yield m.group(1) + "/scep"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _console_events(text: str) -> list[tuple[str, str]]:
    """(event, rest) of each console event line: `TIME EVENT key=value ...`."""
    found = []
    for line in text.splitlines():
        m = re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\S+(?: published)?) +(.*)$", line)
        if m:
            found.append((m.group(1), m.group(2)))
    return found


@pytest.mark.integration
def test_serve_prints_one_line_per_request_event(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    cli("init", root)
    console = tmp_path / "console.txt"
    with serving_to(root, console, "--manual", "--challenge", "s3cret-pw") as url:
        wrong = ScepTestClient(url, rsa_key(60), "wrong", signing_time=None)
        assert wrong.enroll("not-it").status is PkiStatus.FAILURE
        waits = ScepTestClient(url, rsa_key(61), "waits", signing_time=None)
        assert waits.enroll("s3cret-pw").status is PkiStatus.PENDING
        denied = ScepTestClient(url, rsa_key(62), "denied", signing_time=None)
        assert denied.enroll("s3cret-pw").status is PkiStatus.PENDING
        cli("approve", root, waits.transaction_id)
        cli("reject", root, denied.transaction_id, "--reason", "unknown device")
        cert = waits.poll().certificate_for(waits.key.public_key())
        assert cert is not None
        serial = ios_serial(cert)
        assert waits.renew(cert).status is PkiStatus.PENDING  # manual: renewals wait too
        cli("approve", root, waits.transaction_id)
        renewed = waits.poll().certificate_for(waits.key.public_key())
        assert renewed is not None
        cli("revoke", root, serial, "--reason", "superseded")
        deadline = time.monotonic() + 10
        while "revoked" not in console.read_text() or "crl published" not in \
                console.read_text().split("revoked", 1)[1]:
            assert time.monotonic() < deadline, console.read_text()
            time.sleep(0.05)
    text = console.read_text()
    assert "s3cret-pw" not in text and "not-it" not in text
    events = _console_events(text)
    names = [e for e, _ in events]
    assert names == ["crl published", "refused", "pending", "pending", "issued", "rejected",
                     "pending", "renewed", "revoked", "crl published"], text
    rest = dict(events[1:-1])  # the second `pending` is the renewal's
    assert rest["refused"] == (f"txid={wrong.transaction_id} subject=\"CN=wrong,O=Example\" "
                               "failInfo=badRequest reason=\"wrong challenge password\"")
    assert events[3][1] == (f"txid={denied.transaction_id} subject=\"CN=denied,O=Example\" "
                            "type=PKCSReq by=challenge:static")
    assert rest["pending"] == (f"txid={waits.transaction_id} subject=\"CN=waits,O=Example\" "
                               "type=RenewalReq by=renewal")
    assert rest["issued"] == (f"txid={waits.transaction_id} serial={serial} "
                              "subject=\"CN=waits,O=Example\" by=challenge:static")
    assert rest["rejected"] == f"txid={denied.transaction_id} reason=\"unknown device\""
    assert rest["renewed"].endswith(f"serial={ios_serial(renewed)} subject=\"CN=waits,"
                                    f"O=Example\" by=renewal renews={serial}")
    assert rest["revoked"] == f"serial={serial} reason=superseded"
    assert re.fullmatch(r"number=2 next_update=\S+Z", events[-1][1])


@pytest.mark.integration
def test_serve_log_json_prints_json_lines(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    cli("init", root)
    console = tmp_path / "console.txt"
    with serving_to(root, console, "--log-json", "--workers", "1") as url:
        client = ScepTestClient(url, rsa_key(63), "json", signing_time=None)
        assert client.enroll("nope").status is PkiStatus.FAILURE
    records = [json.loads(ln) for ln in console.read_text().splitlines() if ln.startswith("{")]
    refused = [r for r in records if r["event"] == "refused"]
    assert refused == [{"event": "refused", "txid": client.transaction_id,
                        "subject": "CN=json,O=Example", "failInfo": "badRequest",
                        "reason": "wrong challenge password",
                        "timestamp": refused[0]["timestamp"]}]


def _history_ca(root: Path) -> tuple[str, str]:
    """A CA whose request AB12 was issued, then renewed under the same transaction ID (as
    micromdm does when it renews with the same key), and AB34, CD56 pending. Returns the
    router-style serials of the first and the renewed certificate."""
    with make_ca(root) as ca:
        ca.crl_url = "http://127.0.0.1:9/crl/ca.crl"
        first = ca.enroll(enroll_cmd(rsa_key(70), "r70", txid="AB12", challenge="pw"),
                          Policy(Approval.AUTO, challenge_digest("pw"))).certificate
        assert first is not None
        renewal = enroll_cmd(rsa_key(70), "r70", txid="AB12", signer=first.certificate,
                             message_type=RENEWAL_REQ)
        second = ca.enroll(renewal, Policy(Approval.AUTO)).certificate
        assert second is not None
        for key, txid in ((71, "AB34"), (72, "CD56")):
            ca.enroll(enroll_cmd(rsa_key(key), f"r{key}", txid=txid), Policy(Approval.MANUAL))
        replayed = replay(FileEventLog.open(root / "log", readonly=True).read())
        assert replayed == ca.state  # the history is folded from the log, like the rest
        return router_serial(first.serial), router_serial(second.serial)


def test_requests_all_keeps_a_request_a_later_one_with_its_id_replaced(tmp_path: Path) -> None:
    _history_ca(tmp_path / "ca")
    rows = cli("requests", tmp_path / "ca", "--all").stdout.splitlines()
    assert [r.split()[:3] for r in rows[1:]] == [
        ["AB12", "issued", "PKCSReq"], ["AB12", "issued", "RenewalReq"],
        ["AB34", "pending", "PKCSReq"], ["CD56", "pending", "PKCSReq"]]
    assert [r.split()[0] for r in cli("requests", tmp_path / "ca").stdout.splitlines()[1:]] \
        == ["AB34", "CD56"]


@pytest.mark.slow
def test_show_and_unique_prefixes(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    first, second = _history_ca(root)
    ambiguous = cli("approve", root, "ab", check=False)
    assert (ambiguous.returncode, ambiguous.stderr) == (
        1, "% ab is ambiguous: it starts the transaction IDs of 2 requests: AB12, AB34\n")
    assert cli("approve", root, "cd").stdout == (
        "Request CD56 approved; the certificate is issued when `ca serve` next runs.\n")
    missing = cli("show", root, "ZZ", check=False)
    assert (missing.returncode, missing.stderr) == (1, "% no certificate or request ZZ\n")

    shown = cli("show", root, "AB12").stdout
    blocks = shown.split("\n\n")
    assert len(blocks) == 2 and blocks[0].startswith("Request AB12\n  Status          : issued")
    assert "  Type            : RenewalReq\n" in blocks[1]
    assert f"  Renews          : {first}\n" in blocks[1]
    assert f"  Certificate     : {second}" in blocks[1]

    cert = cli("show", root, first[:8].lower()).stdout.splitlines()
    assert cert[:3] == [f"Certificate {first}", "  Status          : valid",
                        "  Subject         : CN=r70,O=Example"]
    assert f"  Renewed by      : {second}" in cert
    pem = "\n".join(cert[cert.index("-----BEGIN CERTIFICATE-----"):]) + "\n"
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    assert f"  Fingerprint:{md5_spaced(der)}" in cert

    # A revocation cannot be undone: a prefix names the certificate but revokes nothing.
    prefix = cli("revoke", root, first[:8], "--reason", "superseded", check=False)
    assert (prefix.returncode, prefix.stderr) == (
        1, f"% Revoking needs the whole serial number: {first[:8]} matches {first} "
           "(CN=r70,O=Example).\n")
    assert "revoked" not in cli("list", root).stdout
    whole = ":".join(first[i:i + 2] for i in range(0, len(first), 2)).lower()  # 0a:1b:...
    revoked = cli("revoke", root, whole, "--reason", "superseded").stdout
    assert revoked == f"Certificate {first} revoked (superseded); CRL number 2 issued.\n"
    listing = cli("list", root).stdout
    assert f"{first}  revoked (superseded)" in listing and second in listing


def test_ca_show_names_the_key_that_signed_a_request() -> None:
    """Issue 13 item 2: which key signed the pkiMessage is recorded, and `ca show` says it."""
    import dataclasses

    from engine.ca.cli import _request_lines
    from engine.ca.state import Request

    spki = b"requested key SPKI"
    other = hashlib.sha256(b"throwaway identity SPKI").digest()
    base = Request("AB12", 19, b"", "CN=r1", spki, b"", b"", "challenge", None, 0)
    own = dataclasses.replace(base, signer_key_sha256=hashlib.sha256(spki).digest())
    assert "  Signed with     : the requested key" in _request_lines(own)
    foreign = dataclasses.replace(base, signer_key_sha256=other)
    assert (f"  Signed with     : another key (SPKI SHA-256 {other.hex().upper()})"
            in _request_lines(foreign))
    assert not any("Signed with" in ln for ln in _request_lines(base))  # offline: not known
