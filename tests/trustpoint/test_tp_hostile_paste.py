"""Cut-and-paste input beyond test_tp_paste: what an operator's clipboard really holds. A PEM
of the wrong kind (a request, a private key, a CRL), the CA's chain pasted whole and in either
order, CRLF line ends, indentation, `openssl x509 -text` chatter around the block, trailing
junk, a paste with no end. Each is accepted as the reference's rules allow or refused with
one `%` line, nothing appended; never an exception."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import HealthCheck, given, settings

from engine import Engine
from engine.machines.trustpoint import Lifecycle
from tests.trustpoint.tp_support import (
    authenticate,
    declare,
    der,
    event_types,
    identity_and_key,
    issue,
    pem_lines,
    printed_requests,
    rsa_key,
    self_signed_ca,
    status,
)

ROOT_KEY, SUB_KEY = rsa_key(310), rsa_key(311)


def _root(e: Engine) -> x509.Certificate:
    return self_signed_ca(ROOT_KEY, "Paste Root", e.ports.clock.now_us())


def _sub(e: Engine) -> x509.Certificate:
    """A subordinate CA issued by _root (BasicConstraints CA:TRUE)."""
    root = _root(e)
    now = datetime.fromtimestamp(e.ports.clock.now_us() / 1e6, UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string("CN=Paste Sub,O=Elsewhere"))
            .issuer_name(root.subject).public_key(SUB_KEY.public_key()).serial_number(77)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=900))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ROOT_KEY, hashes.SHA256()))


def _terminal(device: Engine) -> None:
    identity_and_key(device)
    declare(device, terminal=True)


def _refused(device: Engine, line: str, paste: list[str]) -> str:
    head, state = device.store.head, device.state
    r = device.execute(line, answers=[*paste, "yes"])
    assert not r.ok and r.events == [], r.output
    assert device.store.head == head and device.state is state
    assert "Traceback" not in r.output
    last = r.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("% "), r.output
    return last


def _pem(data: bytes, kind: str) -> list[str]:
    return pem_lines(data, kind)


# -- crypto ca authenticate ------------------------------------------------------------------------


def test_a_pem_of_the_wrong_kind_is_named(device: Engine) -> None:
    _terminal(device)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name.from_rfc4514_string("CN=x"))
           .sign(rsa_key(312), hashes.SHA256()))
    key = rsa_key(312).private_bytes(serialization.Encoding.DER,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    for paste, kind in ((_pem(csr.public_bytes(serialization.Encoding.DER),
                              "CERTIFICATE REQUEST"), "CERTIFICATE REQUEST"),
                        (_pem(key, "PRIVATE KEY"), "PRIVATE KEY"),
                        (_pem(b"\x30\x03\x02\x01\x01", "X509 CRL"), "X509 CRL")):
        last = _refused(device, "crypto ca authenticate myca", paste)
        assert last == f"% The pasted text is a {kind}, not a CA certificate.", last
    assert status(device).lifecycle is Lifecycle.DECLARED


@pytest.mark.parametrize("order", ["root-first", "sub-first"])
def test_a_chain_pasted_whole(device: Engine, order: str) -> None:
    """Two CA certificates in one paste, in either order: which one to trust is the
    operator's choice, so the paste is refused saying so (it said "malformed DER")."""
    _terminal(device)
    root, sub = _root(device), _sub(device)
    blocks = [der(root), der(sub)] if order == "root-first" else [der(sub), der(root)]
    paste = [line for d in blocks for line in _pem(d, "CERTIFICATE")[:-1]] + [""]
    last = _refused(device, "crypto ca authenticate myca", paste)
    assert last == "% 2 certificates were pasted: paste the CA certificate alone.", last
    assert status(device).lifecycle is Lifecycle.DECLARED


@pytest.mark.parametrize("case", ["crlf", "indented", "openssl-text-around",
                                  "text-after-the-block", "no-end-line"])
def test_a_messy_clipboard_is_read(device: Engine, case: str) -> None:
    """RFC 7468 §2: text around the encapsulation boundaries is permitted and "parsers MUST
    NOT malfunction when processing such data" (it was refused as "not base64")."""
    _terminal(device)
    root = der(_root(device))
    lines = _pem(root, "CERTIFICATE")  # BEGIN, body..., END, ""
    pastes = {
        "crlf": [line + "\r" for line in lines[:-1]] + [""],
        "indented": ["    " + line for line in lines[:-1]] + [""],
        "openssl-text-around": ["Certificate:", "    Data:", "        Version: 3 (0x2)",
                                *lines[:-1], "subject=CN = Paste Root", ""],
        "text-after-the-block": [*lines[:-1], "issuer=CN = Paste Root", ""],
        "no-end-line": [*lines[:-2], ""],
    }
    r = authenticate(device, pasted=pastes[case])
    assert event_types(r) == ["CACertificateAccepted"], r.output
    assert status(device).ca_certificate == root


