"""`ca rollover`: the next CA certificate, GetNextCACert, shadow requests issued under the next
CA, and the takeover at the old certificate's expiry on the CA's clock (in process, no
sockets)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.ca import BuiltinCA
from engine.ca.errors import CAError
from engine.ca.server import InProcessCA, serve_in_process
from engine.ports import FixedClock, from_micros
from engine.scep import (
    CACertificates,
    Credential,
    PkiStatus,
    ScepError,
    ScepErrorReason,
    parse_ca_certificates,
    parse_capabilities,
    parse_next_ca_certificates,
)
from engine.scep.caps import Capability
from events.ca import CARolledOver
from tests.ca.ca_support import (
    IN_PROCESS,
    T0,
    ScepTestClient,
    http_request,
    make_ca,
    rsa_key,
)

PW = "static-secret"
URL = "http://rollover-ca.invalid"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def ca(tmp_path: Path, clock: FixedClock) -> Iterator[BuiltinCA]:
    with make_ca(tmp_path / "ca", clock=clock, days=100, certificate_days=30,
                 subject="CN=Rolling CA,O=Example") as ca:
        yield ca


def _serve(ca: BuiltinCA) -> InProcessCA:
    """(Re)start serving: a server loads the CA's keys when it starts, as `ca serve` does."""
    if IN_PROCESS.serves(URL):
        IN_PROCESS.detach(URL)
    return serve_in_process(ca, IN_PROCESS, URL, challenge=PW)


def _get(operation: str) -> tuple[int, str, bytes]:
    return http_request(f"{URL}/scep?operation={operation}")


def _caps() -> frozenset[Capability]:
    return parse_capabilities(_get("GetCACaps")[2]).keywords


def _next_ca(current: x509.Certificate) -> CACertificates:
    status, ctype, body = _get("GetNextCACert")
    assert status == 200
    return parse_next_ca_certificates(ctype, body, current)


@pytest.fixture
def served(ca: BuiltinCA) -> Iterator[InProcessCA]:
    srv = _serve(ca)
    yield srv
    srv.stop()


def test_before_a_rollover_get_next_ca_cert_is_refused_and_not_advertised(
        ca: BuiltinCA, served: InProcessCA) -> None:
    assert Capability.GET_NEXT_CA_CERT not in _caps()
    status, _, body = _get("GetNextCACert")
    assert status == 400
    assert b"no next CA certificate" in body


def test_rollover_records_the_next_key_and_certificate(ca: BuiltinCA, clock: FixedClock) -> None:
    clock.advance(timedelta(days=40))
    old = ca.ca_certificate
    new = ca.rollover()
    cert = x509.load_der_x509_certificate(new.certificate)
    assert new.number == 2
    assert cert.subject == old.subject
    cert.verify_directly_issued_by(cert)  # self-signed, with the new key
    assert cert.public_key() != old.public_key()
    # valid from now (minus skew) until as long after the old one's expiry as the old one lasted
    assert cert.not_valid_before_utc <= clock.now() < old.not_valid_after_utc
    assert (cert.not_valid_after_utc - old.not_valid_after_utc
            == old.not_valid_after_utc - old.not_valid_before_utc)
    key_file = ca.root / "ca-2.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    loaded = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert loaded.public_key() == cert.public_key()
    assert x509.load_pem_x509_certificate((ca.root / "ca-2.pem").read_bytes()) == cert
    events = [r.event for r in ca._log.read()]  # the log is the record
    assert isinstance(events[-1], CARolledOver)
    assert events[-1].key_file == "ca-2.key" and events[-1].ca_certificate == new.certificate
    # replay (and a reopen, which loads the new key) gives the same state
    ca.close()
    with BuiltinCA.open(ca.root, clock=clock) as again:
        assert again.state.generations == ca.state.generations
        assert again.next_generation() == new


def test_rollover_days_count_from_the_old_expiry(ca: BuiltinCA) -> None:
    new = ca.rollover(days=7)
    old_end = ca.ca_certificate.not_valid_after_utc
    assert from_micros(new.not_after) == old_end + timedelta(days=7)


def test_one_rollover_at_a_time_and_none_in_ra_mode(ca: BuiltinCA, tmp_path: Path) -> None:
    ca.rollover()
    with pytest.raises(CAError, match="CA certificate 2 is already next"):
        ca.rollover()
    assert len(ca.state.generations) == 2
    with make_ca(tmp_path / "ra", ra=True) as ra:
        with pytest.raises(CAError, match="RA certificates"):
            ra.rollover()
        assert len(ra.state.generations) == 1
        assert not (tmp_path / "ra" / "ca-2.key").exists()


