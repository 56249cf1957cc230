"""A real full disk (a small tmpfs, where the test may mount one; skipped elsewhere): the
commits acknowledged before and between the failures all survive a reopen once space is
freed, each refused one says so in one `%` line and is absent, a key whose keystore write
failed never appears, and closing the engine on the full disk raises nothing.

tests/core/test_core_storage_faults.py injects ENOSPC/EIO at each os.write/fsync call; this is
the same rule against the kernel's own ENOSPC (page-granular: the log's last page takes small
frames until it is full, so failures come after a few acknowledged commits, as on a device)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.ports import FakeClock
from tests.core.engine_support import open_engine

LOG_FULL = "% Could not write the event log: No space left on device. Nothing was changed."
KEYSTORE_FULL = "% Could not write the keystore: No space left on device. Nothing was changed."


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, check=False, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def fill(disk: Path) -> None:
    """Write filler files until the file system refuses a single byte."""
    for name, size in (("filler", 65536), ("filler-4k", 4096), ("filler-1", 1)):
        with (disk / name).open("wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e


def test_a_full_disk_loses_no_acknowledged_commit(small_disk: Path) -> None:
    data, clock = small_disk / "device", FakeClock()
    e = open_engine(data, clock)
    for line in ("configure", "hostname r0", "commit", "end",
                 "crypto key generate ecdsa nistp256 k1"):
        assert e.execute(line).ok, line
    e.close()

    e = open_engine(data, clock)
    fill(small_disk)
    assert e.execute("configure").ok
    acknowledged, refused = [], []
    for i in range(40):
        assert e.execute(f"hostname h{i}").ok
        r = e.execute("commit")
        assert "Traceback" not in r.output
        if r.ok:
            acknowledged.append(f"h{i}")
        else:
            assert r.output.rstrip("\n").splitlines()[-1] == LOG_FULL, r.output
            refused.append(f"h{i}")
    assert refused, "the disk never filled up"
    e.execute("abort")
    key = e.execute("crypto key generate ecdsa nistp256 k2")
    assert not key.ok and key.output.rstrip("\n").splitlines()[-1] in (KEYSTORE_FULL, LOG_FULL)
    e.close()  # the head marker, snapshot and audit trail may not fit: warnings, no exception

    for filler in small_disk.glob("filler*"):
        filler.unlink()
    e = open_engine(data, clock)
    hostname = acknowledged[-1] if acknowledged else "r0"
    assert f"hostname {hostname}\n" in e.execute("show running-config").output
    commits = e.execute("show configuration commit list").output
    assert commits.count("CLI") == 1 + len(acknowledged), commits
    assert "k2" not in e.execute("show crypto key mypubkey ecdsa").output
    for line in ("configure", "hostname after", "commit", "end"):
        assert e.execute(line).ok, line
    e.close()
