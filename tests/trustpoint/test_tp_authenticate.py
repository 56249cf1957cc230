"""`crypto ca authenticate` against the built-in CA served in-process on loopback (issue 6 item
3): the printed layout and question, yes / no, and RA mode (RA certificates stored, requests
enveloped to the RA encryption certificate, replies signed by the RA signing certificate)."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509

from engine import Engine
from engine.ca.decide import Approval
from engine.machines.trustpoint import Lifecycle
from engine.scep.cms import read_signed
from events.trustpoint import CACertificateAccepted, CACertificateRefused
from tests.trustpoint.tp_support import (
    CAFactory,
    RecordingTransport,
    authenticate,
    declare,
    der,
    enroll,
    event_types,
    identity_and_key,
    status,
)

pytestmark = pytest.mark.integration

QUESTION = "Do you accept this certificate?? [yes/no]:"


def when(t: datetime) -> str:
    return t.strftime("%H:%M:%S UTC %a %b %d %Y")


def expected_description(cert: x509.Certificate) -> str:
    """What IOS prints before the question, computed here independently of the projections."""
    raw = der(cert)
    md5 = hashlib.md5(raw).hexdigest().upper()
    serial = format(cert.serial_number, "X")
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    return "\n".join([
        f"Serial Number :{serial}",
        "Subject Name  :",
        "cn=trustledger test CA,o=Example",
        "Issued By     :",
        "cn=trustledger test CA,o=Example",
        f"Validity Start :{when(cert.not_valid_before_utc)}",
        f"Validity End   :{when(cert.not_valid_after_utc)}",
        "Fingerprint:" + " ".join(md5[i:i + 2] for i in range(0, 32, 2)),
        f"SHA256 Fingerprint:{hashlib.sha256(raw).hexdigest().upper()}",
        ""])


def test_accept(device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory()
    declare(device, url=server.url)
    r = authenticate(device, answer="yes")
    assert r.ok
    assert r.output == expected_description(ca.ca_certificate) + QUESTION + "yes\n"
    (rec,) = r.events
    ev = rec.event
    assert isinstance(ev, CACertificateAccepted)
    assert ev.trustpoint == "myca" and ev.source == "scep"
    assert ev.ca_certificate == der(ca.ca_certificate)
    assert ev.ra_certificates == ()
    assert {"POSTPKIOperation", "SHA-256", "AES", "SCEPStandard"} <= set(ev.capabilities)
    st = status(device)
    assert st.lifecycle is Lifecycle.AUTHENTICATED
    assert st.ca_certificate == der(ca.ca_certificate)
    shown = device.execute("show crypto ca certificates").output
    assert shown.splitlines()[:3] == ["Trustpoint          :myca", "=====", "CA certificate"]
    assert "Router certificate" not in shown
    assert "CA certificate      :authenticated (scep)" in device.execute(
        "show crypto ca trustpoint myca").output


def test_refuse_records_the_refusal_and_trusts_nothing(device: Engine,
                                                       ca_factory: CAFactory) -> None:
    ca, server = ca_factory()
    declare(device, url=server.url)
    r = authenticate(device, answer="no")
    assert r.ok
    assert r.output.startswith(expected_description(ca.ca_certificate) + QUESTION + "no\n")
    assert "% Certificate not accepted: nothing was stored." in r.output
    (rec,) = r.events
    ev = rec.event
    assert isinstance(ev, CACertificateRefused)
    assert ev.sha256_fingerprint == hashlib.sha256(der(ca.ca_certificate)).hexdigest().upper()
    assert ev.subject == "cn=trustledger test CA,o=Example"
    st = status(device)
    assert st.lifecycle is Lifecycle.DECLARED and st.ca_certificate is None
    assert device.execute("show crypto ca certificates").output == ""
    # Nothing trusted: enrollment is still refused, and authenticating again is allowed.
    assert not enroll(device).ok
    assert event_types(authenticate(device, answer="yes")) == ["CACertificateAccepted"]


def test_question_repeats_until_yes_or_no(device: Engine, ca_factory: CAFactory) -> None:
    _, server = ca_factory()
    declare(device, url=server.url)
    r = device.execute("crypto ca authenticate myca", answers=["maybe", "", " Y "])
    assert r.output.count(QUESTION) == 3
    assert r.output.count("% Please answer 'yes' or 'no'.") == 2
    assert event_types(r) == ["CACertificateAccepted"]


def test_no_answer_at_all_stores_nothing(device: Engine, ca_factory: CAFactory) -> None:
    _, server = ca_factory()
    declare(device, url=server.url)
    head = device.store.head
    r = device.execute("crypto ca authenticate myca", answers=[])
    assert not r.ok and r.events == [] and device.store.head == head
    assert status(device).lifecycle is Lifecycle.DECLARED


def _recipient_serial(request: bytes) -> int:
    """The serial of the certificate a PKIOperation request is enveloped to."""
    inner = asn1_cms.ContentInfo.load(read_signed(request).content)
    (ri,) = list(inner["content"]["recipient_infos"])
    return int(ri.chosen["rid"].chosen["serial_number"].native)


def test_ra_mode(device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory(Approval.AUTO, ra=True)
    ra = ca.ra_certificates()
    assert ra is not None
    ra_sign, ra_encrypt = ra
    identity_and_key(device)
    declare(device, url=server.url)

    r = authenticate(device)
    (rec,) = r.events
    assert isinstance(rec.event, CACertificateAccepted)
    assert rec.event.ca_certificate == der(ca.ca_certificate)  # the CA, not an RA, is shown
    assert r.output.startswith(expected_description(ca.ca_certificate))
    assert set(rec.event.ra_certificates) == {der(ra_sign), der(ra_encrypt)}
    shown = device.execute("show crypto ca certificates").output
    assert "RA Signature certificate" in shown and "RA KeyE certificate" in shown

    transport = RecordingTransport(device.ports.scep)
    device.ports.scep = transport
    r = enroll(device, password=ca.mint_challenge())
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    assert status(device).lifecycle is Lifecycle.ENROLLED
    (request, reply), = transport.operations()
    assert _recipient_serial(request) == ra_encrypt.serial_number
    rep = read_signed(reply.body, "CertRep")
    assert rep.find_signer([ra_sign]) == ra_sign
    assert rep.find_signer([ca.ca_certificate, ra_encrypt]) is None
    (cert,) = status(device).certificates
    issued = x509.load_der_x509_certificate(cert.der)
    issued.verify_directly_issued_by(ca.ca_certificate)
