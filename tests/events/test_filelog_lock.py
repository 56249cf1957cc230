"""One writer at a time, across real processes; readers need no lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.filelog import FileEventLog, LogError, LogLocked
from tests.events.eventlog_support import noted_batch

REPO = Path(__file__).resolve().parents[2]

# A second process: opens the log (writer unless "ro"), reports, then waits for a line on stdin.
CHILD = """
import sys
from events.filelog import FileEventLog, LogLocked
try:
    log = FileEventLog.open(sys.argv[1], readonly=sys.argv[2] == "ro")
except LogLocked as e:
    print("LOCKED", e, flush=True)
    sys.exit(3)
print("OPEN", log.head[0], len(list(log.read())), flush=True)
sys.stdin.readline()
log.close()
"""


def _child(root: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the log open for writing."""
    root = tmp_path / "log"
    with FileEventLog.open(root) as log:
        log.append(noted_batch(1, 3))
    proc = _child(root, "rw")
    assert proc.stdout is not None
    assert proc.stdout.readline().split() == ["OPEN", "3", "3"]
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_second_process_opening_for_writing_gets_log_locked(tmp_path: Path) -> None:
    root = tmp_path / "log"
    with FileEventLog.open(root) as log:
        log.append(noted_batch(1, 2))
        proc = _child(root, "rw")
        out, _ = proc.communicate("\n", timeout=30)
        assert proc.returncode == 3
        assert out.startswith("LOCKED") and str(root) in out
        log.append(noted_batch(3, 1))  # the holder is unaffected
    proc = _child(root, "rw")  # released on close
    out, _ = proc.communicate("\n", timeout=30)
    assert (proc.returncode, out.split()) == (0, ["OPEN", "3", "3"])


def test_readers_open_while_another_process_writes(holder: subprocess.Popen[str],
                                                   tmp_path: Path) -> None:
    root = tmp_path / "log"
    with pytest.raises(LogLocked, match="another process"):
        FileEventLog.open(root)
    with FileEventLog.open(root, readonly=True) as reader:
        assert reader.head[0] == 3
        assert [r.seq for r in reader.read()] == [1, 2, 3]
        with pytest.raises(LogError, match="read-only"):
            reader.append(noted_batch(4, 1))
    reader_proc = _child(root, "ro")
    out, _ = reader_proc.communicate("\n", timeout=30)
    assert (reader_proc.returncode, out.split()) == (0, ["OPEN", "3", "3"])


def test_lock_is_released_when_the_holder_exits(holder: subprocess.Popen[str],
                                                tmp_path: Path) -> None:
    root = tmp_path / "log"
    with pytest.raises(LogLocked):
        FileEventLog.open(root)
    holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    with FileEventLog.open(root) as log:
        assert log.head[0] == 3


def test_lock_is_released_when_the_holder_is_killed(holder: subprocess.Popen[str],
                                                    tmp_path: Path) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    with FileEventLog.open(tmp_path / "log") as log:
        assert log.recovered is None and log.head[0] == 3


def test_a_second_writer_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    with FileEventLog.open(tmp_path / "log"), pytest.raises(LogLocked):
        FileEventLog.open(tmp_path / "log")


def test_the_cli_says_so_as_an_operator_error(tmp_path: Path) -> None:
    """One `%` line, as every other refusal of the CLI (it was `trustledger: event log ...`)."""
    with FileEventLog.open(tmp_path / "d" / "log"):
        done = subprocess.run([sys.executable, "-m", "engine.cli", "exec", "--data",
                               str(tmp_path / "d"), "-f", "-"], input="show clock\n",
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"% The event log {tmp_path / 'd' / 'log'} is open for "
                                  "writing by another process"), done.stderr
