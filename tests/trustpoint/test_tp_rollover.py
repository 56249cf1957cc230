"""CA rollover on the device (issue 17): at 90% of the CA certificate's lifetime the device
fetches the CA's next certificate (GetNextCACert, verified with the current CA key), holds it
as the shadow CA, enrolls for a shadow router certificate under it, and makes both current
when the old CA certificate expires, with no operator action. A reply signed by another key is
refused and retried; a CA without GetNextCACert is logged once. The log replays to the live
state at every step."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.decide import Policy
from engine.ca.scep_frontend import ScepFrontend
from engine.ca.server import serve_in_process
from engine.ca.service import BuiltinCA
from engine.engine import Result
from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.renewal.messages import certificate_facts, iso
from engine.rollover.schedule import RETRY, shadow_point
from engine.scep import Credential, build_next_ca_certificates
from engine.scep.caps import Capability, parse_capabilities
from events.rollover import ShadowCARechecked
from projections.timefmt import ios_time
from tests.trustpoint.renewal_support import (
    DAY,
    HOUR,
    assert_replays,
    clock_set,
    due_types,
    enrolled,
    following_ca,
    jobs,
    timers,
)
from tests.trustpoint.test_tp_renewal_cases import DownTransport
from tests.trustpoint.tp_support import status

URL = "http://ca.invalid"


def _serve_again(ca: BuiltinCA, network: InProcessTransport) -> None:
    """The CA operator's restart after `ca rollover` (a server loads the keys at start)."""
    network.detach(URL)
    serve_in_process(ca, network, URL)


def _timer(at: int, now: int, what: str) -> str:
    """A `show crypto ca timers` line, its padding squeezed (see `_timer_lines`)."""
    left = (at - now) // 1_000_000
    days, rest = divmod(left, 86_400)
    return f"|{days}d {rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}.000 ({iso(at)}) {what}"


def _timer_lines(device: Engine) -> list[str]:
    return [" ".join(re.sub(r"^\|\s+", "|", line).split())
            for line in timers(device).splitlines()]


