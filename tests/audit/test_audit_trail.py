"""The device's audit trail (issue 18 items 1-2 and the open check of item 3): the audit key
made at first open and kept in the keystore, a checkpoint after every trust decision and none
after other commands, the tree and latest checkpoint persisted beside the log so opening does
not rebuild them, and a log cut back below, or rewritten under, its latest checkpoint refusing
to open."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import events.ca  # noqa: F401  (the CA's event types: its trust decisions are in the table)
from engine.audit.checkpoint import parse_checkpoint
from engine.audit.decisions import CHECKPOINT_AFTER
from engine.audit.merkle import CompactRange, leaf_hash
from engine.audit.note import verify_note
from engine.audit.trail import (
    AUDIT_FILE,
    AuditMismatch,
    open_trail,
    read_checkpoints,
    read_saved,
)
from engine.engine import Engine
from engine.ports import FakeClock
from events.filelog import FileEventLog
from events.registry import event_from, known_types
from events.store import PendingEvent
from tests.audit.trail_support import audited_device, checkpoint_sizes, commit_hostname, cut_log
from tests.core.engine_support import open_engine


@pytest.fixture
def device(tmp_path: Path) -> Path:
    return audited_device(tmp_path / "dev")


def test_every_trust_decision_name_is_an_event_type() -> None:
    assert CHECKPOINT_AFTER - set(known_types()) == set()


def test_the_key_is_made_at_first_open_only_when_asked(tmp_path: Path) -> None:
    plain = open_engine(tmp_path / "plain")
    assert plain.state.audit_key is None and plain.audit is None
    plain.close()
    assert not (tmp_path / "plain" / "log" / AUDIT_FILE).exists()
    e = open_engine(tmp_path / "dev", audit=True)
    key = e.state.audit_key
    assert key is not None
    assert key.origin.startswith("trustledger.example/ios/")
    assert (tmp_path / "dev" / "keystore" / f"{key.key_id}.dek").exists()
    e.close()
    again = open_engine(tmp_path / "dev", audit=True)  # never a second key
    assert again.state.audit_key == key and again.state.seq == 1
    assert again.notices == []  # its data key is not taken for an orphan
    again.close()


def test_a_checkpoint_follows_each_trust_decision_and_nothing_else(device: Path) -> None:
    assert checkpoint_sizes(device) == [1, 2, 3, 4]  # the key, then each commit
    e = open_engine(device)
    assert e.execute("clock set 14:30:00 1 December 2026").ok  # not a trust decision
    assert e.audit is not None and e.audit.latest is not None
    assert e.audit.latest.checkpoint.size == 4 and e.audit.size == 5
    commit_hostname(e, "r4")
    assert e.audit.latest.checkpoint.size == 6
    e.close()
    assert checkpoint_sizes(device) == [1, 2, 3, 4, 6]


def test_each_checkpoint_signs_the_root_of_the_log_so_far(device: Path) -> None:
    e = open_engine(device)
    assert e.audit is not None
    verifier = e.state.audit_key.verifier() if e.state.audit_key else None
    assert verifier is not None
    hashes = [r.hash for r in e.store.read()]
    e.close()
    for note in read_checkpoints(device / "log"):
        cp = parse_checkpoint(verify_note(note, [verifier])[0])
        rng = CompactRange()
        rng.extend(leaf_hash(h) for h in hashes[:cp.size])
        assert cp.root == rng.root()


def test_the_tree_is_saved_with_the_head_and_reopening_reads_no_old_event(device: Path) -> None:
    saved = read_saved(device / "log")
    assert saved is not None and saved.latest is not None
    assert saved.tree.size == 4 and saved.latest.checkpoint.size == 4
    with FileEventLog.open(device / "log", readonly=True) as log:
        key = event_key(log)
        read = log.read_rows

        def no_full_read(from_seq: int = 1, **kw: bool) -> object:
            assert from_seq > 4, "the tree was rebuilt from old events"
            return read(from_seq, **kw)

        log.read_rows = no_full_read  # type: ignore[method-assign]
        trail = open_trail(log.root, log, key, lambda: pytest.fail("signed at open"))
    assert trail.size == 4 and trail.range.root() == saved.latest.checkpoint.root


def event_key(log: FileEventLog):  # type: ignore[no-untyped-def]
    from engine.audit.export import find_key

    return find_key(log)


def test_the_range_catches_up_from_where_it_was_saved(device: Path) -> None:
    """A crash after the trail was last written: the events since are read from there."""
    e = open_engine(device)
    commit_hostname(e, "r5")
    assert isinstance(e.store, FileEventLog)
    e.store.on_mark = None  # a crash: the trail is not written with the last marker
    e.store.close()
    assert read_saved(device / "log").tree.size == 4  # type: ignore[union-attr]
    again = open_engine(device)
    assert again.audit is not None and again.audit.size == 5
    rng = CompactRange()
    rng.extend(leaf_hash(r.hash) for r in again.store.read())
    assert again.audit.range.root() == rng.root()
    again.close()


def test_a_log_cut_below_its_checkpoint_refuses_to_open(device: Path) -> None:
    cut_log(device, 2)
    with pytest.raises(AuditMismatch) as caught:
        open_engine(device)
    text = caught.value.render()
    assert text.startswith("% The event log ends at seq 2, but the audit checkpoint signed "
                           "at tree size 4")
    assert "events 3-4 are missing. Refusing to open." in text


def test_a_log_cut_back_with_its_audit_file_gone_is_checked_against_checkpoints(
        device: Path) -> None:
    """Review 5: without AUDIT, the newest checkpoint in CHECKPOINTS still binds the log: a
    device must not reopen a cut-back log and sign a second checkpoint for a size it signed."""
    cut_log(device, 3)
    (device / "log" / AUDIT_FILE).unlink()
    before = (device / "log" / "CHECKPOINTS").read_bytes()
    with pytest.raises(AuditMismatch) as caught:
        open_engine(device)
    assert caught.value.render().startswith(
        "% The event log ends at seq 3, but the checkpoint recorded at tree size 4")
    assert "event 4 is missing. Refusing to open." in caught.value.render()
    assert (device / "log" / "CHECKPOINTS").read_bytes() == before


def test_a_rewritten_log_without_its_audit_file_refuses_to_open(device: Path) -> None:
    """Review 5: the same length, but not the events the recorded checkpoint signed."""
    cut_log(device, 3)
    (device / "log" / AUDIT_FILE).unlink()
    recorded = (device / "log" / "CHECKPOINTS").read_bytes()
    (device / "log" / "CHECKPOINTS").unlink()  # moved aside: the cut-back log opens
    e = open_engine(device)
    commit_hostname(e, "evil")  # seq 4 again, another event
    assert e.state.seq == 4
    e.close()
    (device / "log" / AUDIT_FILE).unlink()
    (device / "log" / "CHECKPOINTS").write_bytes(recorded)  # and the old record put back
    with pytest.raises(AuditMismatch, match=r"^% The event log's first 4 events do not have "
                       r"the root of the checkpoint recorded at tree size 4 .*rewritten"):
        open_engine(device)


def test_a_rewritten_log_refuses_to_open(device: Path, tmp_path: Path) -> None:
    """The same key, the same length, one event changed, the hash chain recomputed, the
    audit files copied beside it: the chain hash at the checkpoint's seq differs."""
    forged = tmp_path / "forged"
    shutil.copytree(device, forged)
    shutil.rmtree(forged / "log")
    (forged / "log").mkdir()
    with FileEventLog.open(device / "log", readonly=True) as src, \
            FileEventLog.open(forged / "log") as dst:
        for rec in src.read():
            ev = event_from(rec.type, rec.v, rec.payload)
            if rec.seq == 3:
                payload = dict(rec.payload)
                payload["label"] = "forged"
                ev = event_from(rec.type, rec.v, payload)
            dst.append([PendingEvent(ev, rec.stream, rec.at, rec.actor, rec.correlation)])
    for name in (AUDIT_FILE, "CHECKPOINTS"):
        shutil.copy(device / "log" / name, forged / "log" / name)
    with pytest.raises(AuditMismatch, match=r"^% The event log is not the one the audit "
                       r"checkpoint signed at tree size 4 .* covers: at seq 4 .*rewritten"):
        Engine.open(forged, clock=FakeClock())


