"""Files of the data directory that are not what they should be, beyond the snapshot and log
tests: DIR/snapshots a file. Snapshots are a cache (DESIGN.md): the device opens from its
log, works, and closes with the warning a failed snapshot gets (it refused to open with
"% File exists (DIR/snapshots).")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from engine import Engine
from engine.ports import FakeClock

REPO = Path(__file__).resolve().parents[2]


def test_a_file_where_the_snapshots_directory_goes(tmp_path: Path) -> None:
    root = tmp_path / "device"
    e = Engine.open(root, clock=FakeClock(), user="tester")
    for line in ("configure", "hostname r1", "commit", "end"):
        assert e.execute(line).ok, line
    e.close()
    shutil.rmtree(root / "snapshots")
    (root / "snapshots").write_text("not a directory\n")
    e = Engine.open(root, clock=FakeClock(), user="tester")
    assert "hostname r1" in e.execute("show running-config").output
    for line in ("configure", "hostname r2", "commit", "end"):
        assert e.execute(line).ok, line
    e.close()
    e = Engine.open(root, clock=FakeClock(), user="tester")
    assert "hostname r2" in e.execute("show running-config").output
    e.close()
    assert (root / "snapshots").read_text() == "not a directory\n"


def test_exec_says_a_snapshot_not_written_as_an_ios_message_not_a_log_line(
        tmp_path: Path) -> None:
    """`exec` printed structlog's `[warning  ] snapshot not written ...` on the terminal; the
    operator reads a `%FACILITY-SEV-MNEMONIC` line, as the engine's other messages are said."""
    root = tmp_path / "device"
    root.mkdir(mode=0o700)
    (root / "snapshots").write_text("not a directory\n")
    script = tmp_path / "script"
    script.write_text("configure\nhostname r2\ncommit\nend\n")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "exec", "--data", str(root),
                           "-f", str(script)], capture_output=True, text=True, cwd=REPO,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    last = done.stdout.splitlines()[-1]
    assert last.startswith("%SNAPSHOT-4-NOT_WRITTEN: no snapshot written at event "), last
    assert last.endswith("; the event log holds every event"), last
