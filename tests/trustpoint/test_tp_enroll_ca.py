"""SCEP enrollment end to end against the built-in CA served on loopback (issue 6 items 4, 5
and 7): auto and manual approval, polling on the fake clock (approval arriving while polling,
retries exhausted, a restart resuming the polls, cancel-enroll), FAILURE explained, the
challenge password (mismatch, never on disk), and usage keys."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from engine import Engine
from engine.ca.decide import Approval
from engine.ca.service import BuiltinCA
from engine.keys import KeyAlgorithm
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from engine.scep import ContentCipher, Credential, DigestAlgorithm, ScepRequest, parse_request
from engine.scep_client import HttpxTransport
from events.trustpoint import (
    CertificateReceived,
    EnrollmentFailed,
    EnrollmentPending,
    EnrollmentRequested,
)
from tests.trustpoint.tp_support import (
    CHALLENGE,
    DOMAIN,
    HOSTNAME,
    CAFactory,
    RecordingTransport,
    authenticate,
    configure,
    declare,
    der,
    enroll,
    event_types,
    identity_and_key,
    spki_of,
    status,
)

pytestmark = pytest.mark.integration

VECTORS = Path(__file__).parent / "vectors"
REFERENCE_CA = ("CN=Root coax-u10 Certificate Manager,OU=HFR,O=Cisco Systems,L=San Jose,ST=CA,"
                "C=US")
START = """\
% Start certificate enrollment ...
% Create a challenge password. You will need to verbally provide this
password to the CA Administrator in order to revoke your certificate.
% For security reasons your password will not be saved in the configuration.
% Please make a note of it.
Password:\nRe-enter Password:\n"""


def ready(device: Engine, url: str, *, usage_keys: bool = False, period: int = 2,
          count: int = 25, extra: tuple[str, ...] = ()) -> None:
    identity_and_key(device, usage_keys=usage_keys)
    declare(device, url=url, period=period, count=count, extra=extra)
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]


def requests_seen(ca: BuiltinCA, transport: RecordingTransport) -> list[ScepRequest]:
    """The PKIOperation requests the device sent, opened with the CA's key."""
    cred = Credential(*ca.decrypter())
    return [parse_request(body, recipients=[cred]) for body, _ in transport.operations()]


def shape(line: str) -> str:
    """A show line with its value blanked, except the values the reference fixes."""
    if line.startswith(" " * 19):
        return "<value>"
    label, colon, _ = line.partition(":")
    if not colon or label.strip() in ("Key usage", "Status", "Trustpoint"):
        return line
    return label + ":"


# -- auto approval -----------------------------------------------------------------------------