def test_an_audit_trail_beside_a_log_without_a_key_refuses(device: Path,
                                                           tmp_path: Path) -> None:
    other = open_engine(tmp_path / "other")
    commit_hostname(other, "x")
    other.close()
    shutil.copy(device / "log" / AUDIT_FILE, tmp_path / "other" / "log" / AUDIT_FILE)
    with pytest.raises(AuditMismatch, match="no audit key"):
        open_engine(tmp_path / "other")


def test_a_damaged_audit_file_refuses_and_says_how_to_go_on(device: Path) -> None:
    path = device / "log" / AUDIT_FILE
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(AuditMismatch, match=r"is damaged .*\(move the file aside"):
        open_engine(device)
    path.unlink()  # moved aside: the tree is rebuilt from the log, and checked from now on
    e = open_engine(device)
    assert e.audit is not None and e.audit.size == 4
    e.close()


def test_signing_after_reopen_uses_the_key_from_the_keystore(device: Path) -> None:
    e = open_engine(device)
    commit_hostname(e, "r9")
    assert e.audit is not None and e.audit.latest is not None
    assert e.audit.latest.checkpoint.size == 5
    assert e.state.audit_key is not None
    verify_note(e.audit.latest.note, [e.state.audit_key.verifier()])
    e.close()


def test_a_key_that_cannot_be_made_leaves_the_device_usable_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTLEDGER_MASTER_KEY", "not a key")
    e = open_engine(tmp_path / "dev", audit=True)
    assert e.audit is None and e.state.audit_key is None
    (notice,) = e.notices
    assert notice.startswith("%AUDIT-4-NO_KEY: the audit key could not be made (")
    assert notice.endswith("it is tried again at the next open.")
    commit_hostname(e, "r1")
    e.close()
    monkeypatch.delenv("TRUSTLEDGER_MASTER_KEY")
    again = open_engine(tmp_path / "dev", audit=True)
    assert again.state.audit_key is not None and again.audit is not None
    assert again.audit.size == 2 and again.audit.latest is not None  # the upgrade's checkpoint
    again.close()