def test_one_ca_rollover_with_no_operator_action(device: Engine, tmp_path: Path,
                                                 scep_network: InProcessTransport) -> None:
    # A 1000-day CA; router certificates asked for 2000 days end with it. auto-enroll 99: the
    # shadow certificates cover the router certificate, as the shadow CA covers the CA's.
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=1000,
                                 certificate_days=2000)
    enrolled(device, ca, server, "auto-enroll 99")
    st = status(device)
    assert st.ca_certificate is not None
    old_ca, (old_rc,) = st.ca_certificate, st.certificates
    at = shadow_point(old_ca)
    ca_end = certificate_facts(old_ca)[1]
    now = device.ports.clock.now_us()
    assert _timer(at, now, "SHADOW myca") in _timer_lines(device)

    # The CA's operator rolls over 100 days before the device asks.
    clock_set(device, at - 100 * DAY)
    new_ca = ca.rollover().certificate
    _serve_again(ca, scep_network)
    assert jobs(clock_set(device, at - 1_000_000)) == []

    r = clock_set(device, at)
    assert due_types(r) == [["ShadowCAAccepted", "RenewalRequested",
                             "RenewalCertificateReceived"]]
    (job,) = jobs(r)
    accepted, requested, received = (rec.event for rec in job.events)
    assert {rec.at for rec in job.events} == {at}
    assert {rec.actor for rec in job.events} == {"scheduler"}
    assert accepted.ca_certificate == new_ca and accepted.current_not_after == ca_end
    assert requested.purpose == received.purpose == "shadow"
    shadow_cert = x509.load_der_x509_certificate(received.certificate)
    shadow_cert.verify_directly_issued_by(x509.load_der_x509_certificate(new_ca))
    new_serial, shadow_serial = certificate_facts(new_ca)[2], certificate_facts(
        received.certificate)[2]
    assert job.output == (
        f"%PKI-6-SHADOW_CA_RECEIVED: Trustpoint myca: the CA's next certificate (serial "
        f"{new_serial}, valid until {iso(certificate_facts(new_ca)[1])}) verified with the "
        f"current CA certificate; held as the shadow CA certificate until {iso(ca_end)}\n"
        "%PKI-6-CERTRENEWAUTO: Renewing the shadow router certificate of trustpoint myca "
        "(PKCSReq signed by the current certificate)\n"
        "%PKI-6-CERT_RENEW_HELD: Trustpoint myca: shadow router certificate (General Purpose, "
        f"serial {shadow_serial}) held until the CA's next certificate takes over\n")
    st = status(device)
    assert (st.ca_certificate, st.certificates) == (old_ca, (old_rc,))  # still in use
    assert st.shadow_ca_certificate == new_ca
    assert [c.der for c in st.shadow_certificates] == [received.certificate]
    assert st.shadow_certificates[0].key_id == old_rc.key_id  # the same key pair
    shown = device.execute("show crypto ca certificates").output
    assert shown.index("CA certificate\n") < shown.index("Router certificate\n") \
        < shown.index("Shadow CA certificate\nStatus             :Held\n"
                      f"Serial Number      :{new_serial}\n") \
        < shown.index("Shadow router certificate\nKey usage          :General Purpose\n"
                      f"Status             :Held\nSerial Number      :{shadow_serial}\n")
    shown = device.execute("show crypto ca trustpoint").output
    assert ("CA rollover         :shadow CA certificate held, current from "
            f"{ios_time(ca_end)}\n  Shadow certs      :1 of 1\n") in shown
    # the one timer left: the switch at the old CA's expiry (no renewal, no expiry alert:
    # both certificates are covered)
    assert _timer_lines(device)[2:] == [_timer(ca_end, at, "SHADOW myca")]
    assert_replays(device)

    assert jobs(clock_set(device, ca_end - 1_000_000)) == []
    r = clock_set(device, ca_end)
    assert due_types(r) == [["ShadowCAActivated", "ShadowCertificateActivated"]]
    (job,) = jobs(r)
    old_serial = certificate_facts(old_ca)[2]
    assert job.output == (
        f"%PKI-6-SHADOW_CA_ACTIVE: Trustpoint myca: the CA certificate (serial {old_serial}) "
        f"expired; the shadow CA certificate (serial {new_serial}) is now the CA certificate\n"
        "%PKI-6-SHADOW_CERT_ACTIVE: Trustpoint myca: the shadow router certificate (General "
        f"Purpose, serial {shadow_serial}) is now in use\n")
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED
    assert st.ca_certificate == new_ca and st.shadow_ca_certificate is None
    assert [c.der for c in st.certificates] == [received.certificate]
    assert st.shadow_certificates == () and st.rollover is None
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.IDLE
    shown = device.execute("show crypto ca certificates").output
    assert "Shadow" not in shown and f"Serial Number      :{new_serial}\n" in shown
    assert "CA rollover" not in device.execute("show crypto ca trustpoint").output
    # the next rollover's timer, at 90% of the new CA certificate's lifetime
    assert _timer(shadow_point(new_ca), ca_end, "SHADOW myca") in _timer_lines(device)
    logged = device.execute("show logging").output
    for name in ("SHADOW_CA_RECEIVED", "CERT_RENEW_HELD", "SHADOW_CA_ACTIVE",
                 "SHADOW_CERT_ACTIVE"):
        assert logged.count(f"%PKI-6-{name}") == 1
    assert "EXPIRY" not in logged
    assert_replays(device)
    # The CA issued the shadow certificate under its next certificate, on the strength of the
    # router's current one, which it may still renew under the current CA.
    issued = ca.state.certificates[format(shadow_cert.serial_number, "x")]
    assert issued.ca_generation == 2


class _Impostor:
    """The built-in CA's SCEP application, except that GetCACaps advertises GetNextCACert and
    GetNextCACert answers `next_ca` (default: the signer's own certificate), signed by
    `signer` (a key the device may not trust)."""

    def __init__(self, real: object, signer: Credential,
                 next_ca: x509.Certificate | None = None) -> None:
        self._real = real
        self._signer = signer
        self._next = next_ca or signer.certificate  # the CA certificate it answers

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def get_ca_caps(self) -> bytes:
        caps = parse_capabilities(self._real.get_ca_caps())  # type: ignore[attr-defined]
        return type(caps)(caps.keywords | {Capability.GET_NEXT_CA_CERT}).render()

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        return build_next_ca_certificates([self._next], signer=self._signer)


def test_a_next_ca_certificate_signed_by_another_key_is_refused(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=1000,
                                 certificate_days=2000)
    enrolled(device, ca, server)
    other = following_ca(tmp_path / "other", device, scep_network, url="http://other.invalid",
                         seed=9, base=300)[0]
    impostor = _Impostor(ScepFrontend(ca, Policy()), Credential(*other.ca_credentials()[0]))
    scep_network.attach(URL, impostor)  # type: ignore[arg-type]
    st = status(device)
    assert st.ca_certificate is not None
    at = shadow_point(st.ca_certificate)
    r = clock_set(device, at)
    assert due_types(r) == [["ShadowCAFetchFailed"]]
    (job,) = jobs(r)
    assert job.output == (
        "%PKI-3-SHADOW_CA_FAIL: Trustpoint myca: GetNextCACert failed: GetNextCACert: the "
        "signature does not verify (nothing was accepted). Next attempt at "
        f"{iso(at + RETRY)}.\n")
    st = status(device)
    assert st.shadow_ca_certificate is None and st.shadow_certificates == ()
    assert st.rollover is not None and st.rollover.attempts == 1
    assert ("CA rollover         :1 failed attempt, next at "
            f"{ios_time(at + RETRY)}\n  Last result       :GetNextCACert: the signature does "
            "not verify (nothing was accepted)\n") in device.execute(
                "show crypto ca trustpoint").output
    assert _timer(at + RETRY, at, "SHADOW myca") in _timer_lines(device)
    assert_replays(device)


