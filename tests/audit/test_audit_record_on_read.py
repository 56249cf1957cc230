"""A bit flipped in an older checkpoint of `log/CHECKPOINTS`, which the open does not read
(it reads the newest checkpoint and the bytes a crash left after the recorded ones): the
device and the CA open, and the damage is caught where older checkpoints are read, before any
is used: `audit export --until` refuses with a `%` sentence naming the file, and `log verify`
says DAMAGED (exit 1). However many checkpoints are appended after the damage, the record
`AUDIT` keeps still says what was written (it is extended, never recomputed from the file),
so the damage stays caught. A record that is whole reads as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.audit.trail import (
    AUDIT_FILE,
    CHECKPOINTS_FILE,
    checked_checkpoints,
    read_checkpoints,
    read_saved,
    verify_record,
)
from engine.ca.service import BuiltinCA
from engine.cli import main
from tests.audit.trail_support import audited_device, checkpoint_sizes, commit_hostname
from tests.ca.ca_support import make_ca
from tests.core.engine_support import open_engine


def flip(path: Path, where: str) -> None:
    """One bit of an older checkpoint: its first byte, the middle of the second note's
    signature, or the last byte before the newest note."""
    notes = read_checkpoints(path.parent)
    assert len(notes) >= 3, notes
    at = {"first byte": 0, "middle": len(notes[0]) + len(notes[1]) - 10,
          "before the newest": sum(map(len, notes[:-1])) - 1}[where]
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


WHERE = ["first byte", "middle", "before the newest"]


def damaged_sentence(path: Path, written: int) -> str:
    return (f"The checkpoint record {path} is damaged: its first {written} bytes are not the "
            "signed checkpoints written to it (CRC-32C ")


@pytest.mark.parametrize("where", WHERE)
def test_an_older_checkpoint_flipped_opens_and_is_refused_where_it_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    device = audited_device(tmp_path / "dev")
    path = device / "log" / CHECKPOINTS_FILE
    written = path.stat().st_size
    flip(path, where)
    e = open_engine(device)  # the open does not read it
    commit_hostname(e, "r4")  # appended after the damage: the record is extended, not redone
    e.close()
    saved = read_saved(device / "log")
    assert saved is not None and saved.record is not None
    assert saved.record.size == path.stat().st_size > written
    assert checkpoint_sizes(device) == [1, 2, 3, 4, 5]
    out = tmp_path / "bundle"
    capsys.readouterr()
    assert main(["audit", "export", str(device), "--until", "4", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("% " + damaged_sentence(path, saved.record.size)), err
    assert err.endswith(" Its checkpoints are not used (restore CHECKPOINTS from a "
                        "backup).\n"), err
    assert not out.exists()
    assert main(["log", "verify", str(device)]) == 1
    said = capsys.readouterr().out
    assert f"DAMAGED   : {damaged_sentence(path, saved.record.size)}" in said, said
    assert "snapshot  : " in said, said  # the damage hides no other check's line


def test_the_cas_older_checkpoint_flipped_is_said_by_log_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ca"
    with make_ca(root, audit=True) as ca:
        ca.refresh_crl(force=True)
        ca.refresh_crl(force=True)
    path = root / "log" / CHECKPOINTS_FILE
    written = path.stat().st_size
    flip(path, "middle")
    BuiltinCA.open(root).close()
    assert isinstance(checked_checkpoints(root / "log"), str)
    assert main(["log", "verify", str(root)]) == 1
    said = capsys.readouterr().out
    assert f"DAMAGED   : {damaged_sentence(path, written)}" in said, said


def test_a_whole_record_reads_and_verifies_as_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device = audited_device(tmp_path / "dev")
    log = device / "log"
    assert verify_record(log) is None
    assert checked_checkpoints(log) == read_checkpoints(log)
    assert main(["log", "verify", str(device)]) == 0
    assert "DAMAGED" not in capsys.readouterr().out
    out = tmp_path / "bundle"
    assert main(["audit", "export", str(device), "--until", "2", "-o", str(out)]) == 0


def test_a_record_cut_short_is_said_by_the_readers_too(tmp_path: Path) -> None:
    device = audited_device(tmp_path / "dev")
    path = device / "log" / CHECKPOINTS_FILE
    written = path.stat().st_size
    path.write_bytes(path.read_bytes()[:written // 2])
    assert verify_record(device / "log") == (
        f"The checkpoint record {path} holds {written // 2} bytes, but {written} bytes of "
        f"signed checkpoints were written to it ({AUDIT_FILE} says so): it was cut or "
        "emptied.")
    path.unlink()
    assert checked_checkpoints(device / "log") == (
        f"The checkpoint record {path} is missing, but {written} bytes of signed checkpoints "
        f"were written to it ({AUDIT_FILE} says so): it was cut or emptied.")
