"""Cut-and-paste enrollment, `enrollment terminal` (issue 7): the CA certificate pasted at
`crypto ca authenticate`, the request(s) printed by `crypto ca enroll`, signed outside the
device — (a) by `openssl x509 -req` with an openssl-made CA, (b) by `trustledger ca sign DIR
--csr FILE` with the built-in CA — and pasted back with `crypto ca import`; general and usage
keys (either order); and everything that must be refused with nothing stored."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import Engine
from engine.ca.service import BuiltinCA
from engine.keys import KeyAlgorithm
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from engine.scep import parse_csr
from events.trustpoint import CACertificateAccepted, CertificateReceived, EnrollmentRequested
from tests.trustpoint.tp_support import (
    authenticate,
    backwards,
    declare,
    der,
    event_types,
    identity_and_key,
    issue,
    make_ca,
    openssl,
    pem_lines,
    printed_requests,
    rsa_key,
    self_signed_ca,
    spki_of,
    status,
)

PW = "paste-challenge-5501"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clock() -> FakeClock:
    # openssl stamps certificates with the machine's clock: the device lives a minute later.
    return FakeClock(time.time_ns() // 1000 + 60_000_000)


# -- the two offline CAs ------------------------------------------------------------------------


class OfflineCA(Protocol):
    """Something that signs a PKCS#10 request handed over on paper (well, in a file)."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def sign(self, csr_der: bytes, work: Path) -> bytes: ...


@dataclass
class OpenSSLCA:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    work: Path

    @classmethod
    def make(cls, work: Path) -> OpenSSLCA:
        work.mkdir(parents=True, exist_ok=True)
        key = rsa_key(300)
        (work / "ca.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "3650",
                "-subj", "/O=Example/CN=OpenSSL Test CA", "-addext",
                "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign,cRLSign",
                cwd=work)
        cert = x509.load_pem_x509_certificate((work / "ca.pem").read_bytes())
        return cls(cert, key, work)

    def sign(self, csr_der: bytes, work: Path) -> bytes:
        (work / "req.der").write_bytes(csr_der)
        openssl("req", "-inform", "DER", "-in", "req.der", "-out", "req.pem", cwd=work)
        openssl("req", "-in", "req.pem", "-verify", "-noout", cwd=work)
        openssl("x509", "-req", "-in", "req.pem", "-CA", str(self.work / "ca.pem"), "-CAkey",
                str(self.work / "ca.key"), "-set_serial", "0x2A2A", "-days", "30", "-outform",
                "DER", "-out", "router.der", cwd=work)
        return (work / "router.der").read_bytes()


