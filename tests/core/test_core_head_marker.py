"""The head marker and recovery reporting on the device.

A log cut below its marker refuses to open, even without a snapshot, names what is missing and
is left as it is; a cut above it is repaired by a writer and reported as what it may be (a
crash or a truncation); read-only opens report and never repair. The marker moves at a clean
close, with a snapshot and every few seconds under load, never with an extra sync per command.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine import snapshot
from engine.cli import main
from events import filelog
from events.filelog import HEAD_FILE, FileEventLog, LogError, LogTruncated, iter_frames, read_marker
from tests.core.engine_support import open_engine


def _commits(root: Path, names: list[str], *, close: bool = True) -> Any:
    e = open_engine(root)
    for name in names:
        for line in ("configure", f"hostname {name}", "commit", "end"):
            assert e.execute(line).ok, line
    if close:
        e.close()
    return e


def _crash(e: Any) -> None:
    """What SIGKILL does to an open engine: its files are closed, nothing else happens."""
    for fd in (e.store._fd, e.store._lock_fd):
        if fd is not None:
            os.close(fd)
    e.store._fd = e.store._lock_fd = None


def _segment(root: Path) -> Path:
    return sorted((root / "log").glob("*.seg"))[-1]


def _log_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "log").iterdir()) if p.name != "LOCK"}


def test_a_cut_below_the_marker_refuses_even_without_a_snapshot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _commits(tmp_path, ["r1", "r2", "r3", "r4"])
    shutil.rmtree(tmp_path / "snapshots")  # no snapshot to tell
    head, head_hash = read_marker(tmp_path / "log") or (0, b"")
    assert head == 4
    seg = _segment(tmp_path)
    frames = list(iter_frames(seg))
    os.truncate(seg, frames[2].offset)  # events 3 and 4 gone, at a frame boundary
    before = _log_bytes(tmp_path)
    want = (f"% The event log ends at seq 2 but seq 4 (hash {head_hash.hex()[:16]}\u2026) was "
            "acknowledged: events 3-4 are missing. Refusing to open.")
    with pytest.raises(LogTruncated) as err:
        open_engine(tmp_path)
    assert str(err.value) == want
    script = tmp_path / "script.txt"
    script.write_text("show running-config\n")
    assert main(["exec", "--data", str(tmp_path), "-f", str(script)]) == 2
    assert capsys.readouterr().err == want + "\n"
    for argv in (["log", "show", str(tmp_path)], ["replay", str(tmp_path), "--until", "2"]):
        assert main(argv) == 2
        assert capsys.readouterr().err == want + "\n"
    assert main(["log", "verify", str(tmp_path)]) == 1
    assert "events 3-4 are missing" in capsys.readouterr().out
    assert _log_bytes(tmp_path) == before  # nothing repaired, nothing lost further


def test_a_log_that_is_not_the_one_acknowledged_refuses(tmp_path: Path) -> None:
    _commits(tmp_path / "a", ["r1", "r2"])
    _commits(tmp_path / "b", ["x1", "x2", "x3"])
    shutil.copy(tmp_path / "a" / "log" / HEAD_FILE, tmp_path / "b" / "log" / HEAD_FILE)
    with pytest.raises(LogError, match=r"replaced or rewritten\. Refusing to open\."):
        open_engine(tmp_path / "b")


def test_a_damaged_marker_refuses_and_says_which_file(tmp_path: Path) -> None:
    _commits(tmp_path, ["r1"])
    marker = tmp_path / "log" / HEAD_FILE
    marker.write_bytes(marker.read_bytes().replace(b" 1 ", b" 7 "))
    with pytest.raises(LogError, match=re.escape(f"head marker {marker} is damaged")):
        open_engine(tmp_path)


def test_a_cut_above_the_marker_is_repaired_and_reported_honestly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    e = _commits(tmp_path, ["r1", "r2"], close=False)
    e.store.close()  # the marker: seq 2
    _crash(_commits(tmp_path, ["r3"], close=False))  # no marker for seq 3
    seg = _segment(tmp_path)
    last = list(iter_frames(seg))[-1]
    cut = last.offset + 7
    os.truncate(seg, cut)
    repair = (f"cut 7 bytes at segment {seg.name} offset {last.offset}: an incomplete last "
              "write (a crash) or a truncated file")
    for argv in (["log", "show", str(tmp_path)], ["replay", str(tmp_path), "--until", "9"],
                 ["log", "verify", str(tmp_path)]):
        main(argv)
        err = capsys.readouterr().err
        assert err.splitlines()[0] == ("%LOG-4-REPAIR_PENDING: opened read-only, the log was "
                                       f"not changed; the next open for writing will {repair}")
        assert seg.stat().st_size == cut
    script = tmp_path / "script.txt"
    script.write_text("show running-config\n")
    assert main(["exec", "--data", str(tmp_path), "-f", str(script)]) == 0
    out = capsys.readouterr()
    assert f"%LOG-4-RECOVERED: {repair}" in out.err.splitlines()
    assert "acknowledged" not in out.err and "after a crash" not in out.err
    assert "hostname r2" in out.out
    # The torn frame was cut at its start; the two frames after it are the audit key and the
    # built-in trustpool bundle `exec` records at the first open of a device that lacks them.
    assert [f.offset for f in iter_frames(seg)][-2] == last.offset


def test_the_marker_moves_at_close_with_a_snapshot_and_under_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filelog, "MARK_EVERY", 1e9)
    e = _commits(tmp_path, ["r1", "r2"], close=False)
    assert read_marker(tmp_path / "log") is None  # not per command
    e.close()
    assert (read_marker(tmp_path / "log") or (0,))[0] == 2  # a clean close
    monkeypatch.setattr(snapshot, "EVERY", 2)
    e = _commits(tmp_path, ["r3", "r4"], close=False)
    assert (read_marker(tmp_path / "log") or (0,))[0] == 4  # with the snapshot at seq 4
    e.close()
    monkeypatch.setattr(snapshot, "EVERY", 10_000)
    monkeypatch.setattr(filelog, "MARK_EVERY", 0.0)  # "a few seconds" have passed each time
    e = _commits(tmp_path, ["r5"], close=False)
    assert (read_marker(tmp_path / "log") or (0,))[0] == 5
    e.close()


def test_a_command_costs_one_fdatasync_and_no_other_sync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filelog, "MARK_EVERY", 1e9)
    e = _commits(tmp_path, ["r1"], close=False)
    syncs: list[str] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda fd, real=real, name=name: (syncs.append(name),
                                                                       real(fd))[1])
    for line in ("configure", "hostname r2", "commit", "end"):
        assert e.execute(line).ok
    assert syncs == ["fdatasync"]
    monkeypatch.undo()
    e.close()


def test_a_marker_write_cut_short_is_removed_and_the_old_marker_stands(tmp_path: Path) -> None:
    _commits(tmp_path, ["r1"])
    (tmp_path / "log" / (HEAD_FILE + ".tmp")).write_bytes(b"trustledger-head v1 9")
    with FileEventLog.open(tmp_path / "log") as log:
        assert log.head[0] == 1
    assert not (tmp_path / "log" / (HEAD_FILE + ".tmp")).exists()
    assert (read_marker(tmp_path / "log") or (0,))[0] == 1
