"""Snapshot files on disk (issue 10 item 1, and the snapshot part of item 2): writes are atomic
and a failing write never fails a durable command; leftovers are removed at open; the CLI
reports an ignored snapshot as `%LOG-4-SNAPSHOT_IGNORED`; `log verify` checks every snapshot
against the log folded to its seq and reports a bad one without failing the log."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import structlog

from engine import snapshot
from engine.cli import main
from engine.engine import Engine
from engine.ports import FakeClock
from tests.core.engine_support import open_engine

REPO = Path(__file__).resolve().parents[2]
HOSTNAMES = ("r1", "r2", "r3", "r4")


def commit_hostname(e: Engine, name: str) -> None:
    for line in ("configure", f"hostname {name}", "commit", "end"):
        r = e.execute(line)
        assert r.ok, (line, r.output)


def snaps(root: Path) -> list[Path]:
    return sorted((root / "snapshots").glob("*.snap"))


def leftovers(root: Path) -> list[Path]:
    return sorted((root / "snapshots").glob("*.tmp")) if (root / "snapshots").exists() else []


# -- writing ----------------------------------------------------------------------------------


def test_snapshots_are_private_and_leave_no_temp_file(tmp_path: Path) -> None:
    e = open_engine(tmp_path)
    commit_hostname(e, "r1")
    e.close()
    (path,) = snaps(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_leftover_temp_files_are_removed_at_open(tmp_path: Path) -> None:
    e = open_engine(tmp_path)
    commit_hostname(e, "r1")
    e.close()
    for name in ("00000000000000000002.tmp", "00000000000000000009.tmp"):
        (tmp_path / "snapshots" / name).write_bytes(b"")  # a write a crash interrupted
    again = open_engine(tmp_path)
    assert leftovers(tmp_path) == []
    assert again.state.hostname == "r1" and again.snapshots_ignored == []
    again.close()


class Faults:
    """os.write / os.fsync / os.replace that fail with `err` at the `at`-th call touching the
    snapshots directory (every other call, such as the log's own writes, goes through)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, op: str, err: int, at: int) -> None:
        self.op, self.err, self.at, self.calls = op, err, at, 0
        real = getattr(os, op)

        def wrapper(*args: Any, **kw: Any) -> Any:
            if self._is_snapshot(args[0]):
                self.calls += 1
                if self.calls == self.at:
                    raise OSError(self.err, os.strerror(self.err))
            return real(*args, **kw)

        monkeypatch.setattr(os, op, wrapper)

    @staticmethod
    def _is_snapshot(target: Any) -> bool:
        if isinstance(target, int):
            target = os.readlink(f"/proc/self/fd/{target}")
        path = Path(os.fsdecode(target))
        return "snapshots" in (path.name, path.parent.name)


OPS = ("write", "fsync", "replace")


def _calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str) -> int:
    """How many times one snapshot write calls `op` (so each call can be made to fail)."""
    with monkeypatch.context() as m:
        counter = Faults(m, op, errno.EIO, at=0)
        e = open_engine(tmp_path / "count")
        commit_hostname(e, "r1")
        e.close()
    return counter.calls


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
@pytest.mark.parametrize("op", OPS)
def test_a_failing_snapshot_write_never_fails_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str, err: int) -> None:
    monkeypatch.setattr(snapshot, "EVERY", 2)
    calls = _calls(tmp_path, monkeypatch, op)
    assert calls >= (2 if op == "fsync" else 1)  # fsync: the file, then the directory
    for at in range(1, calls + 1):
        root = tmp_path / f"{op}-{at}"
        e = open_engine(root)
        commit_hostname(e, "r1")
        with monkeypatch.context() as m, structlog.testing.capture_logs() as logs:
            fault = Faults(m, op, err, at)
            e.execute("configure")
            e.execute("hostname r2")
            r = e.execute("commit")  # the second event: a snapshot is due, and fails
            assert fault.calls >= at
        assert r.ok and r.output.startswith("%SNAPSHOT-4-NOT_WRITTEN: no snapshot written at "
                                            "event "), r.output
        assert r.output.endswith("; the event log holds every event\n"), r.output
        assert e.state.hostname == "r2"
        assert [x for x in logs if x["log_level"] == "warning"] == []  # no structlog line
        assert leftovers(root) == [] and snaps(root) == []
        e.execute("end")
        commit_hostname(e, "r3")  # the fault is gone: the next snapshot is written
        live = e.state
        e.close()
        assert [int(p.stem) for p in snaps(root)] == [3]
        again = open_engine(root)
        assert again.state == live and again.snapshots_ignored == []
        again.close()


