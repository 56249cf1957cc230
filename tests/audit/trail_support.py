"""What the audit trail tests share: a device with three audited commits, the sizes of
the checkpoints it recorded, and a log cut back behind them."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.audit.checkpoint import parse_checkpoint
from engine.audit.trail import read_checkpoints
from engine.engine import Engine
from events.filelog import HEAD_FILE, iter_frames
from tests.core.engine_support import open_engine


def commit_hostname(e: Engine, name: str) -> None:
    for line in ("configure", f"hostname {name}", "commit", "end"):
        assert e.execute(line).ok, line


def audited_device(root: Path) -> Path:
    """A device in `root` with its audit key and three hostname commits, closed."""
    e = open_engine(root, audit=True)
    for name in ("r1", "r2", "r3"):
        commit_hostname(e, name)
    e.close()
    return root


def checkpoint_sizes(root: Path) -> list[int]:
    """The tree size of every checkpoint `root`'s log/CHECKPOINTS recorded, in order."""
    return [parse_checkpoint(n.decode().partition("\n\n")[0] + "\n").size
            for n in read_checkpoints(root / "log")]


def cut_log(root: Path, keep: int) -> None:
    """Truncate the device's log after seq `keep` and drop the head marker: a log cut back by
    someone who knew about the marker. (Each command here appended one event: one frame.)"""
    (seg,) = sorted((root / "log").glob("*.seg"))
    frames = list(iter_frames(seg))
    assert [f.first_seq for f in frames] == list(range(1, len(frames) + 1))
    with open(seg, "r+b") as f:
        f.truncate(frames[keep - 1].end)
    (root / "log" / HEAD_FILE).unlink()
    shutil.rmtree(root / "snapshots")  # caches, which would say so too
