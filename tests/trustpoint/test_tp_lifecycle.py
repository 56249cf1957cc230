"""The trustpoint lifecycle (issue 6 item 2): the table in engine/machines/trustpoint.py and the
folds in
engine/trustpoints.py agree, driven through real commands against the built-in CA (manual
approval, so requests stay PENDING until the test approves or rejects them); and exec commands
that are illegal in a state get a `%` error and append nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509

from engine import Engine
from engine.ca import profile
from engine.ca.decide import Approval
from engine.ca.service import BuiltinCA
from engine.engine import Result
from engine.machines.trustpoint import LIFECYCLE, TABLE, Lifecycle
from engine.ports import FakeClock
from engine.state import DeviceState, evolve
from engine.trustpoints import trustpoint_config
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    configure,
    declare,
    der,
    enroll,
    event_types,
    identity_and_key,
    pem_lines,
    run,
    status,
)

EDGES = set(LIFECYCLE.pairs)


@dataclass
class World:
    device: Engine
    ca: BuiltinCA
    clock: FakeClock

    def pending_txid(self) -> str:
        (req,) = [r for r in self.ca.requests() if r.status.value == "pending"]
        return req.transaction_id

    def poll(self) -> Result:
        self.clock.advance(2 * 60)
        (result,) = self.device.run_due()
        return result


@pytest.fixture
def world(device: Engine, ca_factory: CAFactory, clock: FakeClock) -> World:
    ca, server = ca_factory(Approval.MANUAL)
    identity_and_key(device)
    declare(device, url=server.url)
    return World(device, ca, clock)


# -- getting a trustpoint into a state, through real commands --------------------------------------


def to_authenticated(w: World) -> None:
    assert authenticate(w.device).ok


def to_enrolling(w: World) -> None:
    to_authenticated(w)
    r = enroll(w.device, password=w.ca.mint_challenge())
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentPending"], r.output


def to_enrolled(w: World) -> None:
    to_enrolling(w)
    w.ca.approve(w.pending_txid())
    assert event_types(w.poll()) == ["CertificateReceived"]


def to_revoked(w: World) -> None:
    to_enrolled(w)
    assert fire_revoke(w) == ["CrlFetched", "RouterCertificateRevoked"]


REACH: dict[Lifecycle, Callable[[World], None]] = {
    Lifecycle.DECLARED: lambda w: None,
    Lifecycle.AUTHENTICATED: to_authenticated,
    Lifecycle.ENROLLING: to_enrolling,
    Lifecycle.ENROLLED: to_enrolled,
    Lifecycle.REVOKED: to_revoked,
}


# -- firing a trigger, through real commands; each returns the event types it appended ------------


def fire_authenticate(w: World) -> list[str]:
    return event_types(authenticate(w.device))


def fire_enroll(w: World) -> list[str]:
    again = []
    if status(w.device).certificates:
        # Re-enrollment with a new key pair: the same key would send the same transactionID
        # (a hash of the key), which the CA answers with the certificate it already issued.
        r = w.device.execute("crypto key generate rsa newkey", answers=["2048"])
        assert r.ok, r.output
        configure(w.device, "crypto ca trustpoint myca", "rsakeypair newkey")
        again = ["yes"]
    pw = w.ca.mint_challenge()
    return event_types(w.device.execute("crypto ca enroll myca", answers=[*again, pw, pw]))


def fire_pending(w: World) -> list[str]:
    return event_types(w.poll())


def fire_issued(w: World) -> list[str]:
    w.ca.approve(w.pending_txid())
    return event_types(w.poll())


def fire_fail(w: World) -> list[str]:
    w.ca.reject(w.pending_txid(), "not this one")
    return event_types(w.poll())


def fire_cancel(w: World) -> list[str]:
    return event_types(w.device.execute("crypto ca cancel-enroll myca"))


def fire_revoke(w: World) -> list[str]:
    """The CA revokes the router certificate; the device's next CRL fetch (the one due right
    after the enrollment, over SCEP GetCRL) finds it."""
    (rc,) = status(w.device).certificates
    serial = x509.load_der_x509_certificate(rc.der).serial_number
    w.ca.revoke(profile.serial_hex(serial), "keyCompromise")
    return [t for r in w.device.run_due() for t in event_types(r)]


def fire_lose_certificates(w: World) -> list[str]:
    label = trustpoint_config(w.device.state, "myca").key_label  # type: ignore[union-attr]
    return event_types(w.device.execute(f"crypto key zeroize rsa {label}", answers=["yes"]))


FIRE: dict[str, tuple[Callable[[World], list[str]], list[str]]] = {
    "authenticate": (fire_authenticate, ["CACertificateAccepted"]),
    "enroll": (fire_enroll, ["EnrollmentRequested", "EnrollmentPending"]),
    "pending": (fire_pending, ["EnrollmentPending"]),
    "issued": (fire_issued, ["CertificateReceived"]),
    "fail": (fire_fail, ["EnrollmentFailed"]),
    "cancel": (fire_cancel, ["EnrollmentFailed"]),
    "lose_certificates": (fire_lose_certificates, ["KeyPairZeroized"]),
    "revoke": (fire_revoke, ["CrlFetched", "RouterCertificateRevoked"]),
    "renewal_failed": (fire_fail, ["EnrollmentFailed"]),
    "renewal_cancelled": (fire_cancel, ["EnrollmentFailed"]),
}


def to_renewing(w: World) -> None:
    """enrolling again, with a certificate installed (a re-enrollment in flight)."""
    to_enrolled(w)
    assert fire_enroll(w) == ["EnrollmentRequested", "EnrollmentPending"]

# The edges real commands against a real CA walk (the others: tests/machines). revoked ->
# revoked needs a second router certificate (usage keys): test_tp_machine.py walks it.
PAIRS = [(src, trigger, dst) for src, trigger, dst in LIFECYCLE.pairs
         if trigger in FIRE and (src, trigger) != (Lifecycle.REVOKED, "revoke")]


def lifecycles_along_the_log(e: Engine) -> list[tuple[Lifecycle, str, Lifecycle]]:
    """Replay the device log event by event: every change of myca's lifecycle, with its event."""
    state, seen = DeviceState(), []
    for rec in e.store.read():
        before = state.trustpoints.get("myca")
        state = evolve(state, rec.event, rec.at, rec.seq)
        after = state.trustpoints.get("myca")
        b = before.lifecycle if before else Lifecycle.DECLARED
        a = after.lifecycle if after else Lifecycle.DECLARED
        if a is not b:
            seen.append((b, type(rec.event).__name__, a))
    return seen


