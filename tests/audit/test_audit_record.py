"""The audit trail's record of every signed checkpoint (`log/CHECKPOINTS`) damaged: emptied,
removed, cut, or a bit flipped in its newest checkpoint refuses to open the device's log and
the CA's alike, with a `%` sentence naming the file, what is wrong and what to do, and changes
nothing (it opened without a word). `AUDIT` records how many bytes were written and their
CRC-32C; an `AUDIT` from before that still refuses a record that ends before its latest
checkpoint. A bit flipped in an older checkpoint, which the open does not read, is caught by
whatever reads it (`audit export --until`) before any checkpoint is used, and by `log
verify`, however many checkpoints were appended since (test_audit_record_on_read.py)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.audit import trail
from engine.audit.trail import AUDIT_FILE, CHECKPOINTS_FILE, AuditMismatch, read_checkpoints
from engine.ca.errors import CAError
from engine.ca.service import BuiltinCA
from engine.cli import main
from events.crc import crc32c
from tests.audit.trail_support import audited_device, checkpoint_sizes, commit_hostname
from tests.ca.ca_support import make_ca
from tests.core.engine_support import open_engine

RECOVER = ("Refusing to open (restore CHECKPOINTS from a backup; or move it and AUDIT aside to "
           "open the log unchecked: the tree is then rebuilt from the log and signed again, "
           "without the checkpoints lost).")


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def removed(path: Path) -> None:
    path.unlink()


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def cut_to_first_note(path: Path) -> None:
    """At a note's end: what is left is a whole, valid, older record."""
    path.write_bytes(read_checkpoints(path.parent)[0])


def flipped_in_newest_note(path: Path) -> None:
    """A bit of the newest checkpoint's signature: what the open reads."""
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.write_bytes(bytes(data))


def expected(path: Path, how: Callable[[Path], None], written: int) -> str:
    if how is flipped_in_newest_note:
        return (f"% The newest checkpoint in {path} does not verify with the log's audit key "
                "(")
    held = ("is missing" if how is removed else
            f"holds {path.stat().st_size if path.exists() else 0} bytes")
    return (f"% The checkpoint record {path} {held}, but {written} bytes of signed checkpoints "
            f"were written to it (AUDIT says so): it was cut or emptied. {RECOVER}")


DAMAGE = [emptied, removed, cut_in_half, cut_to_first_note, flipped_in_newest_note]


def snapshot_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "LOCK"}


@pytest.fixture
def device(tmp_path: Path) -> Path:
    return audited_device(tmp_path / "dev")


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ca"
    with make_ca(root, audit=True) as ca:
        ca.refresh_crl(force=True)  # a second checkpoint: an older one to damage
    return root


