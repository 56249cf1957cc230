"""`Engine.group_commit()`: a burst of validations made durable by one fdatasync; a failed
closing sync leaves the state as the log holds it (none of the block) and says so; no
snapshot is written over events not yet durable."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, snapshot
from engine.errors import OperatorError
from engine.ports import FakeClock
from events.filelog import FileEventLog
from tests.validation.validation_support import AT_US, Pki, Spec, der, pem


@pytest.fixture
def device(tmp_path: Path) -> tuple[Engine, Pki]:
    pki = Pki.make("Group")
    (tmp_path / "pool.pem").write_bytes(pem([pki.root]))
    eng = Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None)
    for line in (f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}",
                 "configure", "crypto ca trustpool policy", "crl optional", "commit", "end"):
        assert eng.execute(line).ok
    return eng, pki


def _chain(pki: Pki) -> list[bytes]:
    return [der(pki.leaf(Spec("peer.example"))), der(pki.inter)]


def test_a_burst_is_made_durable_by_one_fdatasync(device: tuple[Engine, Pki],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    eng, pki = device
    real, calls = os.fdatasync, []

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    with eng.group_commit():
        for _ in range(5):
            assert eng.validate_peer(_chain(pki), "any", AT_US).ok
        assert calls == []  # nothing synced inside the block
    assert len(calls) == 1 and eng.state.validations.passed == 5
    eng.validate_peer(_chain(pki), "any", AT_US)  # outside: durable on return, as ever
    assert len(calls) == 2
    eng.close()


def test_a_failed_closing_sync_leaves_the_state_as_the_log_holds_it(
        device: tuple[Engine, Pki], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng, pki = device
    head = eng.store.head[0]

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OperatorError, match="Could not write the event log"), \
            eng.group_commit():
        for _ in range(3):
            eng.validate_peer(_chain(pki), "any", AT_US)
        assert eng.state.validations.passed == 3
        monkeypatch.setattr(os, "fdatasync", failing)
    monkeypatch.undo()
    assert eng.state.validations.passed == 0 and eng.state.seq == head
    eng.validate_peer(_chain(pki), "any", AT_US)
    eng.close()
    with FileEventLog.open(tmp_path / "dev" / "log", readonly=True) as log:
        assert sum(r.type == "PeerValidated" for r in log.read()) == 1


def test_no_snapshot_covers_events_not_yet_durable(device: tuple[Engine, Pki], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    eng, pki = device
    monkeypatch.setattr(snapshot, "EVERY", 2)
    snaps = tmp_path / "dev" / "snapshots"
    before: Any = sorted(snaps.iterdir())
    with eng.group_commit():
        for _ in range(4):
            eng.validate_peer(_chain(pki), "any", AT_US)
        assert sorted(snaps.iterdir()) == before
    assert sorted(snaps.iterdir()) != before  # taken once the block is durable
    eng.close()