def test_a_second_block_begun_after_the_first_is_refused(device: Engine) -> None:
    _terminal(device)
    lines = _pem(der(_root(device)), "CERTIFICATE")
    last = _refused(device, "crypto ca authenticate myca",
                    [*lines[:-1], "-----BEGIN CERTIFICATE-----", "MIIB", ""])
    assert last == "% 2 certificates were pasted: paste the CA certificate alone.", last


def test_a_paste_that_never_ends(device: Engine) -> None:
    """10,000 lines of base64 and then the input ends: one `%` line, nothing kept."""
    _terminal(device)
    body = base64.b64encode(b"\x00" * 48).decode()
    last = _refused(device, "crypto ca authenticate myca", [body] * 10_000)
    assert "input ended" in last or "too" in last or "not" in last, last


# -- crypto ca import ----------------------------------------------------------------------------


def test_import_messy_and_wrong_pastes(device: Engine) -> None:
    _terminal(device)
    root = _root(device)
    assert authenticate(device, pasted=_pem(der(root), "CERTIFICATE")).ok
    r = device.execute("crypto ca enroll myca", answers=["cisco123", "cisco123"])
    assert r.ok, r.output
    (csr_der,) = printed_requests(r.output)
    csr = x509.load_der_x509_csr(csr_der)
    now = datetime.fromtimestamp(device.ports.clock.now_us() / 1e6, UTC)
    mine = issue(ROOT_KEY, root, csr.public_key(), csr.subject,  # type: ignore[arg-type]
                 now - timedelta(1), now + timedelta(90))
    line = "crypto ca import myca certificate"
    last = _refused(device, line, _pem(csr_der, "CERTIFICATE REQUEST"))
    assert last == "% The pasted text is a CERTIFICATE REQUEST, not a certificate.", last
    last = _refused(device, line, _pem(der(root), "CERTIFICATE"))
    assert "not for a key pair of trustpoint myca" in last, last
    chain = _pem(der(mine), "CERTIFICATE")[:-1] + _pem(der(root), "CERTIFICATE")
    last = _refused(device, line, chain)
    assert last == "% 2 certificates were pasted: paste the certificate alone.", last
    crlf = [x + "\r" for x in _pem(der(mine), "CERTIFICATE")[:-1]] + [""]
    r = device.execute(line, answers=crlf)
    assert event_types(r) == ["CertificateReceived"], r.output
    assert status(device).lifecycle is Lifecycle.ENROLLED


# -- any clipboard at all -------------------------------------------------------------------------


def _paste_lines(cert_der: bytes) -> st.SearchStrategy[list[str]]:
    real = _pem(cert_der, "CERTIFICATE")[:-1]
    line = st.one_of(
        st.sampled_from(real), st.sampled_from(real).map(lambda s: s + "\r"),
        st.sampled_from(real).map(lambda s: s[: len(s) // 2]),
        st.sampled_from(["-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----",
                         "-----BEGIN PRIVATE KEY-----", "-----BEGIN -----", "-----",
                         "-----BEGIN CERTIFICATE", "quit", "QUIT", " ", "====", "A" * 5000,
                         "\u00e9\u00e9", "\ufeffMIIB", "MII\u0411"]),
        st.text(max_size=80))
    return st.lists(line, max_size=40).map(lambda lines: [*lines, ""])


_CA_DER = der(self_signed_ca(ROOT_KEY, "Paste Root"))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paste=_paste_lines(_CA_DER))
def test_any_clipboard_at_authenticate_is_a_result(device: Engine, paste: list[str]) -> None:
    if "crypto ca trustpoint myca" not in device.execute("show running-config").output:
        _terminal(device)  # (hypothesis runs every example on the one device)
    head = device.store.head
    r = device.execute("crypto ca authenticate myca", answers=[*paste, "yes"])
    assert "Traceback" not in r.output
    if not r.ok:
        assert r.events == [] and device.store.head == head
        assert r.output.rstrip("\n").splitlines()[-1].startswith("% "), r.output
    else:  # only the real certificate's lines, in order, can get here
        assert status(device).ca_certificate == _CA_DER
        device.execute("configure")
        device.execute("no crypto ca trustpoint myca", answers=["yes"])
        device.execute("commit")
        device.execute("end")