@pytest.mark.integration
@pytest.mark.parametrize(("src", "trigger", "dst"), PAIRS,
                         ids=[f"{s.value}-{t}" for s, t, _ in PAIRS])
def test_fold_agrees_with_table(world: World, src: Lifecycle, trigger: str,
                                dst: Lifecycle) -> None:
    (to_renewing if trigger.startswith("renewal_") else REACH[src])(world)
    assert status(world.device).lifecycle is src
    fire, expected_events = FIRE[trigger]
    assert fire(world) == expected_events
    assert status(world.device).lifecycle is dst
    # Every lifecycle change the log's events made on the way is an edge of the table.
    trig_of = {"CACertificateAccepted": {"authenticate"}, "EnrollmentRequested": {"enroll"},
               "CertificateReceived": {"issued"},
               "EnrollmentFailed": {"fail", "cancel", "renewal_failed", "renewal_cancelled"},
               "KeyPairZeroized": {"lose_certificates", "renewal_key_lost"},
               "RouterCertificateRevoked": {"revoke"}}
    for before, ev, after in lifecycles_along_the_log(world.device):
        assert any((before, t, after) in EDGES for t in trig_of[ev]), (before, ev, after)


@pytest.mark.integration
def test_failed_reenrollment_keeps_the_installed_certificate(world: World) -> None:
    """A failed *re*-enrollment keeps the router certificate already installed: the table's
    `renewal_failed` edge, enrolling -> enrolled."""
    to_enrolled(world)
    old = status(world.device).certificates
    assert fire_enroll(world) == ["EnrollmentRequested", "EnrollmentPending"]
    assert fire_fail(world) == ["EnrollmentFailed"]
    st = status(world.device)
    assert st.lifecycle is Lifecycle.ENROLLED
    assert st.certificates == old and st.enrollment is None


def test_machine_is_the_table() -> None:
    for state in Lifecycle:
        legal = {e.trigger for e in TABLE if state in e.sources}
        assert set(LIFECYCLE.triggers_from(state)) == legal
        for e in TABLE:
            assert LIFECYCLE.allows(state, e.trigger) == (state in e.sources)
            if state in e.sources:
                assert LIFECYCLE.destination(state, e.trigger) is (e.dest or state)
    assert not LIFECYCLE.allows(Lifecycle.DECLARED, "no-such-trigger")


# -- illegal exec commands write nothing -------------------------------------------------------


def refused(e: Engine, line: str, answers: list[str] | None = None) -> Result:
    head, state = e.store.head, e.state
    r = e.execute(line, answers=answers)
    assert not r.ok, r.output
    assert r.output.startswith("%"), r.output
    assert r.events == []
    assert e.store.head == head
    assert e.state is state
    return r