@pytest.mark.parametrize("how", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_record_refuses_the_device(device: Path, how: Callable[[Path], None]) -> None:
    path = device / "log" / CHECKPOINTS_FILE
    written = path.stat().st_size
    how(path)
    before = snapshot_of(device)
    with pytest.raises(AuditMismatch) as caught:
        open_engine(device)
    text = caught.value.render()
    assert text.startswith(expected(path, how, written)), text
    assert text.endswith(RECOVER)
    assert snapshot_of(device) == before


@pytest.mark.parametrize("how", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_record_refuses_the_ca_the_same_way(ca_dir: Path,
                                                      how: Callable[[Path], None]) -> None:
    path = ca_dir / "log" / CHECKPOINTS_FILE
    written = path.stat().st_size
    how(path)
    before = snapshot_of(ca_dir)
    with pytest.raises(CAError) as caught:
        BuiltinCA.open(ca_dir)
    assert caught.value.message.startswith(expected(path, how, written)), caught.value.message
    assert snapshot_of(ca_dir) == before


def test_the_cli_says_it_in_one_percent_line(device: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = device / "log" / CHECKPOINTS_FILE
    written = path.stat().st_size
    path.write_bytes(b"")
    script = tmp_path / "cmds"
    script.write_text("show clock\n")
    assert main(["exec", "--data", str(device), "-f", str(script)]) == 2
    assert capsys.readouterr().err == (
        f"% The checkpoint record {path} holds 0 bytes, but {written} bytes of signed "
        f"checkpoints were written to it (AUDIT says so): it was cut or emptied. {RECOVER}\n")


@pytest.mark.parametrize("how", [emptied, removed, cut_to_first_note],
                         ids=lambda f: f.__name__)
def test_an_older_audit_file_still_refuses_a_record_behind_its_latest_checkpoint(
        device: Path, how: Callable[[Path], None]) -> None:
    """An AUDIT written before it recorded CHECKPOINTS' size: the newest checkpoint left in
    the record must be at least the latest one AUDIT holds."""
    saved = trail.read_saved(device / "log")
    assert saved is not None and saved.record is not None and saved.latest is not None
    trail._write_saved(device / "log", dataclasses.replace(saved, record=None))
    path = device / "log" / CHECKPOINTS_FILE
    how(path)
    ends = ("ends at the checkpoint of tree size 1" if how is cut_to_first_note
            else "holds no checkpoint")
    with pytest.raises(AuditMismatch) as caught:
        open_engine(device)
    assert caught.value.render() == (
        f"% The checkpoint record {path} {ends}, but the latest checkpoint in AUDIT was signed "
        f"at tree size {saved.latest.checkpoint.size}: it was cut or emptied. {RECOVER}")


def test_moving_both_files_aside_opens_the_log_unchecked_as_the_sentence_says(
        device: Path) -> None:
    (device / "log" / CHECKPOINTS_FILE).unlink()
    (device / "log" / AUDIT_FILE).unlink()
    e = open_engine(device)
    e.close()
    assert checkpoint_sizes(device) == [e.state.seq]  # the tree as it is, signed again


def test_a_failed_appends_bytes_are_cut_before_the_next_checkpoint(device: Path) -> None:
    """Bytes past the record (a write that failed half-way: the record grows only when one
    succeeds) are not left inside the file: the next checkpoint follows the last whole one."""
    path = device / "log" / CHECKPOINTS_FILE
    e = open_engine(device)
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(whole[:40])  # a torn note
    commit_hostname(e, "r4")
    e.close()
    notes = read_checkpoints(device / "log")
    assert path.read_bytes() == whole + notes[-1]
    assert checkpoint_sizes(device) == [1, 2, 3, 4, 5]
    open_engine(device).close()  # and the record it wrote checks


def test_a_record_a_crash_left_ahead_of_audit_still_opens(device: Path, tmp_path: Path) -> None:
    """CHECKPOINTS appended, AUDIT not replaced: the bytes after the recorded ones are a
    crash's, and the newest checkpoint verifies: the open goes on."""
    older = tmp_path / "older"
    shutil.copytree(device, older)
    e = open_engine(device)
    commit_hostname(e, "r4")
    e.close()
    shutil.copy(older / "log" / AUDIT_FILE, device / "log" / AUDIT_FILE)
    open_engine(device).close()
    assert checkpoint_sizes(device) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("value", [[], [-1, "00000000"], ["x", "y"], 5])
def test_a_malformed_size_in_audit_is_a_damaged_audit_state(device: Path, value: object) -> None:
    """AUDIT's own checksum recomputed over a body whose record is not a size and a CRC: the
    audit state is damaged (a `%` refusal, not a traceback)."""
    path = device / "log" / AUDIT_FILE
    obj = json.loads(path.read_bytes().partition(b"\n")[2])
    obj["checkpoints"] = value
    body = json.dumps(obj).encode()
    path.write_bytes(f"trustledger-audit v1 {crc32c.crc32c(body):08x}\n".encode() + body)
    with pytest.raises(AuditMismatch, match=r"^% The audit state .* is damaged \("):
        open_engine(device)
