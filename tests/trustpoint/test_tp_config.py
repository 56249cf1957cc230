"""Trustpoint configuration (issue 6 item 1): every line and its `no` form through commit and
`show running-config`, the default SCEP path, `enrollment terminal` vs `enrollment url`, the
ranges, and `no crypto ca trustpoint` taking the certificates with it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509

from engine import Engine
from engine.destruction import REMOVE_QUESTION
from engine.machines.trustpoint import Lifecycle
from engine.trustpoints import trustpoint_config
from events.trustpoint import TrustpointCertificatesRemoved
from projections.certfmt import ios_serial, sha256_hex
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    configure,
    declare,
    enroll,
    identity_and_key,
    run,
    status,
)

TP = "crypto ca trustpoint myca"

# (line as typed, the short `no` form that must remove it too)
LINES = [
    ("enrollment url http://10.0.0.1:8080/scep", "no enrollment url"),
    ("enrollment terminal", "no enrollment terminal"),
    ("query url ldap://10.0.0.2/cn=Root%20CA,o=Example", "no query url"),
    ("enrollment retry period 5", "no enrollment retry period"),
    ("enrollment retry count 7", "no enrollment retry count"),
    ("rsakeypair mykey", "no rsakeypair"),
    ("subject-name CN=r1,O=Example", "no subject-name"),
    ("ip-address 10.1.1.1", "no ip-address"),
    ("serial-number", "no serial-number"),
    ("crl optional", "no crl optional"),
    ("message-digest sha256", "no message-digest"),
    ("description core router CA", "no description"),
]


def running(e: Engine) -> list[str]:
    return e.execute("show running-config").output.splitlines()


def block(e: Engine, name: str = "myca") -> list[str]:
    """The lines of the trustpoint's block in the running configuration."""
    lines = running(e)
    start = lines.index(f"crypto ca trustpoint {name}")
    out = []
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            break
        out.append(line.strip())
    return out


@pytest.mark.parametrize(("line", "short_no"), LINES, ids=[ln for ln, _ in LINES])
def test_line_and_both_no_forms_round_trip(device: Engine, line: str, short_no: str) -> None:
    configure(device, TP, line)
    assert block(device) == [line]
    configure(device, TP, f"no {line}")
    assert block(device) == []
    configure(device, TP, line)
    assert block(device) == [line]
    configure(device, TP, short_no)
    assert block(device) == []


def test_every_line_together_and_their_meaning(device: Engine) -> None:
    configure(device, TP, *(ln for ln, _ in LINES if ln != "enrollment terminal"))
    assert sorted(block(device)) == sorted(ln for ln, _ in LINES if ln != "enrollment terminal")
    cfg = trustpoint_config(device.state, "myca")
    assert cfg is not None
    assert (cfg.enrollment_url, cfg.terminal, cfg.retry_period, cfg.retry_count) == (
        "http://10.0.0.1:8080/scep", False, 5, 7)
    assert (cfg.key_label, cfg.subject_name, cfg.ip_address, cfg.serial_number,
            cfg.crl_optional, cfg.message_digest, cfg.description) == (
        "mykey", "CN=r1,O=Example", "10.1.1.1", True, True, "sha256", "core router CA")
    assert cfg.query_url == "ldap://10.0.0.2/cn=Root%20CA,o=Example"


def test_uncommitted_lines_are_not_running(device: Engine) -> None:
    run(device, "configure", TP, "enrollment retry count 9")
    assert "crypto ca trustpoint myca" not in running(device)
    run(device, "abort")
    assert trustpoint_config(device.state, "myca") is None


def test_defaults_shown(device: Engine) -> None:
    configure(device, TP)
    out = device.execute("show crypto ca trustpoint myca").output
    assert "State               :declared" in out
    assert "Enrollment          :not configured" in out
    assert "Key pair            :the_default" in out
    assert "Retry period        :1 minute(s)" in out
    assert "Retry count         :10" in out


@pytest.mark.parametrize(("url", "used"), [
    ("http://xyz-ultra5", "http://xyz-ultra5/cgi-bin/pkiclient.exe"),
    ("http://10.0.0.1:8080", "http://10.0.0.1:8080/cgi-bin/pkiclient.exe"),
    ("http://10.0.0.1:8080/", "http://10.0.0.1:8080/cgi-bin/pkiclient.exe"),
    ("http://10.0.0.1:8080/scep", "http://10.0.0.1:8080/scep"),
    ("http://ca.example.com/certsrv/mscep/mscep.dll",
     "http://ca.example.com/certsrv/mscep/mscep.dll"),
])
def test_enrollment_url_default_path(device: Engine, url: str, used: str) -> None:
    configure(device, TP, f"enrollment url {url}")
    assert f" enrollment url {url}" in running(device)  # stored as typed
    out = device.execute("show crypto ca trustpoint myca").output
    assert f"Enrollment          :url {used}\n" in out


