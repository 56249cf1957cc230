"""The CA's key commands over events (`ca init`, `ca rollover`, the log's audit key): given the
events a CA holds, when a command runs, then these events, these effects asked of the runtime
in this order, and these key files for the service to write. Keys are real (cached test keys)
and the CA certificate is really self-signed, so its validity is what the event records; the
RA certificates and CRLs get canned answers, and nothing touches a file or a log."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import runtime
from engine.audit.checkpoint import origin_for
from engine.audit.note import raw_public
from engine.ca import profile
from engine.ca.commands import (
    CA_KEY,
    RA_ENCRYPTION_KEY,
    RA_KEY_SPEC,
    RA_SIGNING_KEY,
    CreateAuditKey,
    Decided,
    DrawSerial,
    GenerateCAKey,
    HoldCAKey,
    Initialize,
    RollOver,
    SignCACertificate,
    SignCRL,
    SignRACertificate,
    decide,
    fold,
)
from engine.ca.errors import CAError
from engine.ca.keyfile import key_spec, load_private_key
from engine.ca.service import BuiltinCA
from engine.ca.state import CAState
from engine.effects import Effect, Now
from engine.keys import KeyAlgorithm, KeySpec, SealedKey
from engine.keystore import GenerateKeyPairs, MemoryKeystore
from engine.ports import FixedClock, to_micros
from engine.runtime import Ports, perform
from events.audit import AuditKeyCreated
from events.ca import CAInitialized, CARolledOver, CRLIssued
from events.filelog import FileEventLog, LogWriteFailed
from events.store import PendingEvent, Recorded
from tests.ca.ca_support import T0, ec_key, make_ca, rsa_key

NOW = to_micros(T0)
DAY = 86400 * 1_000_000
SUBJECT = x509.Name.from_rfc4514_string("CN=Test CA,O=trustledger")
INIT = Initialize(SUBJECT, "rsa:2048", 3650, 365, False, timedelta(days=7))
ED25519 = KeySpec(KeyAlgorithm.ED25519, 256)


@dataclass
class Script:
    """Answers a handler's effects as the ports would, with test keys; records every effect."""

    now: int = NOW
    serials: list[int] = field(default_factory=lambda: [(1 << 100) + n for n in range(1, 9)])
    next_key: int = 40
    keystore: MemoryKeystore = field(default_factory=MemoryKeystore)
    asked: list[Effect] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)

    def answer(self, eff: Effect) -> Any:
        self.asked.append(eff)
        if isinstance(eff, Now):
            return self.now
        if isinstance(eff, DrawSerial):
            return self.serials.pop(0)
        if isinstance(eff, GenerateCAKey):
            self.next_key += 1
            key = (ec_key(self.next_key) if eff.spec.algorithm is KeyAlgorithm.ECDSA
                   else rsa_key(self.next_key, eff.spec.size))
            self.keys.append(key)
            return key
        if isinstance(eff, SignCACertificate):
            return profile.ca_certificate(eff.key, eff.subject, eff.serial, eff.not_before,
                                          eff.not_after).public_bytes(serialization.Encoding.DER)
        if isinstance(eff, HoldCAKey):
            return None
        if isinstance(eff, SignRACertificate):
            return b"ra-" + eff.purpose.encode()
        if isinstance(eff, SignCRL):
            return b"crl-%d" % eff.number
        if isinstance(eff, GenerateKeyPairs):
            assert eff.specs == (ED25519,)
            audit_key = Ed25519PrivateKey.generate()
            self.keys.append(audit_key)
            return (self.keystore.seal(audit_key),)
        raise AssertionError(f"unexpected effect {eff}")


def when(state: CAState, command: object, script: Script) -> Decided:
    """Drive the handler as the runtime does; its state is what its events fold to."""
    gen = decide(state, command)
    reply: Any = None
    while True:
        try:
            eff = gen.send(reply)
        except StopIteration as stop:
            decided: Decided = stop.value
            assert decided.state == fold(state, decided.events, decided.at)
            return decided
        reply = script.answer(eff)


def kinds(script: Script) -> list[type]:
    return [type(e) for e in script.asked]


def initialized() -> CAState:
    return when(CAState(), INIT, Script(now=NOW - DAY)).state


