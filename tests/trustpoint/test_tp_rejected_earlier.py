"""Enrolling again with the key of a request the CA rejected (issue 14 item 11): the CA
answers from its record of that transaction, and the device says so, quoting the CA's text,
instead of blaming the challenge password."""

from __future__ import annotations

import pytest

from engine import Engine
from engine.ca.decide import Approval
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from events.trustpoint import EnrollmentFailed
from tests.trustpoint.test_tp_enroll_ca import pending_txid, ready
from tests.trustpoint.tp_support import CAFactory, configure, enroll, event_types, status

pytestmark = pytest.mark.integration


def test_enrolling_again_after_a_rejection_says_the_ca_rejected_it(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    ready(device, server.url, period=1, count=10)
    enroll(device, password=ca.mint_challenge())
    txid = pending_txid(ca)
    ca.reject(txid, "unknown device")
    clock.advance(60)
    (polled,) = device.run_due()
    assert polled.output == (
        "%PKI-3-ENROLL_FAILED: Certificate enrollment for trustpoint myca failed: badRequest: "
        "the CA rejected this request (unknown device). A new key pair or the CA's approval is "
        "needed: 'crypto key generate rsa mykey' and enroll again, or ask the CA administrator to "
        "approve the request.\n")
    assert status(device).lifecycle is Lifecycle.AUTHENTICATED
    again = enroll(device, password=ca.mint_challenge())
    assert event_types(again) == ["EnrollmentRequested", "EnrollmentFailed"]
    assert again.output.endswith(
        "% Certificate enrollment for trustpoint myca failed: badRequest: the CA rejected this "
        "request earlier (unknown device). A new key pair or the CA's approval is needed: "
        "'crypto key generate rsa mykey' and enroll again, or ask the CA administrator to "
        "approve the request.\n")
    failed = again.events[1].event
    assert isinstance(failed, EnrollmentFailed)
    assert (failed.transaction_id, failed.fail_info) == (txid, "badRequest")
    assert failed.detail.startswith("the CA rejected this request earlier (unknown device).")


def test_the_ca_approving_a_rejected_request_lets_the_same_key_enroll(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    ready(device, server.url, period=1, count=10)
    enroll(device, password=ca.mint_challenge())
    txid = pending_txid(ca)
    ca.reject(txid, "unknown device")
    clock.advance(60)
    device.run_due()
    ca.approve(txid)  # the CA administrator changes their mind
    again = enroll(device, password=ca.mint_challenge())
    assert event_types(again)[-1] == "CertificateReceived"


def test_enrolling_the_same_key_at_another_ca_does_not_claim_an_earlier_rejection(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    """The trustpoint's enrollment URL now names another CA server (here: the same CA key and
    certificate, rebuilt with a fresh database, as after a migration). It never held the
    request, so its FAILURE is about the new message (a wrong password), not an earlier
    rejection."""
    ca, server = ca_factory(Approval.MANUAL)
    _, moved = ca_factory(Approval.AUTO, name="ca-moved")  # same seed: same CA certificate
    ready(device, server.url, period=1, count=10)
    enroll(device, password=ca.mint_challenge())
    ca.reject(pending_txid(ca), "unknown device")
    clock.advance(60)
    device.run_due()
    assert status(device).held_by_ca
    configure(device, "crypto ca trustpoint myca", f"enrollment url {moved.url}")
    assert status(device).held_by_ca == ()
    again = enroll(device, password="not the challenge")
    assert event_types(again) == ["EnrollmentRequested", "EnrollmentFailed"]
    assert again.output.endswith(
        "% Certificate enrollment for trustpoint myca failed: badRequest: the CA refused the "
        "request (often a wrong or reused challenge password); the CA says: wrong challenge "
        "password.\n"), again.output
