"""A damaged frame in a CA's (or a device's) log is refused with one IOS-style `%` line that
says what is wrong and what to do, as every other refusal of the CLI (it was `trustledger:
event log is damaged: ...`); the exit status is unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.cli import main
from events.filelog import iter_frames
from tests.ca.ca_support import make_ca
from tests.core.engine_support import open_engine

EXPECTED = ("% The event log is damaged: frame checksum mismatch (seq 1, segment "
            "00000000000000000001.seg, offset 48). Run 'trustledger log verify' and restore "
            "the log from a backup.\n")


def flip_first_frame(root: Path) -> None:
    """One bit of the first event's body, as a failing disk flips it."""
    (seg,) = sorted((root / "log").glob("*.seg"))
    first = next(iter(iter_frames(seg)))
    data = bytearray(seg.read_bytes())
    data[first.end - 1] ^= 0x01
    seg.write_bytes(bytes(data))
    shutil.rmtree(root / "snapshots", ignore_errors=True)  # the whole log is read again


@pytest.mark.parametrize("argv", [["ca", "challenge"], ["ca", "list"], ["ca", "requests"]])
def test_a_ca_log_with_a_bad_frame_is_refused_with_a_percent_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with make_ca(tmp_path / "ca") as ca:
        ca.mint_challenge()  # a second frame: the first is found damaged when replayed
    flip_first_frame(tmp_path / "ca")
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "ca" / "log").glob("*.seg"))
    assert main([*argv, str(tmp_path / "ca")]) == 2
    assert capsys.readouterr().err == EXPECTED
    assert sorted((p.name, p.read_bytes())
                  for p in (tmp_path / "ca" / "log").glob("*.seg")) == before


def test_a_ca_log_whose_only_frame_is_damaged_is_refused_at_open_the_same_way(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The open's tail check finds it (a CAError: exit status 1, as before)."""
    make_ca(tmp_path / "ca").close()  # a CA with its first frame, closed
    flip_first_frame(tmp_path / "ca")
    assert main(["ca", "challenge", str(tmp_path / "ca")]) == 1
    assert capsys.readouterr().err == EXPECTED


def test_a_device_log_with_a_bad_frame_says_it_the_same_way(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    e = open_engine(tmp_path / "dev")
    for line in ("configure", "hostname r1", "commit", "end"):
        assert e.execute(line).ok, line
    e.close()
    flip_first_frame(tmp_path / "dev")
    script = tmp_path / "cmds"
    script.write_text("show clock\n")
    assert main(["exec", "--data", str(tmp_path / "dev"), "-f", str(script)]) == 2
    assert capsys.readouterr().err == EXPECTED
