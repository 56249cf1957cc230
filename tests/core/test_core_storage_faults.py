"""Storage faults change nothing: ENOSPC or EIO at every write and sync of a command.

Each scenario is run once cleanly with every `os.write`, `os.pwrite`, `os.fsync` and
`os.fdatasync` counted; then, for every k, on a fresh copy of the same data directory with the
k-th of those calls failing. A failure before the log's fdatasync returned (the commit point)
must leave no trace: the operator reads `% Could not write the event log: <reason>. Nothing was
changed.` (or the keystore's twin), `show` outputs, the files and a reopened engine are exactly
as before, and the same command then works. The data-key destruction of a zeroize comes after
the commit point (engine/keystore.py explains why): a fault there leaves the zeroize done and
the data key gone, at the latest after the next open.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine import Engine
from engine.keys import KeyAlgorithm
from engine.keystore import MASTER_KEY_ENV
from events import filelog
from tests.core.engine_support import open_engine

REPO = Path(__file__).resolve().parents[2]
FAULTS = [(errno.ENOSPC, "No space left on device"), (errno.EIO, "Input/output error")]
SHOWS = ("show running-config", "show configuration commit list",
         "show crypto key mypubkey ecdsa")
CALLS = ("write", "pwrite", "fsync", "fdatasync")


@dataclass
class Disk:
    """Counts the storage calls; `fail_at` = k fails the k-th (once) with `error`."""

    fail_at: int = 0
    error: tuple[int, str] = FAULTS[0]
    calls: list[str] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in CALLS:
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append(name)
            if len(self.calls) == self.fail_at:
                raise OSError(*self.error)
            return real(*args)
        return call


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No periodic head marker or snapshot in the middle: the counts stay the same per run."""
    monkeypatch.setattr(filelog, "MARK_EVERY", 1e9)
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "LOCK"}


def shows(e: Engine) -> dict[str, str]:
    """The show outputs, asked from exec mode whatever mode the session is in."""
    saved = e.session.modes
    e.session.modes = saved[:1]
    try:
        return {line: e.execute(line).output for line in SHOWS}
    finally:
        e.session.modes = saved


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: tuple[str, ...]  # run (and closed) once, before the copy
    before: tuple[str, ...]  # run without faults in the engine under test
    command: str  # the line the faults hit
    answers: tuple[str, ...] = ()


SCENARIOS = [
    Scenario("config-commit", ("configure", "hostname r0", "commit", "end"),
             ("configure", "hostname r1"), "commit"),
    Scenario("first-key-generation", (), (), "crypto key generate ecdsa nistp256 k1"),
    Scenario("key-replacement", ("crypto key generate ecdsa nistp256 k1",), (),
             "crypto key generate ecdsa nistp256 k1", ("yes",)),
    Scenario("zeroize", ("crypto key generate ecdsa nistp256 k1",
                         "crypto key generate ecdsa nistp256 k2"), (),
             "crypto key zeroize ecdsa k1", ("yes",)),
]


@dataclass
class Run:
    engine: Engine
    result: Any
    shows: dict[str, str]  # before the command
    files: dict[str, bytes]


def _prepare(root: Path, sc: Scenario) -> None:
    e = open_engine(root)
    for line in sc.setup:
        assert e.execute(line, answers=["yes"]).ok, line
    e.close()


def _run(root: Path, sc: Scenario, disk: Disk, monkeypatch: pytest.MonkeyPatch) -> Run:
    e = open_engine(root)
    for line in sc.before:
        assert e.execute(line).ok, line
    before_shows, before_files = shows(e), files(root)
    with monkeypatch.context() as m:
        disk.install(m)
        result = e.execute(sc.command, answers=list(sc.answers))
    return Run(e, result, before_shows, before_files)