def test_auto_approval_example_session(device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory(subject=REFERENCE_CA)
    ready(device, server.url, extra=("subject-name O=Cisco Systems",))
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    pw = ca.mint_challenge()
    r = enroll(device, password=pw)
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"]
    (req,) = requests_seen(ca, transport)
    assert req.csr is not None
    fp = hashlib.md5(req.csr.der).hexdigest().upper()
    assert r.output == (START + "  Fingerprint: " + " ".join(fp[i:i + 8] for i in range(0, 32, 8))
                        + "\n%PKI-6-CERTRET: Certificate received from Certificate Authority "
                          "for trustpoint myca\n")
    assert pw not in r.output
    # The request: our subject, our key, the challenge, the CA's strongest algorithms.
    assert req.csr.challenge_password == pw
    assert [(a.oid, a.value) for a in req.csr.subject] == [
        (NameOID.ORGANIZATION_NAME, "Cisco Systems"),
        (NameOID.UNSTRUCTURED_NAME, f"{HOSTNAME}.{DOMAIN}")]
    assert req.csr.dns_names == (f"{HOSTNAME}.{DOMAIN}",)
    (pair,) = device.state.keys.pairs_of(KeyAlgorithm.RSA, "mykey")
    assert spki_of(req.csr.csr.public_key()) == pair.public_key
    # Our CA advertises AES, DES3, SHA-1/256/384/512: the strongest of each are used.
    assert (req.cipher, req.digest) == (ContentCipher.AES_128_CBC, DigestAlgorithm.SHA512)

    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED and st.enrollment is None
    (rc,) = st.certificates
    cert = x509.load_der_x509_certificate(rc.der)
    cert.verify_directly_issued_by(ca.ca_certificate)
    assert spki_of(cert.public_key()) == pair.public_key

    shown = device.execute("show crypto ca certificates").output.splitlines()
    reference = (VECTORS / "show_crypto_ca_certificates_reference.txt").read_text().splitlines()
    assert [shape(ln) for ln in shown] == [shape(ln) for ln in reference]
    # The names print exactly as in the reference; serials, dates and the CDP are ours.
    names = [ln for ln in shown if ln.startswith(" " * 19)][:4]
    assert names == [ln for ln in reference if ln.startswith(" " * 19)][:4]
    serial = format(cert.serial_number, "X")
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    assert shown[shown.index("Router certificate") + 3] == f"Serial Number      :{serial}"
    assert shown[-1] == " " * 19 + server.crl_url
    assert device.execute("show crypto ca certificates myca").output.splitlines() == shown

    tp = device.execute("show crypto ca trustpoint myca").output
    assert "State               :enrolled" in tp and "Last enrollment     :issued" in tp
    assert "Router certificates :1" in tp


# -- manual approval and polling ------------------------------------------------------------------


def pending_txid(ca: BuiltinCA) -> str:
    (req,) = [r for r in ca.requests() if r.status.value == "pending"]
    return req.transaction_id


def test_manual_approval_arrives_while_polling(device: Engine, ca_factory: CAFactory,
                                               clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    ready(device, server.url, period=2, count=25)
    r = enroll(device, password=ca.mint_challenge())
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentPending"]
    assert "% Certificate request pending at the CA: polling every 2 minutes, up to 25 " \
           "times." in r.output
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLING and st.certificates == ()
    txid = pending_txid(ca)
    assert st.enrollment is not None and st.enrollment.transaction_ids == (txid,)
    tp = device.execute("show crypto ca trustpoint myca").output
    assert "State               :enrolling" in tp
    assert f"  Transaction ID    :{txid}" in tp
    assert "  Polls             :0 of 25" in tp
    assert "  Next poll         :in 00:02:00 (00:02:00 UTC Thu Nov 27 2025)" in tp

    clock.advance(119)
    assert device.run_due() == []  # not due yet: nothing asked, nothing written
    clock.advance(1)
    (polled,) = device.run_due()
    assert event_types(polled) == ["EnrollmentPending"]
    assert polled.events[0].actor == "scheduler"
    assert "  Polls             :1 of 25" in device.execute("show crypto ca trustpoint").output

    clock.advance(60)
    ca.approve(txid)  # the CA administrator approves between two polls
    assert device.run_due() == []
    clock.advance(60)
    (done,) = device.run_due()
    assert event_types(done) == ["CertificateReceived"]
    assert done.output == ("%PKI-6-CERTRET: Certificate received from Certificate Authority "
                           "for trustpoint myca\n")
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED and st.enrollment is None
    (rc,) = st.certificates
    (req,) = ca.requests()
    issued = ca.certificate(req.serial or "")
    assert issued is not None and rc.der == issued.certificate
    (fetched,) = device.run_due()  # the CRL, once, right after the enrollment (issue 16)
    assert event_types(fetched) == ["CrlFetched"]
    assert device.run_due() == []
    clock.advance(3600)
    assert device.run_due() == []


def test_retries_exhausted(device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    ready(device, server.url, period=1, count=3)
    enroll(device, password=ca.mint_challenge())
    outputs = []
    for _ in range(3):
        clock.advance(60)
        (res,) = device.run_due()
        outputs.append((event_types(res), res.output))
    assert outputs[0] == (["EnrollmentPending"], "")
    assert outputs[1] == (["EnrollmentPending"], "")
    assert outputs[2][0] == ["EnrollmentFailed"]
    assert outputs[2][1] == (
        "%PKI-3-ENROLL_TIMEOUT: Certificate enrollment for trustpoint myca timed out (no "
        "certificate after 3 polls). Ask the CA administrator to approve the request, then "
        "enter 'crypto ca enroll myca' again.\n")
    st = status(device)
    assert st.lifecycle is Lifecycle.AUTHENTICATED and st.enrollment is None
    assert st.last_result == "timeout"
    clock.advance(3600)
    assert device.run_due() == []  # the polling stopped

    # Approved after the timeout: the operator enrolls again, as the message says.
    ca.approve(pending_txid(ca))
    r = enroll(device, password="unused-now")
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"]


def test_poll_with_ca_down_counts_and_retries(device: Engine, ca_factory: CAFactory,
                                               clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL, http=True)  # over HTTP: down, then up again
    ready(device, server.url, period=1, count=5)
    enroll(device, password=ca.mint_challenge())
    txid = pending_txid(ca)
    server.stop()
    # A CA that went down drops its connections too (a stopped test server may still answer
    # on a kept-alive one): start from a fresh HTTP client.
    device.ports.scep = HttpxTransport(timeout=5)
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["EnrollmentPending"]
    assert res.output.startswith("%PKI-4-POLL_FAILED: trustpoint myca: Unable to reach the CA")
    assert status(device).enrollment.polls == 1  # type: ignore[union-attr]
    ca.approve(txid)
    from engine.ca.server import serve

    again = serve(ca, port=server.port, approval=Approval.MANUAL, admin=False)
    try:
        clock.advance(60)
        (res,) = device.run_due()
        assert event_types(res) == ["CertificateReceived"]
    finally:
        again.stop()


@pytest.mark.parametrize("snapshots", [True, False], ids=["snapshot", "full-replay"])
def test_restart_resumes_polling(ca_factory: CAFactory, clock: FakeClock,
                                 open_engine: Callable[..., Engine], snapshots: bool) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    device = open_engine()
    ready(device, server.url, period=5, count=10)
    enroll(device, password=ca.mint_challenge())
    clock.advance(5 * 60)
    assert event_types(device.run_due()[0]) == ["EnrollmentPending"]
    device.close()

    clock.advance(4 * 60)
    device = open_engine(use_snapshots=snapshots)
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLING
    assert st.enrollment is not None and st.enrollment.polls == 1
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    assert device.run_due() == []  # next poll is at 10 min; we are at 9
    assert transport.exchanges == []
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["EnrollmentPending"]
    assert len(transport.operations()) == 1
    assert status(device).enrollment.polls == 2  # type: ignore[union-attr]
    ca.approve(pending_txid(ca))
    clock.advance(5 * 60)
    assert event_types(device.run_due()[0]) == ["CertificateReceived"]
    assert status(device).lifecycle is Lifecycle.ENROLLED


def test_cancel_enroll_stops_polling(device: Engine, ca_factory: CAFactory,
                                     clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    ready(device, server.url, period=1, count=10)
    enroll(device, password=ca.mint_challenge())
    r = device.execute("crypto ca cancel-enroll myca")
    assert r.output == "% Enrollment request for trustpoint myca cancelled.\n"
    (rec,) = r.events
    assert isinstance(rec.event, EnrollmentFailed) and rec.event.reason == "cancelled"
    assert rec.event.transaction_id == pending_txid(ca)
    st = status(device)
    assert st.lifecycle is Lifecycle.AUTHENTICATED and st.enrollment is None
    assert "Last enrollment     :cancelled" in device.execute("show crypto ca trustpoint").output
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    ca.approve(pending_txid(ca))
    clock.advance(600)
    assert device.run_due() == []
    assert transport.exchanges == []
    assert status(device).certificates == ()


# -- FAILURE and the challenge password ---------------------------------------------------------


def test_wrong_challenge_is_explained(device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory(Approval.AUTO)
    ready(device, server.url)
    ca.mint_challenge()
    r = enroll(device, password="not-the-challenge")
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentFailed"]
    ev = r.events[1].event
    assert isinstance(ev, EnrollmentFailed)
    assert (ev.reason, ev.fail_info) == ("failure", "badRequest")
    # the CA's own failInfoText (RFC 8894 §3.2.1.4) is shown after what badRequest usually means
    assert r.output.endswith(
        "% Certificate enrollment for trustpoint myca failed: badRequest: the CA refused the "
        "request (often a wrong or reused challenge password); the CA says: wrong challenge "
        "password.\n")
    assert ev.detail.endswith("; the CA says: wrong challenge password")
    st = status(device)
    assert st.lifecycle is Lifecycle.AUTHENTICATED and st.enrollment is None
    assert st.certificates == ()
    assert "Last enrollment     :failure (badRequest)" in device.execute(
        "show crypto ca trustpoint").output
    # A right password afterwards enrolls.
    assert event_types(enroll(device, password=ca.mint_challenge()))[-1] == "CertificateReceived"


def test_password_mismatch_asks_again(device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory(Approval.AUTO)
    ready(device, server.url)
    pw = ca.mint_challenge()
    r = device.execute("crypto ca enroll myca", answers=[pw, pw + "x", pw, pw])
    lines = r.output.splitlines()
    assert lines.count("Password:") == 2 and lines.count("Re-enter Password:") == 2
    assert "% Passwords do not match.\n" in r.output
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"]


def test_three_mismatches_give_up_and_write_nothing(device: Engine,
                                                    ca_factory: CAFactory) -> None:
    _, server = ca_factory(Approval.AUTO)
    ready(device, server.url)
    head = device.store.head
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    r = device.execute("crypto ca enroll myca", answers=["a", "b", "c", "d", "", ""])
    assert not r.ok and r.events == [] and device.store.head == head
    assert r.output.count("% Passwords do not match.") == 2
    assert "% The challenge password cannot be empty." in r.output
    assert r.output.endswith("% Enrollment cancelled: no challenge password.\n")
    assert transport.exchanges == []


def all_bytes(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_challenge_password_never_on_disk(ca_factory: CAFactory, clock: FakeClock,
                                          open_engine: Callable[..., Engine],
                                          device_dir: Path) -> None:
    good, wrong = "Zebra-Challenge-7731", "Okapi-Wrong-4417"
    ca, server = ca_factory(Approval.MANUAL, challenge=good)
    device = open_engine()
    ready(device, server.url, period=1, count=5)
    with structlog.testing.capture_logs() as logs:
        failed = enroll(device, password=wrong)
        ok = enroll(device, password=good)
    assert event_types(failed)[-1] == "EnrollmentFailed"
    assert event_types(ok) == ["EnrollmentRequested", "EnrollmentPending"]
    ca.approve(pending_txid(ca))
    clock.advance(60)
    assert event_types(device.run_due()[0]) == ["CertificateReceived"]
    device.close()  # writes a snapshot too
    files = all_bytes(device_dir)
    assert any(p.parent.name == "snapshots" for p in files), files.keys()
    for secret in (good, wrong):
        for form in (secret.encode(), secret.encode("utf-16-le"),
                     base64.b64encode(secret.encode()), hashlib.sha256(secret.encode()).digest()):
            hits = [p for p, data in files.items() if form in data]
            assert hits == [], (secret, form, hits)
        assert secret not in failed.output + ok.output
        assert all(secret not in repr(entry) for entry in logs)


# -- usage keys ---------------------------------------------------------------------------------


# Both requests carry the same challenge password (as on IOS), so the CA is given a static one:
# a one-time challenge would be spent by the first request.


def test_usage_keys_two_requests_two_certificates(device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory(Approval.AUTO, challenge="usage-keys-pw")
    ready(device, server.url, usage_keys=True)
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    r = enroll(device, password="usage-keys-pw")
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived",
                              "CertificateReceived"]
    requested = r.events[0].event
    assert isinstance(requested, EnrollmentRequested)
    assert requested.usages == ("signature", "encryption")
    assert r.output.count("  Fingerprint: ") == 2
    reqs = requests_seen(ca, transport)
    assert len(reqs) == 2 and len({q.transaction_id for q in reqs}) == 2
    pairs = {p.usage.value: p for p in device.state.keys.pairs_of(KeyAlgorithm.RSA, "mykey")}
    assert {spki_of(q.csr.csr.public_key()) for q in reqs if q.csr is not None} == {
        p.public_key for p in pairs.values()}
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED
    assert [c.usage for c in st.certificates] == ["signature", "encryption"]
    by_usage = {c.usage: c for c in st.certificates}
    for usage in ("signature", "encryption"):
        cert = x509.load_der_x509_certificate(by_usage[usage].der)
        assert spki_of(cert.public_key()) == pairs[usage].public_key
    shown = device.execute("show crypto ca certificates").output
    assert shown.count("Router certificate") == 2
    assert "Key usage          :Signature" in shown and "Key usage          :Encryption" in shown
    assert shown.index(":Signature") < shown.index(":Encryption")


def test_usage_keys_enrolled_once_both_are_approved(device: Engine, ca_factory: CAFactory,
                                                    clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL, challenge="usage-keys-pw")
    ready(device, server.url, usage_keys=True, period=1, count=10)
    r = enroll(device, password="usage-keys-pw")
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentPending"]
    first, second = [q.transaction_id for q in ca.requests()]
    ca.approve(first)
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["CertificateReceived", "EnrollmentPending"]
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLING and len(st.certificates) == 1
    assert isinstance(res.events[1].event, EnrollmentPending)
    assert res.events[1].event.transaction_id == second
    ca.approve(second)
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["CertificateReceived"]
    assert isinstance(res.events[0].event, CertificateReceived)
    assert status(device).lifecycle is Lifecycle.ENROLLED
    assert len(status(device).certificates) == 2
    assert der(ca.ca_certificate) == status(device).ca_certificate


def test_usage_keys_say_which_certificate_was_issued_and_which_refused(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    """Issue 13 item 6: one usage-key request issued, the other refused (as micromdm refuses
    a second certificate for the same subject): the line names both, and the CA's reason."""
    ca, server = ca_factory(Approval.MANUAL, challenge="usage-keys-pw")
    ready(device, server.url, usage_keys=True, period=1, count=10)
    enroll(device, password="usage-keys-pw")
    enrollment = status(device).enrollment
    assert enrollment is not None
    # The device's order (signature, encryption); the CA's list may order them either way.
    first, second = enrollment.transaction_ids
    ca.approve(first)
    ca.reject(second, "one certificate per subject")
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["CertificateReceived", "EnrollmentFailed"]
    assert res.output == (
        "%PKI-3-ENROLL_FAILED: Certificate enrollment for trustpoint myca failed: badRequest: "
        "the CA refused the request (often a wrong or reused challenge password); the CA says: "
        "one certificate per subject; the signature certificate was issued, the encryption "
        "certificate was refused.\n")
    failed = res.events[1].event
    assert isinstance(failed, EnrollmentFailed) and failed.transaction_id == second
    assert [c.usage for c in status(device).certificates] == ["signature"]


def test_rejected_while_polling(device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    ready(device, server.url, period=1, count=10)
    enroll(device, password=ca.mint_challenge())
    ca.reject(pending_txid(ca), "unknown device")
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["EnrollmentFailed"]
    ev = res.events[0].event
    assert isinstance(ev, EnrollmentFailed) and ev.reason == "failure" and ev.fail_info
    assert res.output.startswith(
        "%PKI-3-ENROLL_FAILED: Certificate enrollment for trustpoint myca failed: ")
    st = status(device)
    assert st.lifecycle is Lifecycle.AUTHENTICATED and st.enrollment is None
    clock.advance(600)
    assert device.run_due() == []


def test_demo_transcript() -> None:
    """`trustledger demo`: the example session against the built-in CA, enrolled at the end."""
    import io

    from engine.demo import run_demo

    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "Do you accept this certificate?? [yes/no]:yes" in text
    assert ("%PKI-6-CERTRET: Certificate received from Certificate Authority for trustpoint "
            "myca\n") in text
    assert "Key usage          :General Purpose" in text
    assert "State               :enrolled" in text
    assert "% " + "Invalid" not in text


def test_status_follows_the_clock(device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    """`Status` in show crypto ca certificates is the certificate's state now, not at install."""
    ca, server = ca_factory(Approval.AUTO)
    ready(device, server.url)
    enroll(device, password=ca.mint_challenge())
    assert "Status             :Available" in device.execute("show crypto ca certificates").output
    clock.advance(400 * 86_400)  # issued for 365 days
    shown = device.execute("show crypto ca certificates").output
    assert "Status             :Expired" in shown, shown


def test_request_carries_what_the_trustpoint_adds(device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory(Approval.AUTO)
    ready(device, server.url, extra=("subject-name CN=r1,OU=NET,O=Example", "ip-address 10.1.1.1",
                                     "serial-number"))
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    r = enroll(device, password=ca.mint_challenge())
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    (req,) = requests_seen(ca, transport)
    assert req.csr is not None
    subject = {a.oid: a.value for a in req.csr.subject}
    assert subject[NameOID.UNSTRUCTURED_NAME] == f"{HOSTNAME}.{DOMAIN}"
    assert subject[NameOID.COMMON_NAME] == "r1"
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME] == "NET"
    assert subject[NameOID.ORGANIZATION_NAME] == "Example"
    assert subject[x509.ObjectIdentifier("1.2.840.113549.1.9.8")] == "10.1.1.1"
    assert len(subject[NameOID.SERIAL_NUMBER]) == 11
    assert [str(a) for a in req.csr.ip_addresses] == ["10.1.1.1"]
    requested = r.events[0].event
    assert isinstance(requested, EnrollmentRequested)
    assert x509.Name.from_rfc4514_string(requested.subject, {
        "unstructuredName": NameOID.UNSTRUCTURED_NAME,
        "unstructuredAddress": x509.ObjectIdentifier("1.2.840.113549.1.9.8"),
        "serialNumber": NameOID.SERIAL_NUMBER}) == req.csr.subject


@pytest.mark.parametrize(("extra", "line", "words"), [
    (("subject-name not a dn",), "crypto ca enroll myca", "is not a distinguished name"),
    (("rsakeypair nosuchkey",), "crypto ca enroll myca", "RSA key pair nosuchkey not found"),
])
def test_enroll_refused_before_anything_is_sent(device: Engine, ca_factory: CAFactory,
                                                extra: tuple[str, ...], line: str,
                                                words: str) -> None:
    _, server = ca_factory(Approval.AUTO)
    ready(device, server.url, extra=extra)
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    head = device.store.head
    r = device.execute(line, answers=["pw", "pw"])
    assert not r.ok and r.events == [] and device.store.head == head
    assert words in r.output, r.output
    assert transport.exchanges == []
    assert status(device).lifecycle is Lifecycle.AUTHENTICATED


# -- found in review ---------------------------------------------------------------------------


def test_reenrollment_is_a_renewal_signed_by_the_current_certificate(
        device: Engine, ca_factory: CAFactory) -> None:
    """Re-enrolling with the same key pair must get a new certificate: the request is signed
    with the router certificate we hold (Cisco's renewal), not answered as a re-send."""
    ca, server = ca_factory(Approval.AUTO, challenge=CHALLENGE)
    ready(device, server.url)
    assert event_types(enroll(device)) == ["EnrollmentRequested", "CertificateReceived"]
    (old,) = status(device).certificates
    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    r = device.execute("crypto ca enroll myca", answers=["yes", CHALLENGE, CHALLENGE])
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    (new,) = status(device).certificates
    assert new.der != old.der
    (req,) = requests_seen(ca, transport)
    assert req.signer_certificate.public_bytes(serialization.Encoding.DER) == old.der


def test_reenroll_question_asks_again_after_an_answer_it_does_not_take(
        device: Engine, ca_factory: CAFactory) -> None:
    """'Re-enroll to replace it?' took any answer but yes as no (`abc`: cancelled); every other
    [yes/no] question says `% Please answer 'yes' or 'no'.` and asks again."""
    _, server = ca_factory(Approval.AUTO, challenge=CHALLENGE)
    ready(device, server.url)
    assert event_types(enroll(device)) == ["EnrollmentRequested", "CertificateReceived"]
    r = device.execute("crypto ca enroll myca", answers=["abc", "no"])
    assert r.output == ("% Trustpoint myca already has a router certificate.\n"
                        "Re-enroll to replace it? [yes/no]:abc\n"
                        "% Please answer 'yes' or 'no'.\n"
                        "Re-enroll to replace it? [yes/no]:no\n"
                        "% Enrollment cancelled.\n")
    assert r.events == []


def test_usage_keys_keep_the_certificate_the_ca_issued_when_the_other_fails(
        device: Engine, ca_factory: CAFactory) -> None:
    """A one-time challenge is spent by the first of the two usage-key requests: the second
    fails, and the certificate the CA did issue for the first is kept, not thrown away."""
    ca, server = ca_factory(Approval.AUTO)
    ready(device, server.url, usage_keys=True)
    once = ca.mint_challenge()
    r = enroll(device, password=once)
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived", "EnrollmentFailed"]
    st = status(device)
    assert [c.usage for c in st.certificates] == ["signature"]
    assert "badRequest" in r.output


def test_removing_the_enrollment_url_while_pending_stops_the_polling(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    ready(device, server.url, period=1, count=5)
    assert event_types(enroll(device, password=ca.mint_challenge()))[-1] == "EnrollmentPending"
    configure(device, "crypto ca trustpoint myca", "enrollment terminal")
    clock.advance(60)
    (res,) = device.run_due()
    assert event_types(res) == ["EnrollmentFailed"] and "polling stopped" in res.output
    clock.advance(3600)
    assert device.run_due() == []


def test_a_ca_failure_is_recorded_and_still_an_error(device: Engine,
                                                    ca_factory: CAFactory) -> None:
    """FAILURE from the CA: the attempt is on record, and the Result (and so a batch script's
    exit status) says the command failed."""
    _ca, server = ca_factory(Approval.AUTO, challenge=CHALLENGE)
    ready(device, server.url)
    r = enroll(device, password="not-the-challenge")
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentFailed"]
    assert r.error is not None and not r.ok and "badRequest" in r.error.message
