"""A device SIGKILLed at each step between a commit's fdatasync and the marker step that
writes its checkpoint out (engine/audit/trail.py "Durability", engine/audit/signer.py):
whatever the files then hold, the log reopens, holds every acknowledged event and has every
trust decision's checkpoint recorded again, and a log cut back below a checkpoint the device
signed still refuses to open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.audit.note import verify_note
from engine.audit.trail import AuditMismatch, read_checkpoints, read_saved
from tests.audit.trail_support import audited_device, checkpoint_sizes, cut_log
from tests.core.engine_support import open_engine

REPO = Path(__file__).resolve().parents[2]

# The child: two more commits, each acknowledged (fdatasync'ed) before it prints its seq,
# then a clean close, whose marker step writes the trail out. It dies by SIGKILL at the step
# named by argv[2] (the marker step runs only at the close: MARK_EVERY is out of reach).
CHILD = """
import os, signal, sys
import events.filelog
import engine.audit.trail as trail
from tests.audit.trail_support import commit_hostname
from tests.core.engine_support import open_engine

def die(*args, **kw):
    os.kill(os.getpid(), signal.SIGKILL)

events.filelog.MARK_EVERY = 1e9
point = sys.argv[2]
if point == "sign":  # at the next fdatasync, about to sign the first of the two checkpoints
    trail.AuditTrail._sign = die
elif point == "checkpoints":  # signed, nothing written out
    trail._append_checkpoints = die
elif point == "audit":  # CHECKPOINTS appended, AUDIT not replaced
    trail._write_saved = die
elif point == "marker":  # both files written, the head marker not
    events.filelog.write_marker = die
e = open_engine(__import__("pathlib").Path(sys.argv[1]))
for name in ("r4", "r5"):
    commit_hostname(e, name)
    print(e.state.seq, flush=True)
e.close()
sys.exit(3)
"""


@pytest.fixture
def device(tmp_path: Path) -> Path:
    return audited_device(tmp_path / "dev")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["sign", "checkpoints", "audit", "marker"])
def test_a_kill_between_the_fdatasync_and_the_checkpoint_write(device: Path,
                                                               point: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, str(device), point], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr  # SIGKILLed at the step, not before
    acknowledged = [int(line) for line in done.stdout.split()]
    # "sign" dies in the second commit, its frame written, not yet fdatasync'ed.
    assert acknowledged == ([5] if point == "sign" else [5, 6])
    saved = read_saved(device / "log")
    assert saved is not None and saved.latest is not None
    assert saved.latest.checkpoint.size == (6 if point == "marker" else 4)
    assert checkpoint_sizes(device)[:4] == [1, 2, 3, 4]

    e = open_engine(device)  # the open check passes whatever step the kill struck
    assert e.state.seq >= acknowledged[-1]
    assert e.state.hostname == ("r5" if e.state.seq == 6 else "r4")
    e.close()
    assert e.state.audit_key is not None
    verifier = e.state.audit_key.verifier()
    for note in read_checkpoints(device / "log"):
        verify_note(note, [verifier])
    assert checkpoint_sizes(device) == [1, 2, 3, 4, 5, 6][:e.state.seq]  # every decision's, once

    cut_log(device, 3)  # below the checkpoints the device signed: refused, as before
    with pytest.raises(AuditMismatch, match=r"^% The event log ends at seq 3, but "):
        open_engine(device)


@pytest.mark.slow
def test_a_log_cut_between_the_audit_file_and_the_newest_recorded_checkpoint_is_refused(
        device: Path) -> None:
    """Killed after CHECKPOINTS got the checkpoints of seq 5 and 6 but before AUDIT (at 4)
    was replaced: a log then cut back to 5 is below a checkpoint the device signed."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(device), "audit"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr
    assert checkpoint_sizes(device) == [1, 2, 3, 4, 5, 6]
    cut_log(device, 5)
    with pytest.raises(AuditMismatch, match=r"^% The event log ends at seq 5, but the "
                       r"checkpoint recorded at tree size 6 .*event 6 is missing"):
        open_engine(device)