def test_init_makes_the_key_the_certificate_and_the_first_crl_in_one_batch() -> None:
    script = Script()
    decided = when(CAState(), INIT, script)
    assert kinds(script) == [Now, GenerateCAKey, DrawSerial, SignCACertificate, HoldCAKey,
                             SignCRL]
    (ca_key,) = script.keys
    assert script.asked[1] == GenerateCAKey(key_spec("rsa:2048"))
    sign = script.asked[3]
    assert isinstance(sign, SignCACertificate)
    assert (sign.key, sign.subject, sign.serial) == (ca_key, SUBJECT, (1 << 100) + 1)
    assert (sign.not_before, sign.not_after) == (T0 - profile.CLOCK_SKEW,
                                                 T0 + timedelta(days=3650))
    ca_der = profile.ca_certificate(ca_key, SUBJECT, sign.serial, sign.not_before,
                                    sign.not_after).public_bytes(serialization.Encoding.DER)
    assert script.asked[4] == HoldCAKey(ca_key, ca_der)  # before the CRL it signs
    assert decided.events == [
        CAInitialized(SUBJECT.rfc4514_string(), "rsa:2048", ca_der, None, None, 365, 7 * 86400),
        CRLIssued(1, b"crl-1", NOW, NOW + 7 * DAY)]
    assert decided.keys == ((CA_KEY, ca_key),)
    assert (decided.at, decided.correlation) == (NOW, "")
    assert decided.state.initialized and decided.state.crl is not None


def test_init_with_ra_issues_both_ra_certificates_with_the_ca_key() -> None:
    script = Script()
    decided = when(CAState(), Initialize(SUBJECT, "ecdsa:p256", 30, 365, True,
                                         timedelta(days=1)), script)
    assert kinds(script) == [Now, GenerateCAKey, DrawSerial, SignCACertificate, HoldCAKey,
                             GenerateCAKey, GenerateCAKey, DrawSerial, SignRACertificate,
                             DrawSerial, SignRACertificate, SignCRL]
    ca_key, signing, encryption = script.keys
    assert script.asked[5] == script.asked[6] == GenerateCAKey(RA_KEY_SPEC)
    ra = [e for e in script.asked if isinstance(e, SignRACertificate)]
    assert [(e.key, e.purpose, e.serial) for e in ra] == [
        (signing, "signing", (1 << 100) + 2), (encryption, "encryption", (1 << 100) + 3)]
    assert all(e.not_after == T0 + timedelta(days=30) for e in ra)
    init = decided.events[0]
    assert isinstance(init, CAInitialized)
    assert (init.key_algorithm, init.ra_signing_certificate,
            init.ra_encryption_certificate) == ("ecdsa:p256", b"ra-signing", b"ra-encryption")
    assert decided.keys == ((CA_KEY, ca_key), (RA_SIGNING_KEY, signing),
                            (RA_ENCRYPTION_KEY, encryption))
    assert decided.state.ra_mode


def test_init_of_an_initialized_ca_is_refused() -> None:
    with pytest.raises(CAError, match="already initialized"):
        when(initialized(), INIT, Script())


def test_rollover_makes_the_next_key_and_certificate_valid_past_the_current_one() -> None:
    state = initialized()
    current = state.generations[0]
    script = Script()
    decided = when(state, RollOver(SUBJECT, 30), script)
    assert kinds(script) == [Now, GenerateCAKey, DrawSerial, SignCACertificate]
    (key,) = script.keys
    sign = script.asked[3]
    assert isinstance(sign, SignCACertificate)
    assert sign.key is key and sign.subject == SUBJECT
    assert sign.not_before == T0 - profile.CLOCK_SKEW
    assert to_micros(sign.not_after) == current.not_after + 30 * DAY
    der = profile.ca_certificate(key, SUBJECT, sign.serial, sign.not_before,
                                 sign.not_after).public_bytes(serialization.Encoding.DER)
    assert decided.events == [CARolledOver(2, "rsa:2048", "ca-2.key", der,
                                           to_micros(T0 - profile.CLOCK_SKEW),
                                           current.not_after + 30 * DAY)]
    assert decided.keys == (("ca-2.key", key),)
    assert [g.number for g in decided.state.generations] == [1, 2]


def test_rollover_without_days_lasts_as_long_as_the_current_certificate() -> None:
    state = initialized()
    current = state.generations[0]
    decided = when(state, RollOver(SUBJECT, None), Script())
    ev = decided.events[0]
    assert isinstance(ev, CARolledOver)
    assert ev.not_after == current.not_after + (current.not_after - current.not_before)