def test_the_trail_is_written_in_the_marker_step_and_only_what_is_acknowledged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No write of its own per command: the trail goes out when the head marker does (here
    after every fdatasync), holding the checkpoints of acknowledged events only."""
    import events.filelog

    monkeypatch.setattr(events.filelog, "MARK_EVERY", 0.0)
    e = open_engine(tmp_path / "dev", audit=True)
    commit_hostname(e, "r1")  # seq 2; its checkpoint is signed after its marker step ...
    assert checkpoint_sizes(tmp_path / "dev") == [1]
    assert e.execute("clock set 14:30:00 1 December 2026").ok  # ... and written with the next
    assert checkpoint_sizes(tmp_path / "dev") == [1, 2]
    saved = read_saved(tmp_path / "dev" / "log")
    assert saved is not None and saved.tree.size == 2  # the tree as of that marker step
    assert e.audit is not None
    e.store.close()
    # A checkpoint of a tree past what the marker acknowledges is kept back, and so is the
    # tree: what is written is the newest checkpoint's, the last one known to be acknowledged.
    trail = e.audit
    trail.range.append(leaf_hash(bytes(32)))  # seq 4, which the log has not acknowledged
    trail.checkpoint()
    trail.persist(upto=3)
    assert checkpoint_sizes(tmp_path / "dev") == [1, 2]
    saved = read_saved(tmp_path / "dev" / "log")
    assert saved is not None and saved.tree.size == 2
    trail.persist()  # everything (what a clean close does)
    assert checkpoint_sizes(tmp_path / "dev") == [1, 2, 4]


def test_the_shell_writes_a_checkpoint_out_between_commands(device: Path) -> None:
    """Review 13: with a shell open and idle, the checkpoint of its last decision reaches
    CHECKPOINTS (what `audit export` reads) at the scheduler's next tick, not at the next
    command's head-marker step."""
    from engine.frontends import Scheduler

    e = open_engine(device)
    try:
        commit_hostname(e, "r9")
        assert checkpoint_sizes(device)[-1] < e.state.seq  # signed, not written out yet
        Scheduler(e).tick()
        assert checkpoint_sizes(device)[-1] == e.state.seq
    finally:
        e.close()

