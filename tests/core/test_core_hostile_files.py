"""Files of the data directory that are not what they should be, beyond the snapshot and log
tests: DIR/snapshots a file. Snapshots are a cache (DESIGN.md): the device opens from its
log, works, and closes with the warning a failed snapshot gets (it refused to open with
"% File exists (DIR/snapshots).")."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine import Engine
from engine.ports import FakeClock


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
