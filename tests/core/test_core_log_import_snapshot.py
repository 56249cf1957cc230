"""`log import` finds the target's state as opening does: from the newest snapshot that passes
opening's checks and the log's rows after it, never reading the log from seq 1 then; a
damaged snapshot, one of another log, or a log short of its snapshot falls back to folding
from seq 1. Every refusal holds either way (a forged continuation is refused on top of the
snapshot's state too), and a whole-history stream, already folded from an empty log by
`read_export`, is not folded again on top of a target that holds its first events."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, snapshot
from engine.logexport import ExportRefused, import_into, read_export
from engine.ports import FakeClock
from engine.state import DeviceState, replay_rows
from events.filelog import FileEventLog
from events.memory import MemoryEventLog
from tests.core.test_core_hostile_export import _cores
from tests.core.test_core_log_import_folds import _device_export, _stream


def _data_dir(root: Path, header: dict[str, Any], cores: list[list[Any]], upto: int,
              snap_at: int | None = None) -> Path:
    """A data directory holding seq 1..`upto` of `cores`, with a snapshot of seq `snap_at`
    (default `upto`) written as the engine writes them."""
    snap_at = upto if snap_at is None else snap_at
    with FileEventLog.open(root / "log") as log:
        import_into(log, read_export(_stream(header, cores[:snap_at], 1)), "d")
        state = replay_rows(DeviceState(), log.read_rows(typed=True))
        snapshot.save(root / "snapshots", state, log.head, log.position)
    if upto < snap_at:  # the log loses its last events: it is short of its snapshot
        (root / "log").rename(root / "full")
        with FileEventLog.open(root / "log") as log:
            import_into(log, read_export(_stream(header, cores[:upto], 1)), "d")
    return root


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seq every read of a file log starts at (`read`, `read_rows`)."""
    seen: list[int] = []
    for name in ("read", "read_rows"):
        real = getattr(FileEventLog, name)

        def spy(self: FileEventLog, from_seq: int = 1, *args: Any, _real: Any = real,
                **kw: Any) -> Iterator[Any]:
            seen.append(from_seq)
            return _real(self, from_seq, *args, **kw)  # type: ignore[no-any-return]

        monkeypatch.setattr(FileEventLog, name, spy)
    return seen


def _import(root: Path, stream: bytes) -> Any:
    with FileEventLog.open(root / "log") as log:
        return import_into(log, read_export(stream), "d", None, root / "snapshots")


def _opens_to(root: Path) -> DeviceState:
    e = Engine.open(root, clock=FakeClock(), user="tester", use_snapshots=False)
    state = e.state
    e.close()
    return state


def test_a_continuation_folds_on_the_snapshot_not_from_seq_1(tmp_path: Path,
                                                               reads: list[int]) -> None:
    header, cores = _cores(_device_export(tmp_path / "source"))
    root = _data_dir(tmp_path / "d", header, cores, 3)
    forged = copy.deepcopy(cores)
    forged[3][7] = {"bogus": 1}
    reads.clear()
    with pytest.raises(ExportRefused) as refused:  # refused on top of the snapshot's state
        _import(root, _stream(header, forged, 4))
    assert refused.value.render(0).startswith(
        "% Not imported: the KeyPairGenerated event at seq 4 cannot be folded (TypeError: ")
    assert 1 not in reads, reads
    done = _import(root, _stream(header, cores, 4))
    assert (done.first, done.appended) == (4, len(cores) - 3)
    assert 1 not in reads, reads
    whole = _data_dir(tmp_path / "whole", header, cores, len(cores))
    assert _opens_to(root) == _opens_to(whole)


