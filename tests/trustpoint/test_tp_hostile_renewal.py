"""A hostile CA answering an automatic renewal: the router enrolled with the built-in CA, then,
at the renewal point, the CA's PKIOperation answers are replaced by crafted ones (signed with
the CA's real key: a CA that misbehaves, not an impostor the CMS layer would catch). Each
answer must end the attempt as `RenewalFailed` with the cause in `%PKI-3-CERT_RENEW_FAIL`,
the current certificate kept in use, the next attempt after the back-off's first wait, and
the log replaying to the live state; never a traceback out of the timer job."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.renewal.schedule import next_attempt
from engine.scep import PkiStatus, ScepRequest, new_nonce
from engine.scep.certrep import _build
from engine.scep_client import HttpReply, ScepTransport
from events.renewal import RenewalFailed
from tests.trustpoint.renewal_support import (
    assert_replays,
    clock_set,
    due_types,
    enrolled,
    following_ca,
    jobs,
)
from tests.trustpoint.test_tp_bad_peers import PKI, CraftingCA
from tests.trustpoint.tp_support import backwards, rsa_key, status

MINUTE = 60_000_000
Answer = Callable[[CraftingCA, ScepRequest], HttpReply]


class Spoiling:
    """The device's SCEP transport with the CA's PKIOperation answers made by `answer`."""

    def __init__(self, inner: ScepTransport, crafting: CraftingCA, answer: Answer) -> None:
        self.inner, self.crafting, self.answer = inner, crafting, answer

    def get(self, url: str, params: Mapping[str, str]) -> HttpReply:
        if params.get("operation") == "PKIOperation":
            return self._pki(base64.b64decode(params["message"]))
        return self.inner.get(url, params)

    def post(self, url: str, params: Mapping[str, str], body: bytes) -> HttpReply:
        return self._pki(body)

    def _pki(self, body: bytes) -> HttpReply:
        return self.answer(self.crafting, self.crafting.open(body))


class _DeviceTime:
    """CraftingCA's clock: the device's engine clock (moved by `clock set`)."""

    def __init__(self, device: Engine) -> None:
        self.device = device

    @property
    def us(self) -> int:
        return self.device.ports.clock.now_us()


def _success(days: tuple[int, int] = (-1, 365), *, other_key: bool = False,
             other_ca: bool = False, ca: bool = False, swapped: bool = False) -> Answer:
    def answer(c: CraftingCA, req: ScepRequest) -> HttpReply:
        cert = c.certificate(req, public_key=rsa_key(7).public_key() if other_key else None,
                             signer=c.other if other_ca else None, days=days, ca=ca)
        if swapped:  # notBefore and notAfter exchanged
            cert = backwards(cert, c.cred.private_key)  # type: ignore[arg-type]
        return HttpReply(200, PKI, c.success(req, cert))
    return answer


def _unknown_fail_info(c: CraftingCA, req: ScepRequest) -> HttpReply:
    return HttpReply(200, PKI, _build(req.reply_to, PkiStatus.FAILURE, b"", signer=c.cred,
                                      sender_nonce=new_nonce(os.urandom), signing_time=None,
                                      extra_certificates=(),
                                      fail_info=99))  # type: ignore[arg-type]


def _success_without_content(c: CraftingCA, req: ScepRequest) -> HttpReply:
    return HttpReply(200, PKI, _build(req.reply_to, PkiStatus.SUCCESS, b"", signer=c.cred,
                                      sender_nonce=new_nonce(os.urandom), signing_time=None,
                                      extra_certificates=()))


CASES: dict[str, tuple[Answer, str]] = {
    # (the client takes from the CertRep only a certificate for the key it asked for)
    "another-key": (_success(other_key=True), "without a certificate for our key"),
    "another-ca": (_success(other_ca=True), "not issued by the trustpoint's CA"),
    "expired": (_success((-30, -1)), "has expired"),
    "a-ca-certificate": (_success(ca=True), "is a CA certificate (basicConstraints cA is "
                         "TRUE), not the end-entity certificate requested"),
    # Not expired, begins before the current one ends: the old checks held it, to install
    # it expired when it began.
    "ends-before-it-begins": (_success((1, 2), swapped=True), "ends before it begins"),
    "begins-after-the-current-ends": (_success((800, 1200)),
                                      "begins after the current certificate ends"),
    "unknown-fail-info": (_unknown_fail_info, "99"),
    "success-without-content": (_success_without_content, "SUCCESS without"),
    "garbage": (lambda c, req: HttpReply(200, PKI, b"\x30\x03\x02\x01\x00garbage"),
                "CertRep: malformed"),
    "http-500": (lambda c, req: HttpReply(500, "text/html", b"<h1>oops</h1>"), "500"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_renewal_answer_keeps_the_certificate_and_backs_off(
        device: Engine, tmp_path: Path, scep_network: InProcessTransport, case: str) -> None:
    answer, words = CASES[case]
    ca, server, _ = following_ca(tmp_path / "ca", device, scep_network)
    enrolled(device, ca, server, "auto-enroll 50", period=30, count=4)
    before = status(device).certificates
    at = next_attempt(device.state.trustpoint_configs["myca"], status(device))
    assert at is not None
    crafting = CraftingCA(ca, _DeviceTime(device))  # type: ignore[arg-type]
    device.ports.scep = Spoiling(scep_network, crafting, answer)
    r = clock_set(device, at)
    assert due_types(r) == [["RenewalRequested", "RenewalFailed"]], [j.output for j in jobs(r)]
    out = jobs(r)[0].output
    assert "Traceback" not in out and "\x1b" not in out
    (failed,) = (rec.event for rec in jobs(r)[0].events if isinstance(rec.event, RenewalFailed))
    assert words in failed.detail or words in failed.fail_info, failed
    assert failed.next_attempt_at == at + 30 * MINUTE
    assert "%PKI-3-CERT_RENEW_FAIL: Certificate renewal for trustpoint myca failed: " in out
    assert out.endswith(" The current certificate stays in use; next attempt at "
                        f"{_iso(at + 30 * MINUTE)}.\n"), out
    st = status(device)
    assert st.certificates == before and st.lifecycle is Lifecycle.ENROLLED
    assert st.next_certificates == ()
    assert st.renewal is not None and st.renewal.phase is RenewalPhase.RETRYING
    assert_replays(device)


def _iso(us: int) -> str:
    from datetime import UTC, datetime

    return f"{datetime.fromtimestamp(us // 1_000_000, UTC):%Y-%m-%dT%H:%M:%SZ}"


@pytest.mark.parametrize(("gap", "refused"), [(0, False), (1, False), (2, True)])
def test_a_successor_that_begins_the_second_after_the_end_leaves_no_gap(gap: int,
                                                                        refused: bool) -> None:
    """RFC 5280 §4.1.2.5: a certificate is valid through its notAfter second; a renewed one
    dated from the second after (some CAs date it so) is contiguous, not a gap."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from engine.errors import TrustledgerError
    from engine.ports import to_micros
    from engine.renewal.exchange import Window, _check_window

    end = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    key = rsa_key(0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(end + datetime.timedelta(seconds=gap))
            .not_valid_after(end + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    for window in (Window(to_micros(end), None), Window(to_micros(end), to_micros(end))):
        if refused:
            with pytest.raises(TrustledgerError):
                _check_window(cert, window)
        else:
            _check_window(cert, window)