def test_a_refused_rollover_makes_no_key() -> None:
    state = when(initialized(), RollOver(SUBJECT, 30), Script()).state
    script = Script()
    with pytest.raises(CAError, match="already next"):
        when(state, RollOver(SUBJECT, 30), script)
    assert kinds(script) == [Now]


def test_the_audit_key_is_generated_by_the_port_sealed_and_recorded() -> None:
    state = initialized()
    script = Script()
    decided = when(state, CreateAuditKey("ca"), script)
    assert kinds(script) == [GenerateKeyPairs, Now]
    (key,) = script.keys
    public = raw_public(key.public_key())
    (ev,) = decided.events
    assert isinstance(ev, AuditKeyCreated)
    assert ev.origin == origin_for("ca", public)
    assert ev.public_key == public
    opened = script.keystore.private_key(SealedKey(ev.key_id, ev.spki, ev.nonce,
                                                   ev.sealed_private_key, ev.sealing))
    assert raw_public(opened.public_key()) == public  # type: ignore[arg-type]
    assert (decided.at, decided.correlation, decided.keys) == (NOW, "open", ())
    assert decided.state.audit_key is not None
    assert decided.state.audit_key.key_id == ev.key_id


# -- the service runs them through the kernel --------------------------------------------------


def test_the_service_makes_keys_and_certificates_only_through_the_runtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ca init`, `ca rollover` and the audit key perform every effect through the one
    runtime: a path that made a key or signed by hand, outside `drive`, would be missing
    here; and what each appended is exactly what its handler decided."""
    performed: list[Effect] = []

    def recording(eff: Effect, ports: Ports) -> Any:
        performed.append(eff)
        return perform(eff, ports)

    monkeypatch.setattr(runtime, "perform", recording)
    with make_ca(tmp_path / "ca", ra=True, audit=True) as ca:
        assert [type(e) for e in performed] == [
            Now, GenerateCAKey, DrawSerial, SignCACertificate, HoldCAKey, GenerateCAKey,
            GenerateCAKey, DrawSerial, SignRACertificate, DrawSerial, SignRACertificate, SignCRL,
            GenerateKeyPairs, Now]
        records = list(ca._log.read())
        assert [(r.type, r.actor, r.correlation) for r in records] == [
            ("CAInitialized", "operator", ""), ("CRLIssued", "operator", ""),
            ("AuditKeyCreated", "system", "open")]
        signing = performed[8]
        assert isinstance(signing, SignRACertificate)
        assert (tmp_path / "ca" / RA_SIGNING_KEY).read_bytes() == signing.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
    with make_ca(tmp_path / "ca2") as ca:
        performed.clear()
        generation = ca.rollover(30)
        assert [type(e) for e in performed] == [Now, GenerateCAKey, DrawSerial,
                                                SignCACertificate]
        made = performed[1]
        sign = performed[3]
        assert isinstance(sign, SignCACertificate) and isinstance(made, GenerateCAKey)
        (rolled,) = [r.event for r in ca._log.read() if r.type == "CARolledOver"]
        assert isinstance(rolled, CARolledOver) and rolled.ca_certificate == generation.certificate
        assert load_private_key(tmp_path / "ca2" / "ca-2.key").public_key() == \
            sign.key.public_key()


def test_an_audit_key_the_log_refuses_is_discarded_and_refuses_the_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ca"
    make_ca(root).close()
    append = FileEventLog.append

    def refusing(log: FileEventLog, batch: Sequence[PendingEvent]) -> list[Recorded]:
        if any(isinstance(p.event, AuditKeyCreated) for p in batch):
            raise LogWriteFailed(OSError(errno.ENOSPC, "No space left on device"), True)
        return append(log, batch)

    monkeypatch.setattr(FileEventLog, "append", refusing)
    with pytest.raises(CAError, match="cannot record the audit key: event log write failed: "
                                      "No space left on device"):
        BuiltinCA.open(root, clock=FixedClock(T0), audit=True)
    assert not list((root / "keystore").glob("*.dek"))  # no event names its data key
    monkeypatch.setattr(FileEventLog, "append", append)
    with BuiltinCA.open(root, clock=FixedClock(T0), audit=True) as ca:
        assert ca.state.audit_key is not None and ca.audit is not None
        assert [r.type for r in ca._log.read()][-1] == "AuditKeyCreated"