def _count(tmp_path: Path, sc: Scenario, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(every storage call of the command, the index of the log's fdatasync)."""
    root = tmp_path / "clean"
    _prepare(root, sc)
    disk = Disk()
    run = _run(root, sc, disk, monkeypatch)
    assert run.result.ok, run.result.output
    run.engine.close()
    return len(disk.calls), disk.calls.index("fdatasync") + 1


@pytest.mark.parametrize("fault", FAULTS, ids=["ENOSPC", "EIO"])
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_fault_at_every_write_and_sync_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sc: Scenario,
        fault: tuple[int, str]) -> None:
    total, commit_point = _count(tmp_path, sc, monkeypatch)
    assert total >= 2
    pristine = tmp_path / "pristine"
    _prepare(pristine, sc)
    for k in range(1, total + 1):
        root = shutil.copytree(pristine, tmp_path / f"k{k}")
        run = _run(root, sc, Disk(k, fault), monkeypatch)
        e, result = run.engine, run.result
        if k > commit_point:  # the data-key destruction, once the log holds the command
            _check_done_after_commit(e, root, result)
            continue
        assert not result.ok, k
        assert result.output.rstrip("\n").endswith(
            f"% Could not {_what(result.output)}: {fault[1]}. Nothing was changed."), \
            (k, result.output)
        assert "Traceback" not in result.output
        assert shows(e) == run.shows, k
        after = files(root)
        if "master.key" not in run.files and "master.key" in after:
            # The first generation made the master key before the fault: kept (a whole one,
            # never an empty file), like the directories it made. It wraps nothing yet.
            assert len(after.pop("master.key")) == 65, k
        for name in set(after) - set(run.files):
            if name.startswith("log/") and len(after[name]) == filelog.SEG_HEADER.size:
                del after[name]  # the log's first segment, made durable before the frame:
                # a header and no event (as after `open` of an empty log that rotates)
        assert after == run.files, k
        again = e.execute(sc.command, answers=list(sc.answers))  # the fault is gone
        assert again.ok, (k, again.output)
        done = shows(e)
        e.close()
        reopened = open_engine(root)
        assert shows(reopened) == done, k  # exactly one command: the failed one never shows
        reopened.close()


def _what(output: str) -> str:
    return "write the keystore" if "keystore" in output else "write the event log"


def _check_done_after_commit(e: Engine, root: Path, result: Any) -> None:
    assert result.ok, result.output
    shown = shows(e)
    e.close()
    reopened = open_engine(root)
    assert shows(reopened) == shown
    live = {p.key_id for ps in reopened.state.keys.pairs.values() for p in ps}
    assert {p.stem for p in (root / "keystore").glob("*.dek")} == live  # the old DEK: gone
    reopened.close()


def test_a_failed_zeroize_append_keeps_the_key_usable(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The data key is destroyed only once the zeroize is durable: a failed append leaves
    a key that still signs (destroying first would leave a shown key with no private half)."""
    e = open_engine(tmp_path)
    assert e.execute("crypto key generate ecdsa nistp256 k1").ok
    pair = e.state.keys.pairs_of(KeyAlgorithm.ECDSA, "k1")[0]
    with monkeypatch.context() as m:
        Disk(fail_at=2).install(m)  # the log's fdatasync
        failed = e.execute("crypto key zeroize ecdsa k1", answers=["yes"])
        assert failed.error is not None
        assert failed.error.message.startswith("% Could not write the event log: ")
    from engine.keystore import keystore_of
    assert keystore_of(e.ports).private_key(pair.sealed) is not None
    e.close()


def test_leftovers_of_interrupted_writes_are_removed_at_open(tmp_path: Path) -> None:
    """What the old code (or a crash) left: an empty master.key, an empty orphan data key and
    temporary files. Key generation works afterwards, and real files are kept; the orphan is
    moved aside, never deleted (the log may have been restored from an older backup)."""
    e = open_engine(tmp_path)
    e.close()
    (tmp_path / "master.key").write_bytes(b"")
    (tmp_path / "keystore").mkdir()
    orphan = tmp_path / "keystore" / f"{'ab' * 16}.dek"
    orphan.write_bytes(b"")
    tmps = [tmp_path / "master.key.0011.tmp", tmp_path / "keystore" / f"{'cd' * 16}.dek.99.tmp"]
    for t in tmps:
        t.write_bytes(b"half")
    e = open_engine(tmp_path)
    assert not orphan.exists() and not any(t.exists() for t in tmps)
    assert (tmp_path / "keystore" / "orphaned" / orphan.name).exists()
    assert not (tmp_path / "master.key").exists()
    r = e.execute("crypto key generate ecdsa nistp256 k1")
    assert r.ok, r.output
    key = (tmp_path / "master.key").read_bytes()
    assert len(key) == 65
    e.close()
    e = open_engine(tmp_path)  # a real master key and a live key's data key stay
    assert (tmp_path / "master.key").read_bytes() == key
    [pair] = e.state.keys.pairs_of(KeyAlgorithm.ECDSA, "k1")
    assert (tmp_path / "keystore" / f"{pair.key_id}.dek").stat().st_size > 0
    e.close()


def test_an_empty_master_key_is_kept_while_a_data_key_exists(tmp_path: Path) -> None:
    """An empty master.key beside a data key is damage, not a leftover: deleting it would let
    a new master key be made that cannot open the existing data key."""
    e = open_engine(tmp_path)
    assert e.execute("crypto key generate ecdsa nistp256 k1").ok
    e.close()
    (tmp_path / "master.key").write_bytes(b"")
    open_engine(tmp_path).close()
    assert (tmp_path / "master.key").exists()


def test_a_log_that_cannot_be_cut_back_says_so_and_takes_nothing_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    e = open_engine(tmp_path)
    for line in ("configure", "hostname r1"):
        e.execute(line)

    def eio(*args: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "fdatasync", eio)
        m.setattr(os, "fsync", eio)
        r = e.execute("commit")
    assert not r.ok and "could not be cut back" in r.output and "Nothing was changed" \
        not in r.output
    r = e.execute("commit")
    assert not r.ok and "% Could not write the event log: Input/output error." in r.output
    e.store.close()


# -- end to end: `trustledger exec` -------------------------------------------------------------

EXEC_WITH_FAULT = textwrap.dedent("""
    import errno, os, sys
    real = os.fdatasync
    def fdatasync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    os.fdatasync = fdatasync
    from engine.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _exec(data: Path, script: str, *, fault: bool) -> subprocess.CompletedProcess[str]:
    (data.parent / "script.txt").write_text(script)
    argv = ["exec", "--data", str(data), "-f", str(data.parent / "script.txt")]
    cmd = ([sys.executable, "-c", EXEC_WITH_FAULT, *argv] if fault
           else [sys.executable, "-m", "engine.cli", *argv])
    return subprocess.run(cmd, check=False, cwd=REPO, text=True, capture_output=True,
                          timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"})


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "device"


def test_exec_reports_a_full_disk_and_no_traceback(data: Path) -> None:
    script = "configure\nhostname r1\ncommit\nend\n"
    failed = _exec(data, script, fault=True)
    both = failed.stdout + failed.stderr
    assert "Traceback" not in both, both
    assert "% Could not write the event log: No space left on device. Nothing was changed." \
        in failed.stdout, both
    assert failed.returncode != 0
    gen = _exec(data, "crypto key generate ecdsa nistp256 k1\n", fault=True)
    assert "Traceback" not in gen.stdout + gen.stderr
    assert "% Could not write the event log: No space left on device." in gen.stdout
    ok = _exec(data, script + "show configuration commit list\n", fault=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("1000000001") == 1 and "1000000002" not in ok.stdout, ok.stdout


def test_a_key_whose_generation_may_reappear_keeps_its_data_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fdatasync fails and so does the cut back: the frame may still be found at the next
    open (the operator is told so). Its data key must survive until then, or the reopened log
    names a key pair whose private half was thrown away; `tidy_keystore` moves it aside at
    that open if the frame is not found."""
    from engine.keystore import keystore_of

    e = open_engine(tmp_path)

    def eio(*args: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "fdatasync", eio)
        m.setattr(os, "ftruncate", eio)
        r = e.execute("crypto key generate ecdsa nistp256 k1")
    assert not r.ok and "could not be cut back" in r.output
    e.store.close()
    e = open_engine(tmp_path)  # the write itself reached the file: the command is found
    [pair] = e.state.keys.pairs_of(KeyAlgorithm.ECDSA, "k1")
    assert keystore_of(e.ports).private_key(pair.sealed) is not None
    e.close()