@dataclass
class BuiltinCLI:
    """The built-in CA through its command line: `trustledger ca sign DIR --csr FILE`, fed the
    request exactly as the device printed it."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    root: Path

    def sign(self, csr_der: bytes, work: Path) -> bytes:
        work.mkdir(parents=True, exist_ok=True)
        (work / "printed.txt").write_text("\n".join(pem_lines(csr_der, "CERTIFICATE REQUEST")))
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", "ca", "sign", str(self.root), "--csr",
             str(work / "printed.txt"), "--out", str(work / "router.pem")],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, (done.stdout, done.stderr)
        cert = x509.load_pem_x509_certificate((work / "router.pem").read_bytes())
        # It went through the CA's books: the log lists it as issued.
        with BuiltinCA.open(self.root, readonly=True) as ca:
            assert der(cert) in {c.certificate for c in ca.certificates()}
        return der(cert)


@pytest.fixture(params=["openssl", "builtin"])
def offline_ca(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> OfflineCA:
    if request.param == "openssl":
        return OpenSSLCA.make(tmp_path / "openssl-ca")
    root = tmp_path / "builtin-ca"
    with make_ca(root, clock) as ca:  # closed again: `ca sign` takes the CA's lock
        cert, key = ca.signer()
    assert isinstance(key, rsa.RSAPrivateKey)
    return BuiltinCLI(cert, key, root)


# -- driving the device --------------------------------------------------------------------------


def terminal_device(device: Engine, ca: OfflineCA, *, usage_keys: bool = False) -> None:
    identity_and_key(device, usage_keys=usage_keys)
    declare(device, terminal=True)
    r = authenticate(device, pasted=pem_lines(der(ca.certificate)))
    assert event_types(r) == ["CACertificateAccepted"], r.output
    assert r.output.startswith("Enter the base 64 encoded CA certificate.\n"
                               "End with a blank line or the word \"quit\" on a line by itself\n")
    assert "Do you accept this certificate?? [yes/no]:yes" in r.output
    ev = r.events[0].event
    assert isinstance(ev, CACertificateAccepted) and ev.source == "terminal"


def enroll_terminal(device: Engine) -> list[bytes]:
    r = device.execute("crypto ca enroll myca", answers=[PW, PW])
    assert event_types(r) == ["EnrollmentRequested"], r.output
    ev = r.events[0].event
    assert isinstance(ev, EnrollmentRequested) and ev.method == "terminal"
    assert PW not in r.output
    assert status(device).lifecycle is Lifecycle.ENROLLING
    return printed_requests(r.output)


def paste_certificate(device: Engine, cert_der: bytes) -> str:
    r = device.execute("crypto ca import myca certificate", answers=pem_lines(cert_der))
    assert event_types(r) == ["CertificateReceived"], r.output
    ev = r.events[0].event
    assert isinstance(ev, CertificateReceived) and ev.certificate == cert_der
    return r.output


# -- full enrollments ------------------------------------------------------------------------------


def test_general_purpose(device: Engine, offline_ca: OfflineCA, tmp_path: Path) -> None:
    terminal_device(device, offline_ca)
    (csr_der,) = enroll_terminal(device)
    req = parse_csr(csr_der)
    assert req.challenge_password == PW
    (pair,) = device.state.keys.pairs_of(KeyAlgorithm.RSA, "mykey")
    assert spki_of(req.csr.public_key()) == pair.public_key
    assert [a.value for a in req.subject] == ["myrouter.mydomain.com"]

    cert_der = offline_ca.sign(csr_der, tmp_path)
    out = paste_certificate(device, cert_der)
    assert out.endswith("% Certificate successfully imported.\n")
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED and st.enrollment is None
    assert [c.der for c in st.certificates] == [cert_der]
    if isinstance(offline_ca, BuiltinCLI):  # the CA's profile copies the requested SAN
        san = x509.load_der_x509_certificate(cert_der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["myrouter.mydomain.com"]
    shown = device.execute("show crypto ca certificates").output
    assert "Router certificate\nKey usage          :General Purpose\n" \
           "Status             :Available\n" in shown
    assert "Enrollment          :terminal" in device.execute("show crypto ca trustpoint").output
    # The pasted request never reaches the log: neither does its challenge password.
    for seg in (device.data_dir / "log").iterdir():  # type: ignore[operator]
        assert PW.encode() not in seg.read_bytes()


@pytest.mark.parametrize("order", [("signature", "encryption"), ("encryption", "signature")])
def test_usage_keys_either_order(device: Engine, offline_ca: OfflineCA, tmp_path: Path,
                                 order: tuple[str, str]) -> None:
    terminal_device(device, offline_ca, usage_keys=True)
    r = device.execute("crypto ca enroll myca", answers=[PW, PW])
    assert "% The Signature certificate request follows:" in r.output
    assert "% The Encryption certificate request follows:" in r.output
    requests = printed_requests(r.output)
    assert len(requests) == 2
    pairs = {p.usage.value: p for p in device.state.keys.pairs_of(KeyAlgorithm.RSA, "mykey")}
    by_usage = {}
    for i, csr_der in enumerate(requests):
        work = tmp_path / f"sign{i}"
        work.mkdir()
        csr = parse_csr(csr_der)
        usage = next(u for u, p in pairs.items() if p.public_key == spki_of(csr.csr.public_key()))
        by_usage[usage] = offline_ca.sign(csr_der, work)
    assert set(by_usage) == {"signature", "encryption"}

    first, second = order
    out = paste_certificate(device, by_usage[first])
    assert out.endswith(f"% {first.capitalize()} certificate imported; enter the command again "
                        f"for the {second.capitalize()} certificate.\n")
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLING and len(st.certificates) == 1
    shown = device.execute("show crypto ca trustpoint myca").output
    assert "  Certificates in   :1 of 2" in shown

    # The same one again is refused; the other one completes the enrollment.
    refused(device, by_usage[first], "already imported")
    out = paste_certificate(device, by_usage[second])
    assert out.endswith("% Certificate successfully imported.\n")
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED
    assert [c.usage for c in st.certificates] == ["signature", "encryption"]
    shown = device.execute("show crypto ca certificates").output
    assert "Key usage          :Signature" in shown and "Key usage          :Encryption" in shown


# -- refusals: nothing stored ---------------------------------------------------------------------


def refused(device: Engine, paste: bytes | list[str], words: str) -> str:
    head, state = device.store.head, device.state
    lines = paste if isinstance(paste, list) else pem_lines(paste)
    r = device.execute("crypto ca import myca certificate", answers=lines)
    assert not r.ok and r.events == [], r.output
    assert device.store.head == head and device.state is state
    last = r.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("% ") and words in last, r.output
    return last


@pytest.fixture
def waiting(device: Engine, offline_ca: OfflineCA) -> tuple[Engine, OfflineCA, bytes]:
    """A device with a printed general-purpose request waiting for its certificate."""
    terminal_device(device, offline_ca)
    (csr_der,) = enroll_terminal(device)
    return device, offline_ca, csr_der


def _now(device: Engine) -> datetime:
    return datetime.fromtimestamp(device.ports.clock.now_us() / 1e6, UTC)


def _our_key(device: Engine) -> rsa.RSAPublicKey:
    csr_subject_key = device.state.keys.pairs_of(KeyAlgorithm.RSA, "mykey")[0].public_key
    key = serialization.load_der_public_key(csr_subject_key)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_refuse_junk(waiting: tuple[Engine, OfflineCA, bytes]) -> None:
    device, _, _ = waiting
    refused(device, ["this is not base64 at all!", ""], "not base64")
    refused(device, [base64.b64encode(b"just some bytes, not DER").decode(), ""],
            "not a valid X.509 certificate")
    refused(device, [""], "No certificate was pasted")
    assert status(device).lifecycle is Lifecycle.ENROLLING


def test_refuse_truncated(waiting: tuple[Engine, OfflineCA, bytes], tmp_path: Path) -> None:
    device, ca, csr_der = waiting
    good = ca.sign(csr_der, tmp_path)
    refused(device, [*pem_lines(good)[:-3], "-----END CERTIFICATE-----", ""],
            "not a valid X.509 certificate")


def test_refuse_certificate_for_another_key(waiting: tuple[Engine, OfflineCA, bytes]) -> None:
    device, ca, _ = waiting
    now = _now(device)
    other = issue(ca.key, ca.certificate, rsa_key(5).public_key(),
                  x509.Name.from_rfc4514_string("CN=someone else"), now - timedelta(1),
                  now + timedelta(30))
    refused(device, der(other), "not for a key pair of trustpoint myca")


def test_refuse_another_cas_certificate(waiting: tuple[Engine, OfflineCA, bytes]) -> None:
    device, ca, _ = waiting
    now = _now(device)
    other_key = rsa_key(301)
    other_ca = self_signed_ca(other_key, "Unrelated CA", device.ports.clock.now_us())
    for_us = issue(other_key, other_ca, _our_key(device),
                   x509.Name.from_rfc4514_string("CN=myrouter.mydomain.com"),
                   now - timedelta(1), now + timedelta(30))
    refused(device, der(for_us), "not issued by the trustpoint's CA")
    # Same issuer name as our CA, signed with another key: still not from our CA.
    forged = issue(other_key, ca.certificate, _our_key(device),
                   x509.Name.from_rfc4514_string("CN=myrouter.mydomain.com"),
                   now - timedelta(1), now + timedelta(30))
    refused(device, der(forged), "not issued by the trustpoint's CA")
    # The CA's own certificate is not ours either.
    refused(device, der(ca.certificate), "not for a key pair of trustpoint myca")


def test_refuse_expired_and_not_yet_valid(waiting: tuple[Engine, OfflineCA, bytes]) -> None:
    device, ca, _ = waiting
    now = _now(device)
    subject = x509.Name.from_rfc4514_string("CN=myrouter.mydomain.com")
    expired = issue(ca.key, ca.certificate, _our_key(device), subject,
                    now - timedelta(days=60), now - timedelta(days=1))
    refused(device, der(expired), "has expired")
    future = issue(ca.key, ca.certificate, _our_key(device), subject,
                   now + timedelta(days=2), now + timedelta(days=60))
    refused(device, der(future), "not valid yet")
    assert status(device).certificates == ()


def test_refuse_a_ca_certificate_or_one_valid_at_no_time(
        waiting: tuple[Engine, OfflineCA, bytes]) -> None:
    """RFC 5280 §4.2.1.9: a certificate whose cA is TRUE makes the router's key a
    certificate signer under the trustpoint's CA, which the request did not ask for; one
    that ends before it begins (§4.1.2.5) is valid at no time."""
    device, ca, _ = waiting
    now = _now(device)
    subject = x509.Name.from_rfc4514_string("CN=myrouter.mydomain.com")
    as_ca = issue(ca.key, ca.certificate, _our_key(device), subject, now - timedelta(1),
                  now + timedelta(30), ca=True)
    refused(device, der(as_ca), "% The certificate is a CA certificate (basicConstraints cA "
            "is TRUE), not the end-entity certificate requested for the trustpoint's key pair.")
    swapped = backwards(issue(ca.key, ca.certificate, _our_key(device), subject,
                              now - timedelta(1), now + timedelta(1)), ca.key)
    assert swapped.not_valid_after_utc < swapped.not_valid_before_utc
    refused(device, der(swapped), "% The certificate ends before it begins (valid from ")
    assert status(device).certificates == ()


def test_what_a_ca_may_choose_is_accepted(waiting: tuple[Engine, OfflineCA, bytes]) -> None:
    """The subject rewritten by the CA, extensions the request did not ask for (key usage,
    EKU, a policy, a private non-critical one), no basicConstraints at all: the CA's policy;
    imported."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    device, ca, _ = waiting
    now = _now(device)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string("CN=r-0042,OU=Routers,O=Example"))
            .issuer_name(ca.certificate.subject).public_key(_our_key(device))
            .serial_number(0x4242).not_valid_before(now - timedelta(1))
            .not_valid_after(now + timedelta(30))
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(
                x509.ObjectIdentifier("1.3.6.1.4.1.9.21.1"), None)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(
                "1.3.6.1.4.1.311.20.2"), b"\x1e\x00"), critical=False)
            .sign(ca.key, hashes.SHA256()))
    out = paste_certificate(device, der(cert))
    assert out.endswith("% Certificate successfully imported.\n"), out
    assert [c.der for c in status(device).certificates] == [der(cert)]


