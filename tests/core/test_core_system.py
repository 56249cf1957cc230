"""The device's system commands (engine/system.py) over events: the shipped trustpool bundle
and the log's audit key, recorded when a data directory is opened. Given a state, when the
handler runs with canned answers, then these events and these effects asked; and when a
directory is opened, both run through the one runtime, their key from the KeyGenerator port,
one batch each by the actor `system`."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import runtime
from engine.audit.checkpoint import origin_for
from engine.audit.note import raw_public
from engine.effects import Effect, Outcome
from engine.keys import KeyAlgorithm, KeySpec, PrivateKey
from engine.keystore import CryptographyKeyGenerator, GenerateKeyPairs, MemoryKeystore
from engine.runtime import Ports, perform
from engine.state import DeviceState, evolve
from engine.system import ReadBuiltins, SystemHandler, make_audit_key, record_builtins
from events.audit import AuditKeyCreated
from events.filelog import FileEventLog, LogWriteFailed
from events.store import PendingEvent, Recorded
from events.trustpool import TrustpoolBuiltinsRecorded
from tests.core.engine_support import open_engine
from tests.trustpool.pool_support import fixed_builtins

ED25519 = KeySpec(KeyAlgorithm.ED25519, 256)


def when(handler: SystemHandler, answer: Callable[[Effect], Any]) -> tuple[Outcome, list[Effect]]:
    asked: list[Effect] = []
    reply: Any = None
    while True:
        try:
            eff = handler.send(reply)
        except StopIteration as stop:
            assert isinstance(stop.value, Outcome)
            return stop.value, asked
        asked.append(eff)
        reply = answer(eff)


def test_the_shipped_bundle_is_recorded_once() -> None:
    source = fixed_builtins()
    shipped = source()
    outcome, asked = when(record_builtins(DeviceState(), source), lambda eff: shipped)
    assert asked == [ReadBuiltins(source)]
    (ev,) = outcome.events
    assert isinstance(ev, TrustpoolBuiltinsRecorded)
    assert (ev.sha256, ev.source) == (hashlib.sha256(shipped.data).hexdigest(), "vectors")
    assert ev.certificates
    given = evolve(DeviceState(), ev, 1)
    again, _ = when(record_builtins(given, source), lambda eff: shipped)
    assert list(again.events) == []


def test_the_audit_key_is_generated_by_the_port_sealed_and_named_by_the_hostname() -> None:
    keystore = MemoryKeystore()
    made: list[Ed25519PrivateKey] = []

    def answer(eff: Effect) -> Any:
        assert isinstance(eff, GenerateKeyPairs) and eff.specs == (ED25519,)
        made.append(Ed25519PrivateKey.generate())
        return (keystore.seal(made[-1]),)

    outcome, asked = when(make_audit_key(DeviceState()), answer)
    assert len(asked) == 1
    (ev,) = outcome.events
    public = raw_public(made[0].public_key())
    assert isinstance(ev, AuditKeyCreated)
    assert (ev.origin, ev.public_key) == (origin_for(DeviceState().hostname, public), public)
    assert ev.key_id in keystore.key_ids()


class RecordingKeys:
    def __init__(self) -> None:
        self.asked: list[KeySpec] = []

    def generate(self, spec: KeySpec) -> PrivateKey:
        self.asked.append(spec)
        return CryptographyKeyGenerator().generate(spec)


def test_opening_runs_them_through_the_runtime_one_batch_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path that made the audit key or appended the bundle by hand, outside the runtime and
    its ports, would be missing here."""
    performed: list[Effect] = []

    def recording(eff: Effect, ports: Ports) -> Any:
        performed.append(eff)
        return perform(eff, ports)

    monkeypatch.setattr(runtime, "perform", recording)
    keys = RecordingKeys()
    e = open_engine(tmp_path / "dev", builtins=fixed_builtins(), audit=True, keygen=keys)
    try:
        assert [type(eff) for eff in performed] == [GenerateKeyPairs, ReadBuiltins]
        assert keys.asked == [ED25519]
        assert e.log is not None
        records = list(e.log.read())
        assert [(r.type, r.actor, r.correlation) for r in records] == [
            ("AuditKeyCreated", "system", "open"), ("TrustpoolBuiltinsRecorded", "system", "open")]
        assert e.state.audit_key is not None and e.state.trustpool.builtin_sha256
        assert e.audit is not None and e.audit.size == 2
    finally:
        e.close()
    performed.clear()
    again = open_engine(tmp_path / "dev", builtins=fixed_builtins(), audit=True, keygen=keys)
    try:
        assert [type(eff) for eff in performed] == [ReadBuiltins]  # nothing new to record
        assert again.state.seq == 2 and keys.asked == [ED25519]
    finally:
        again.close()


def failing_log(root: Path, refuse: str) -> FileEventLog:
    """The data directory's log, refusing (as a full disk would) every batch holding `refuse`."""
    (root / "log").mkdir(parents=True, mode=0o700)
    log = FileEventLog.open(root / "log")
    append = log.append

    def refusing(batch: Sequence[PendingEvent]) -> list[Recorded]:
        if any(p.event.type_name == refuse for p in batch):
            raise LogWriteFailed(OSError(errno.ENOSPC, "No space left on device"), True)
        return append(batch)

    log.append = refusing  # type: ignore[method-assign]
    return log


def test_an_audit_key_that_cannot_be_recorded_is_discarded_and_said(tmp_path: Path) -> None:
    root = tmp_path / "dev"
    e = open_engine(root, audit=True, log=failing_log(root, "AuditKeyCreated"))
    try:
        assert e.notices == ["%AUDIT-4-NO_KEY: the audit key could not be recorded (No space "
                             "left on device); it is tried again at the next open."]
        assert e.state.audit_key is None and e.state.seq == 0 and e.audit is None
        assert not list((root / "keystore").glob("*.dek"))  # its data key went with it
    finally:
        e.close()
    again = open_engine(root, audit=True)
    try:
        assert again.state.audit_key is not None and again.notices == []
    finally:
        again.close()


def test_a_bundle_that_cannot_be_recorded_is_said_and_tried_again(tmp_path: Path) -> None:
    root = tmp_path / "dev"
    e = open_engine(root, builtins=fixed_builtins(),
                    log=failing_log(root, "TrustpoolBuiltinsRecorded"))
    try:
        assert e.notices == ["%PKI-4-TRUSTPOOL_BUILTIN: the built-in CA bundle could not be "
                             "recorded (No space left on device); it is tried again at the "
                             "next open."]
        assert not e.state.trustpool.builtin_sha256
    finally:
        e.close()
    again = open_engine(root, builtins=fixed_builtins())
    try:
        assert again.state.trustpool.builtin_sha256 and again.notices == []
    finally:
        again.close()