@pytest.mark.integration
def test_enroll_before_authenticate(world: World) -> None:
    r = refused(world.device, "crypto ca enroll myca", ["pw", "pw"])
    assert "not authenticated" in r.output and "crypto ca authenticate myca" in r.output


@pytest.mark.integration
def test_authenticate_twice(world: World) -> None:
    to_authenticated(world)
    r = refused(world.device, "crypto ca authenticate myca", ["yes"])
    assert "already has an authenticated CA certificate" in r.output


@pytest.mark.integration
@pytest.mark.parametrize("src", [Lifecycle.ENROLLING, Lifecycle.ENROLLED])
def test_authenticate_after_enrollment_started(world: World, src: Lifecycle) -> None:
    REACH[src](world)
    refused(world.device, "crypto ca authenticate myca", ["yes"])


@pytest.mark.integration
@pytest.mark.parametrize("src", [Lifecycle.DECLARED, Lifecycle.AUTHENTICATED,
                                 Lifecycle.ENROLLED])
def test_cancel_enroll_with_nothing_pending(world: World, src: Lifecycle) -> None:
    REACH[src](world)
    r = refused(world.device, "crypto ca cancel-enroll myca")
    assert "no enrollment in progress" in r.output


@pytest.mark.integration
def test_enroll_while_enrolling(world: World) -> None:
    to_enrolling(world)
    r = refused(world.device, "crypto ca enroll myca", ["pw", "pw"])
    assert "already in progress" in r.output


@pytest.mark.integration
@pytest.mark.parametrize("src", [Lifecycle.DECLARED, Lifecycle.AUTHENTICATED,
                                 Lifecycle.ENROLLING, Lifecycle.ENROLLED])
def test_import_with_nothing_pending(world: World, src: Lifecycle) -> None:
    """Nothing waits for a pasted certificate (an SCEP enrollment in flight does not count)."""
    REACH[src](world)
    paste = pem_lines(der(world.ca.ca_certificate))
    r = refused(world.device, "crypto ca import myca certificate", paste)
    assert "no cut-and-paste request waiting" in r.output


@pytest.mark.integration
@pytest.mark.parametrize("line", ["crypto ca authenticate nosuch", "crypto ca enroll nosuch",
                                  "crypto ca cancel-enroll nosuch",
                                  "crypto ca import nosuch certificate"])
def test_unknown_trustpoint(world: World, line: str) -> None:
    r = refused(world.device, line, ["x", "x"])
    assert "Trustpoint nosuch is not configured" in r.output


def test_no_enrollment_method(device: Engine) -> None:
    configure(device, "crypto ca trustpoint bare")
    r = refused(device, "crypto ca authenticate bare", ["yes"])
    assert "no enrollment method" in r.output


@pytest.mark.integration
def test_zeroizing_the_key_of_a_reenrollment_in_flight(world: World) -> None:
    """Re-enrolling with a new key pair, then zeroizing that pair: the request is dropped and the
    certificate of the old key stays, so the trustpoint is enrolled (not enrolling with nothing
    in flight, where cancel-enroll would have nothing to cancel)."""
    to_enrolled(world)
    assert fire_enroll(world) == ["EnrollmentRequested", "EnrollmentPending"]
    assert fire_lose_certificates(world) == ["KeyPairZeroized"]
    st = status(world.device)
    assert st.enrollment is None and len(st.certificates) == 1
    assert st.lifecycle is Lifecycle.ENROLLED
    refused(world.device, "crypto ca cancel-enroll myca")
    # No poll: what is due is the CRL fetch after the first enrollment, answered by the CA's
    # HTTP CDP (served in process; a GetCRL would need the zeroized key pair, newkey).
    (job,) = world.device.run_due()
    assert event_types(job) == ["CrlFetched"]
    assert job.events[0].event.source.endswith("/crl/ca.crl")


@pytest.mark.integration
@pytest.mark.parametrize("src", list(REACH), ids=[s.value for s in REACH])
def test_no_trustpoint_removes_it_from_any_state(world: World, src: Lifecycle) -> None:
    REACH[src](world)
    held = ["TrustpointCertificatesRemoved"] if status(world.device).ca_certificate else []
    run(world.device, "configure", "no crypto ca trustpoint myca")
    r = world.device.execute("commit", answers=["yes"])
    assert event_types(r) == [*held, "ConfigurationCommitted"]
    run(world.device, "end")
    assert "myca" not in world.device.state.trustpoints
    assert world.device.execute("show crypto ca certificates").output == ""
    world.clock.advance(3600)
    assert world.device.run_due() == []  # a pending enrollment stops polling with it