def _offered_next_ca(device: Engine, tmp_path: Path, scep_network: InProcessTransport,
                     key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                     days: int) -> tuple[int, Result]:
    """An enrolled device whose CA's GetNextCACert offers a certificate for `key`, signed by
    the current CA key, valid `days` from the shadow point; the clock set to that point."""
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=1000,
                                 certificate_days=2000)
    enrolled(device, ca, server)
    current = Credential(*ca.ca_credentials()[0])
    st = status(device)
    assert st.ca_certificate is not None
    at = shadow_point(st.ca_certificate)
    start = dt.datetime.fromtimestamp(at // 1_000_000, dt.UTC)
    offered = (x509.CertificateBuilder().subject_name(current.certificate.subject)
               .issuer_name(current.certificate.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(True, None), critical=True)
               .sign(key, hashes.SHA256()))
    scep_network.attach(URL, _Impostor(ScepFrontend(ca, Policy()), current,  # type: ignore[arg-type]
                                       offered))
    return at, clock_set(device, at)


def test_a_next_ca_certificate_that_ends_before_the_switch_is_refused(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    """Signed by the current CA key, but it would be expired when it takes over: refused and
    retried, as a reply signed by another key is (it was held, then made the trustpoint's CA
    certificate at the switch, already expired)."""
    k = rsa.generate_private_key(65537, 2048)  # SCEP envelopes to an RSA key
    at, r = _offered_next_ca(device, tmp_path, scep_network, k, days=30)
    assert due_types(r) == [["ShadowCAFetchFailed"]]
    (job,) = jobs(r)
    assert "is not valid when the current one expires" in job.output, job.output
    assert job.output.endswith(f"(nothing was accepted). Next attempt at {iso(at + RETRY)}.\n")
    assert status(device).shadow_ca_certificate is None
    assert_replays(device)


def test_a_next_ca_certificate_with_an_ec_key_is_refused(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    """No SCEP request can be enveloped to an ECDSA key: refused at once (it was held, and
    the shadow enrollment that followed raised ValueError out of the job)."""
    _, r = _offered_next_ca(device, tmp_path, scep_network,
                            ec.generate_private_key(ec.SECP256R1()), days=3000)
    assert due_types(r) == [["ShadowCAFetchFailed"]]
    (job,) = jobs(r)
    assert "the next CA certificate's key is not RSA" in job.output, job.output
    assert status(device).shadow_ca_certificate is None
    assert_replays(device)


def test_a_ca_without_get_next_ca_cert_is_said_once_then_rechecked_daily(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=1000,
                                 certificate_days=2000)
    enrolled(device, ca, server)  # no `ca rollover`: nothing offered
    st = status(device)
    assert st.ca_certificate is not None
    at, ca_end = shadow_point(st.ca_certificate), certificate_facts(st.ca_certificate)[1]
    r = clock_set(device, at)
    assert due_types(r) == [["ShadowCANotOffered"]]
    assert jobs(r)[0].output == (
        "%PKI-4-CA_ROLLOVER_UNSUPPORTED: Trustpoint myca: the CA does not offer GetNextCACert, "
        "so its next certificate cannot be fetched; re-authenticate the trustpoint (remove "
        "it, add it again, crypto ca authenticate myca) before the CA certificate expires at "
        f"{iso(ca_end)}\n")
    assert _timer(at + DAY, at, "SHADOW myca") in _timer_lines(device)  # the daily re-check
    assert ("CA rollover         :the CA does not offer GetNextCACert; re-authenticate "
            f"before {ios_time(ca_end)}\n  Next check        :{ios_time(at + DAY)}\n"
            ) in device.execute("show crypto ca trustpoint").output

    # Re-checked daily, silently; a CA that cannot be reached for a re-check, too.
    later = clock_set(device, at + 29 * DAY)
    assert due_types(later) == [["ShadowCARechecked"]] * 29
    assert {d.output for d in jobs(later)} == {""}
    device.ports.scep = DownTransport()
    (down,) = jobs(clock_set(device, at + 30 * DAY))
    (ev,) = (rec.event for rec in down.events)
    assert isinstance(ev, ShadowCARechecked) and "Connection refused" in ev.detail
    assert down.output == ""
    device.ports.scep = scep_network
    assert device.execute("show logging").output.count("CA_ROLLOVER_UNSUPPORTED") == 1
    assert_replays(device)

    # The CA's operator rolls over at last: the next re-check fetches it and enrolls.
    clock_set(device, at + 30 * DAY + HOUR)
    new_ca = ca.rollover().certificate
    _serve_again(ca, scep_network)
    r = clock_set(device, at + 31 * DAY)
    assert due_types(r) == [["ShadowCAAccepted", "RenewalRequested",
                             "RenewalCertificateReceived"]]
    st = status(device)
    assert st.shadow_ca_certificate == new_ca and len(st.shadow_certificates) == 1
    assert "does not offer" not in device.execute("show crypto ca trustpoint").output
    assert_replays(device)


def test_a_ca_that_never_offers_one_is_said_once_more_in_its_last_week(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=100,
                                 certificate_days=200)
    enrolled(device, ca, server)
    st = status(device)
    assert st.ca_certificate is not None
    at, ca_end = shadow_point(st.ca_certificate), certificate_facts(st.ca_certificate)[1]
    r = clock_set(device, ca_end + DAY)
    said = [(d.events[0].at, d.output) for d in jobs(r) if d.events
            and type(d.events[0].event).__name__ == "ShadowCANotOffered"]
    assert [when for when, _ in said] == [at, at + 4 * DAY]  # then: 7 days or fewer left
    assert said[1][1] == (
        f"%PKI-2-CA_ROLLOVER_NONE: Trustpoint myca: the CA certificate expires at "
        f"{iso(ca_end)} and the CA still offers no next certificate (no GetNextCACert): the "
        "trustpoint stops working then; re-authenticate it now (remove it, add it again, "
        "crypto ca authenticate myca)\n")
    rechecks = [d.events[0].at for d in jobs(r) if due_types_of(d) == ["ShadowCARechecked"]]
    # daily, up to the CA certificate's end; none after it
    assert rechecks == [at + k * DAY for k in range(1, 20) if k != 4 and at + k * DAY < ca_end]
    logged = device.execute("show logging").output
    assert logged.count("CA_ROLLOVER_UNSUPPORTED") == logged.count("CA_ROLLOVER_NONE") == 1
    assert "SHADOW" not in timers(device)
    assert_replays(device)


def due_types_of(job: Result) -> list[str]:
    return [type(rec.event).__name__ for rec in job.events]


@pytest.mark.parametrize("what", ["GetNextCACert"])
def test_the_built_in_ca_refuses_get_next_ca_cert_before_a_rollover(
        tmp_path: Path, device: Engine, scep_network: InProcessTransport, what: str) -> None:
    following_ca(tmp_path / "ca", device, scep_network)
    reply = scep_network.get(URL + "/cgi-bin/pkiclient.exe", {"operation": what})
    assert reply.status == 400



def test_enrolling_in_the_ca_certificates_last_week_gives_no_alert_before_its_shadow(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    """A 100-day CA: the shadow CA is held from day 90, 60 days after the router certificate's
    first notice point. Enrolled on day 95, the notice and the shadow enrollment are both due
    at once; the notice waits for the enrollment, whose shadow certificate covers it."""
    from tests.trustpoint.tp_support import (
        authenticate,
        declare,
        enroll,
        event_types,
        identity_and_key,
    )

    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=100,
                                 certificate_days=200)
    identity_and_key(device)
    declare(device, url=server.url, period=60, count=5, extra=("auto-enroll 99",))
    assert event_types(authenticate(device)) == ["CACertificateAccepted"]
    ca_der = status(device).ca_certificate
    assert ca_der is not None
    ca_end = certificate_facts(ca_der)[1]
    clock_set(device, shadow_point(ca_der) - DAY)
    ca.rollover()
    _serve_again(ca, scep_network)
    walked = due_types(clock_set(device, shadow_point(ca_der)))  # (and the CA's notices)
    assert [t for t in walked if t != ["CertificateExpiryWarned"]] == [["ShadowCAAccepted"]]

    clock_set(device, ca_end - 5 * DAY)
    r = enroll(device, password=ca.mint_challenge())
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    (rc,) = status(device).certificates
    assert certificate_facts(rc.der)[1] == ca_end  # five days left: an alert would be due
    ran = [d for d in device.run_due() if d.events]  # a tick: every due job, in table order
    assert [event_types(d) for d in ran if "CrlFetched" not in event_types(d)] == [
        ["RenewalRequested", "RenewalCertificateReceived"]]
    assert "Router certificate (General Purpose)" not in device.execute("show logging").output
    assert len(status(device).shadow_certificates) == 1
    assert_replays(device)