@pytest.mark.parametrize("op", OPS)
def test_a_failing_snapshot_at_close_is_not_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str) -> None:
    e = open_engine(tmp_path)
    commit_hostname(e, "r1")
    live = e.state
    with monkeypatch.context() as m:
        Faults(m, op, errno.ENOSPC, at=1)
        e.close()
    assert leftovers(tmp_path) == [] and snaps(tmp_path) == []
    again = open_engine(tmp_path)
    assert again.state == live
    again.close()


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A device with snapshots at seq 2 and 4 (EVERY = 2; the last two are kept)."""
    monkeypatch.setattr(snapshot, "EVERY", 2)
    root = tmp_path / "dev"
    e = open_engine(root, FakeClock())
    for name in HOSTNAMES:
        commit_hostname(e, name)
    e.close()
    assert [int(p.stem) for p in snaps(root)] == [2, 4]
    return root


def test_exec_reports_an_ignored_snapshot_and_shows_the_log_state(
        device: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newest = snaps(device)[-1]
    raw = bytearray(newest.read_bytes())
    raw[-1] ^= 0x40
    newest.write_bytes(bytes(raw))
    script = tmp_path / "show.txt"
    script.write_text("show running-config hostname\n")
    assert main(["exec", "--data", str(device), "-f", str(script)]) == 0
    out, err = capsys.readouterr()
    assert "hostname r4" in out
    assert (f"%LOG-4-SNAPSHOT_IGNORED: {newest}: its digest does not match its content "
            "(damaged); rebuilding the state from the log\n") in err
    assert "Traceback" not in err


def test_the_old_exploit_through_the_shell_runs_nothing(device: Path, tmp_path: Path) -> None:
    """`trustledger shell --data DIR` on a directory someone handed over: the old decoder
    called `os.mkdir(target)` from this file."""
    target = tmp_path / "created-by-the-snapshot"
    newest = snaps(device)[-1]
    head = snapshot.read(newest)
    call = msgpack.ExtType(4, msgpack.packb(["engine.snapshot", "os.mkdir", str(target)]))
    newest.write_bytes(msgpack.packb({"v": 1, "seq": head.seq, "hash": head.chain_hash,
                                      "state": call}, use_bin_type=True))
    done = subprocess.run([sys.executable, "-m", "engine.cli", "shell", "--data", str(device)],
                          input="show running-config hostname\n", cwd=REPO, text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "hostname r4" in done.stdout
    assert f"%LOG-4-SNAPSHOT_IGNORED: {newest}: not a version-3 snapshot" in done.stderr
    assert "Traceback" not in done.stderr
    assert not target.exists()


def _verify(target: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["log", "verify", str(target)])
    return status, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("as_log_dir", [False, True], ids=["data-dir", "log-dir"])
def test_log_verify_checks_every_snapshot(device: Path, capsys: pytest.CaptureFixture[str],
                                          as_log_dir: bool) -> None:
    status, lines = _verify(device / "log" if as_log_dir else device, capsys)
    assert status == 0
    assert lines[0] == "events    : 4" and lines[1] == "head seq  : 4"
    assert lines[2].startswith("head hash : ") and lines[3] == "chain     : OK"
    assert lines[4:] == ["snapshot  : 00000000000000000002.snap seq 2 OK",
                         "snapshot  : 00000000000000000004.snap seq 4 OK"]


def _lying(path: Path) -> None:
    """A snapshot whose state says what the log never did, with a valid digest."""
    snap = snapshot.read(path)
    other = Engine.in_memory()
    commit_hostname(other, "evil")
    lie = dataclasses.replace(snap.state, config=other.state.config)
    path.write_bytes(snapshot.encode(lie, (snap.seq, snap.chain_hash)))


def _damaged(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _other_log(path: Path) -> None:
    snap = snapshot.read(path)
    path.write_bytes(snapshot.encode(snap.state, (snap.seq, bytes(32))))


@pytest.mark.parametrize(("spoil", "why"), [
    (_lying, "its state differs from the log folded to seq 4"),
    (_damaged, "its digest does not match its content (damaged)"),
    (_other_log, "it covers seq 4 of another log (the chain hash differs)"),
], ids=["lying", "damaged", "other-log"])
def test_log_verify_reports_a_bad_snapshot_without_failing_the_log(
        device: Path, capsys: pytest.CaptureFixture[str],
        spoil: Callable[[Path], None], why: str) -> None:
    _, good = _verify(device, capsys)
    spoil(snaps(device)[-1])
    status, lines = _verify(device, capsys)
    assert status == 0
    assert lines[:4] == good[:4]
    assert lines[4:] == ["snapshot  : 00000000000000000002.snap seq 2 OK",
                         f"snapshot  : 00000000000000000004.snap IGNORED: {why} "
                         "(opening rebuilds the state from the log)"]


def test_log_verify_on_a_damaged_chain_is_unchanged(device: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    seg = next((device / "log").glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    raw[-5] ^= 0x01
    seg.write_bytes(bytes(raw))
    status, lines = _verify(device, capsys)
    assert status == 1
    assert lines[-1].startswith("DAMAGED   : ")
    assert not any(line.startswith("snapshot") for line in lines)