@pytest.mark.parametrize("damage", ["flipped byte", "another log", "log short of it"])
def test_an_unusable_snapshot_falls_back_to_the_whole_fold(tmp_path: Path, reads: list[int],
                                                           damage: str) -> None:
    header, cores = _cores(_device_export(tmp_path / "source"))
    root = _data_dir(tmp_path / "d", header, cores, 3, snap_at=5 if damage[0] == "l" else 3)
    (snap,) = (root / "snapshots").glob("*.snap")
    if damage == "flipped byte":
        data = bytearray(snap.read_bytes())
        data[-1] ^= 1
        snap.write_bytes(bytes(data))
    elif damage == "another log":  # the same seq, folded from a log that differs at seq 1
        other = copy.deepcopy(cores)
        other[0][4] += 1
        _data_dir(tmp_path / "other", header, other, 3)
        snap.write_bytes(next((tmp_path / "other" / "snapshots").glob("*.snap")).read_bytes())
    forged = copy.deepcopy(cores)
    forged[3][7] = {"bogus": 1}
    reads.clear()
    with pytest.raises(ExportRefused):
        _import(root, _stream(header, forged, 4))
    assert 1 in reads  # folded from seq 1
    done = _import(root, _stream(header, cores, 4))
    assert (done.first, done.appended) == (4, len(cores) - 3)
    whole = _data_dir(tmp_path / "whole", header, cores, len(cores))
    assert _opens_to(root) == _opens_to(whole)


def test_a_whole_stream_is_not_folded_again_on_top_of_its_own_first_events(
        tmp_path: Path) -> None:
    header, cores = _cores(_device_export(tmp_path / "source"))
    into = MemoryEventLog()
    import_into(into, read_export(_stream(header, cores[:3], 1)), "memory")
    stream = read_export(_stream(header, cores, 1))  # folded from an empty log here
    read_from: list[int] = []
    real = into.read

    def spy(from_seq: int = 1) -> Iterator[Any]:
        read_from.append(from_seq)
        return real(from_seq)

    into.read = spy  # type: ignore[method-assign]
    done = import_into(into, stream, "memory")
    assert (done.first, done.appended) == (4, len(cores) - 3)
    assert 1 not in read_from, read_from
    out = io.BytesIO()
    from engine.logexport import write_export

    into.read = real  # type: ignore[method-assign]
    write_export(into, out, "memory")
    assert read_export(out.getvalue()).head == stream.head


def test_log_import_into_a_data_directory_starts_from_its_snapshot(
        tmp_path: Path, reads: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    header, cores = _cores(_device_export(tmp_path / "source"))
    root = _data_dir(tmp_path / "d", header, cores, 3)
    (tmp_path / "next.tlx").write_bytes(_stream(header, cores, 4))
    reads.clear()
    assert main(["log", "import", "--data", str(root), str(tmp_path / "next.tlx")]) == 0
    assert capsys.readouterr().err == f"% Imported seq 4-{len(cores)} into {root / 'log'}.\n"
    assert 1 not in reads, reads


def test_a_tail_that_does_not_fold_is_said_as_before(tmp_path: Path) -> None:
    """The target's events after its snapshot are folded as opening folds them: one that
    does not fold in this build refuses the import, naming it, as it did from seq 1."""
    from events.keys import KeyPairGenerated
    from events.store import PendingEvent

    header, cores = _cores(_device_export(tmp_path / "source"))
    root = _data_dir(tmp_path / "d", header, cores, 3)
    forged = KeyPairGenerated("0" * 32, "k9", "dsa", "general", 1024, "", b"", b"", b"",
                              "aes-256-gcm")
    with FileEventLog.open(root / "log") as log:
        log.append([PendingEvent(forged, "device", cores[2][4], "forger")])
        held = [*cores[:3], next(iter(log.read(4))).core()]
    with pytest.raises(ExportRefused) as refused:
        _import(root, _stream(header, [*held, [5, *cores[3][1:]]], 5))
    assert refused.value.render(0).startswith(
        "% Not imported: d itself does not fold in this build: The device log's event "
        "KeyPairGenerated at seq 4 does not fold in this build (ValueError: 'dsa' is not a "
        "valid KeyAlgorithm)"), refused.value.render(0)
    with FileEventLog.open(root / "log", readonly=True) as log:
        assert log.head[0] == 4
