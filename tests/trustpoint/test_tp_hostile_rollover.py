"""A hostile GetNextCACert at the CA-rollover point: garbage under the right Content-Type,
another Content-Type, the current CA certificate again (properly signed), a next
certificate that is no CA, an empty certificates-only answer. Each must be one
`ShadowCAFetchFailed` naming the cause, retried after RETRY; no shadow CA held, the current
CA and router certificates untouched, and the log replaying to the live state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.decide import Policy
from engine.ca.scep_frontend import ScepFrontend
from engine.rollover.schedule import RETRY, shadow_point
from engine.scep import Credential, build_next_ca_certificates, certs_only
from engine.scep.cms import sign
from events.rollover import ShadowCAFetchFailed
from tests.trustpoint.renewal_support import (
    assert_replays,
    clock_set,
    due_types,
    enrolled,
    following_ca,
    jobs,
)
from tests.trustpoint.test_tp_rollover import URL, _Impostor
from tests.trustpoint.tp_support import rsa_key, status

NEXT = "application/x-x509-next-ca-cert"
Answer = Callable[[Credential], tuple[str, bytes]]


def _not_a_ca(current: Credential) -> tuple[str, bytes]:
    k = rsa_key(11)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(current.certificate.subject)
            .issuer_name(current.certificate.subject).public_key(k.public_key())
            .serial_number(7).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=9000))
            .add_extension(x509.BasicConstraints(False, None), critical=True)
            .sign(k, hashes.SHA256()))
    return build_next_ca_certificates([cert], signer=current)


def _empty(current: Credential) -> tuple[str, bytes]:
    return NEXT, sign(certs_only([]), signer=current, attributes=(),
                      certificates=[current.certificate])


CASES: dict[str, tuple[Answer, str]] = {
    "garbage": (lambda c: (NEXT, b"\x30\x80garbage\x00\x00"), "GetNextCACert"),
    "another-content-type": (lambda c: ("text/html", b"<h1>hi</h1>"),
                             "unexpected Content-Type 'text/html'"),
    "the-current-ca-again": (lambda c: build_next_ca_certificates([c.certificate], signer=c),
                             "the current CA certificate, not a next one"),
    "not-a-ca": (_not_a_ca, "GetNextCACert: cannot tell the CA among 0 CA certificates"),
    "no-certificate": (_empty, "GetNextCACert"),
}


class _Hostile(_Impostor):
    def __init__(self, real: object, signer: Credential, answer: Answer) -> None:
        super().__init__(real, signer)
        self._answer = answer

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        return self._answer(self._signer)


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_next_ca_answer_holds_nothing_and_is_retried(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport, case: str) -> None:
    answer, words = CASES[case]
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=1000,
                                 certificate_days=2000)
    enrolled(device, ca, server)
    before = status(device)
    current = Credential(*ca.ca_credentials()[0])
    scep_network.attach(URL, _Hostile(ScepFrontend(ca, Policy()), current,  # type: ignore[arg-type]
                                      answer))
    assert before.ca_certificate is not None
    at = shadow_point(before.ca_certificate)
    r = clock_set(device, at)
    assert due_types(r) == [["ShadowCAFetchFailed"]], [j.output for j in jobs(r)]
    (job,) = jobs(r)
    (failed,) = (rec.event for rec in job.events)
    assert isinstance(failed, ShadowCAFetchFailed)
    assert words in failed.detail, failed
    assert job.output.startswith("%PKI-3-SHADOW_CA_FAIL: Trustpoint myca: ")
    assert "Traceback" not in job.output and "ParseError" not in job.output, job.output
    st = status(device)
    assert st.shadow_ca_certificate is None and st.shadow_certificates == ()
    assert (st.ca_certificate, st.certificates) == (before.ca_certificate,
                                                    before.certificates)
    assert st.rollover is not None and st.rollover.attempts == 1
    assert failed.next_attempt_at == at + RETRY
    assert_replays(device)


def test_a_shadow_certificate_not_valid_at_the_switch_is_refused(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport) -> None:
    """The shadow router certificate is installed when the CA's next certificate takes over,
    whatever its dates: one that ends before then was held, and would have been installed
    expired. Now the shadow enrollment fails (retried) and nothing is held."""
    from tests.trustpoint.test_tp_bad_peers import CraftingCA
    from tests.trustpoint.test_tp_hostile_renewal import Spoiling, _DeviceTime, _success
    from tests.trustpoint.test_tp_rollover import _serve_again

    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network, days=1000,
                                 certificate_days=2000)
    enrolled(device, ca, server, "auto-enroll 99")
    before = status(device)
    assert before.ca_certificate is not None
    at = shadow_point(before.ca_certificate)
    clock_set(device, at - 100 * 86_400_000_000)
    ca.rollover()
    _serve_again(ca, scep_network)
    crafting = CraftingCA(ca, _DeviceTime(device))  # type: ignore[arg-type]
    crafting.cred = Credential(*ca.ca_credentials()[-1])  # the next CA answers the shadow
    device.ports.scep = Spoiling(scep_network, crafting, _success((-1, 10)))
    r = clock_set(device, at)
    assert due_types(r) == [["ShadowCAAccepted", "RenewalRequested", "RenewalFailed"]], \
        [j.output for j in jobs(r)]
    failed = jobs(r)[0].events[-1].event
    assert "The shadow certificate is not valid when the CA's next certificate takes over" \
        in failed.detail, failed  # type: ignore[attr-defined]
    st = status(device)
    assert st.shadow_ca_certificate is not None and st.shadow_certificates == ()
    assert st.certificates == before.certificates
    assert_replays(device)