def test_terminal_replaces_url_and_back(device: Engine) -> None:
    configure(device, TP, "enrollment url http://10.0.0.1")
    configure(device, TP, "enrollment terminal")
    assert block(device) == ["enrollment terminal"]
    cfg = trustpoint_config(device.state, "myca")
    assert cfg is not None and cfg.terminal and cfg.enrollment_url is None
    assert "Enrollment          :terminal" in device.execute("show crypto ca trustpoint").output
    configure(device, TP, "enrollment url http://10.0.0.9")
    assert block(device) == ["enrollment url http://10.0.0.9"]
    cfg = trustpoint_config(device.state, "myca")
    assert cfg is not None and not cfg.terminal


@pytest.mark.parametrize(("line", "bad"), [
    ("enrollment retry period 0", "0"),
    ("enrollment retry period 61", "61"),
    ("enrollment retry count 0", "0"),
    ("enrollment retry count 101", "101"),
    ("enrollment retry count -1", "-1"),
    ("enrollment retry period x", "x"),
])
def test_ranges_refused_with_caret(device: Engine, line: str, bad: str) -> None:
    run(device, "configure", TP)
    prompt = device.prompt
    r = device.execute(line)
    assert not r.ok
    caret_line, message = r.output.splitlines()[:2]
    assert message == "% Invalid input detected at '^' marker."
    assert caret_line.index("^") == len(prompt) + line.rindex(bad)
    assert caret_line.strip() == "^"
    run(device, "commit", "end")
    assert block(device) == []  # the refused line changed nothing


@pytest.mark.parametrize("line", ["enrollment retry period 1", "enrollment retry period 60",
                                  "enrollment retry count 1", "enrollment retry count 100"])
def test_range_bounds_accepted(device: Engine, line: str) -> None:
    configure(device, TP, line)
    assert block(device) == [line]


@pytest.mark.integration
def test_no_trustpoint_removes_its_certificates(
        device: Engine, ca_factory: CAFactory, open_engine: Callable[..., Engine]) -> None:
    ca, server = ca_factory()
    identity_and_key(device)
    declare(device, url=server.url)
    assert authenticate(device).ok
    assert enroll(device, password=ca.mint_challenge()).ok
    assert status(device).lifecycle is Lifecycle.ENROLLED
    certs = device.execute("show crypto ca certificates").output
    assert "Router certificate" in certs

    # Removed but not committed: nothing happens to the certificates.
    run(device, "configure", f"no {TP}", "abort")
    assert device.execute("show crypto ca certificates").output == certs

    st = status(device)
    assert st.ca_certificate is not None
    ((_, router),) = [(c.usage, c.der) for c in st.certificates]
    ca_cert, rc = x509.load_der_x509_certificate(st.ca_certificate), \
        x509.load_der_x509_certificate(router)
    head = device.store.head[0]

    # Commit asks, naming the certificates; "no" commits nothing and keeps the target.
    run(device, "configure", f"no {TP}")
    r = device.execute("commit", answers=["no"])
    assert r.ok and r.events == [] and device.store.head[0] == head
    named = ("% Trustpoint myca holds certificates that will be destroyed:\n"
             f"%   CA certificate serial {ios_serial(ca_cert)} "
             f"SHA256 {sha256_hex(st.ca_certificate)}\n"
             f"%   router (general purpose) certificate serial {ios_serial(rc)} "
             f"SHA256 {sha256_hex(router)}\n")
    assert r.output == (named + REMOVE_QUESTION + "no\n"
                        "% Commit cancelled: nothing was committed.\n")
    assert device.execute("do show crypto ca certificates").output == certs
    r = device.execute("end", answers=["yes", "yes"])  # `end` commits through the same question
    assert r.ok and r.output == ("Uncommitted changes found, commit them? [yes]:yes\n"
                                 + named + REMOVE_QUESTION + "yes\n"
                                 "%PKI-4-TRUSTPOINT_REMOVED: trustpoint myca removed by "
                                 "commit: 2 certificates destroyed\n")
    removed, _committed = (rec.event for rec in r.events)
    assert removed == TrustpointCertificatesRemoved(
        "myca", "commit", _committed.commit_id, ("ca", "general"),  # type: ignore[attr-defined]
        (ios_serial(ca_cert), ios_serial(rc)), (sha256_hex(st.ca_certificate),
                                                sha256_hex(router)))
    assert "myca" not in device.state.trustpoints
    assert device.execute("show crypto ca certificates").output == ""
    assert device.execute("show crypto ca trustpoint").output == ""
    r = device.execute("show crypto ca certificates myca")
    assert not r.ok and "not configured" in r.output

    # Declaring it again starts from nothing, and so does a replay of the log.
    declare(device, url=server.url)
    assert status(device).lifecycle is Lifecycle.DECLARED
    assert status(device).ca_certificate is None
    assert device.execute("show crypto ca certificates").output == ""
    device.close()
    again = open_engine()
    assert status(again).lifecycle is Lifecycle.DECLARED
    assert again.execute("show crypto ca certificates").output == ""