def test_refuse_junk_ca_at_authenticate(device: Engine, offline_ca: OfflineCA) -> None:
    identity_and_key(device)
    declare(device, terminal=True)
    head = device.store.head
    for paste, words in [
        (["%%% not base64 %%%", ""], "not base64"),
        ([base64.b64encode(b"\x30\x03\x02\x01\x01").decode(), "quit"], "not a valid X.509"),
        (pem_lines(der(issue(offline_ca.key, offline_ca.certificate, rsa_key(6).public_key(),
                             x509.Name.from_rfc4514_string("CN=leaf"),
                             _now(device) - timedelta(1), _now(device) + timedelta(9)))),
         "not a CA certificate"),
    ]:
        r = authenticate(device, pasted=paste)
        assert not r.ok and r.events == [] and device.store.head == head, r.output
        assert words in r.output.rstrip().splitlines()[-1], r.output
    assert status(device).lifecycle is Lifecycle.DECLARED


def test_bare_base64_and_quit(device: Engine, offline_ca: OfflineCA) -> None:
    """The CA certificate pasted as base64 DER without BEGIN/END lines, ended by `quit`."""
    identity_and_key(device)
    declare(device, terminal=True)
    body = pem_lines(der(offline_ca.certificate))[1:-2]
    r = authenticate(device, pasted=[*body, "quit"])
    assert event_types(r) == ["CACertificateAccepted"], r.output
    assert status(device).ca_certificate == der(offline_ca.certificate)