def test_a_leftover_key_file_is_named_and_nothing_recorded(ca: BuiltinCA) -> None:
    (ca.root / "ca-2.key").write_bytes(b"left by an interrupted rollover")
    os.chmod(ca.root / "ca-2.key", 0o600)
    with pytest.raises(CAError, match=r"ca-2\.key already exists"):
        ca.rollover()
    assert len(ca.state.generations) == 1


def test_get_next_ca_cert_is_signed_by_the_current_key(ca: BuiltinCA) -> None:
    new = ca.rollover()
    srv = _serve(ca)
    try:
        assert Capability.GET_NEXT_CA_CERT in _caps()
        found = _next_ca(ca.ca_certificate)
        assert found.ca.public_bytes(serialization.Encoding.DER) == new.certificate
        assert not found.has_ra
        # GetCACert still answers the current certificate
        assert parse_ca_certificates(*_get("GetCACert")[1:]).ca == ca.ca_certificate
        # verified with any other key (the new CA's own, a stranger's), it is refused
        stranger = x509.load_der_x509_certificate(new.certificate)
        with pytest.raises(ScepError) as e:
            _next_ca(stranger)
        assert e.value.reason is ScepErrorReason.BAD_SIGNATURE
    finally:
        srv.stop()


def test_a_request_enveloped_to_the_next_ca_is_issued_under_it(ca: BuiltinCA) -> None:
    old = ca.ca_certificate
    new_cert = x509.load_der_x509_certificate(ca.rollover().certificate)
    srv = _serve(ca)
    try:
        device = ScepTestClient(srv.scep_url, rsa_key(1), "r1")
        current = device.enroll(PW).certificate_for(device.key.public_key())
        assert current is not None
        current.verify_directly_issued_by(old)
        # the shadow enrollment: enveloped to the next CA certificate, signed by the current
        # router certificate; the CertRep is signed by the CA certificate it was sent to
        shadow_cas = CACertificates(ca=new_cert)
        shadow = ScepTestClient(srv.scep_url, device.key, "r1", cas=shadow_cas)
        rep = shadow.renew(current)
        assert rep.status is PkiStatus.SUCCESS
        issued = rep.certificate_for(device.key.public_key())
        assert issued is not None
        issued.verify_directly_issued_by(new_cert)
        serial = format(issued.serial_number, "x")
        assert ca.state.certificates[serial].ca_generation == 2
        renewed = ca.state.certificates[format(current.serial_number, "x")]
        assert (renewed.rolled_over_by, renewed.renewed_by) == (serial, None)
        # a renewal under the current CA is still open: the shadow one did not use it up
        again = device.renew(current)
        assert again.status is PkiStatus.SUCCESS
        under_old = again.certificate_for(device.key.public_key())
        assert under_old is not None
        under_old.verify_directly_issued_by(old)
        # but a second shadow renewal of the same certificate is refused
        refused = shadow.renew(current)
        assert refused.status is PkiStatus.FAILURE
    finally:
        srv.stop()


def test_at_the_old_expiry_the_next_ca_takes_over(ca: BuiltinCA, clock: FixedClock) -> None:
    old = ca.ca_certificate
    new = ca.rollover()
    new_cert = x509.load_der_x509_certificate(new.certificate)
    clock.advance(old.not_valid_after_utc - clock.now() - timedelta(hours=1))
    fresh = ca.refresh_crl(force=True)  # signed by the old key, an hour before it expires
    assert fresh is not None and not ca.crl_due()
    clock.advance(timedelta(hours=1))  # the old one's last instant...
    assert ca.crl_due()  # ...and its CRL is due at once: another CA certificate signs now
    srv = _serve(ca)
    try:
        assert ca.current_generation().number == 2  # ...is already past notAfter's start
        assert Capability.GET_NEXT_CA_CERT not in _caps()
        assert parse_ca_certificates(*_get("GetCACert")[1:]).ca == new_cert
        device = ScepTestClient(srv.scep_url, rsa_key(2), "r2", signing_time=clock.now())
        rep = device.enroll(PW)
        assert rep.status is PkiStatus.SUCCESS
        issued = rep.certificate_for(device.key.public_key())
        assert issued is not None
        issued.verify_directly_issued_by(new_cert)
        crl = x509.load_der_x509_crl(ca.current_crl().der)  # re-issued: another CA signs
        assert crl.issuer == new_cert.subject
        assert crl.is_signature_valid(new_cert.public_key())  # type: ignore[arg-type]
    finally:
        srv.stop()


def test_credential_of_every_generation_is_loaded(ca: BuiltinCA) -> None:
    ca.rollover()
    creds = [Credential(c, k) for c, k in ca.ca_credentials()]
    assert [c.certificate.public_bytes(serialization.Encoding.DER) for c in creds] == [
        g.certificate for g in ca.state.generations]
