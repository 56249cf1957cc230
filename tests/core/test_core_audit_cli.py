"""The audit CLI: log verify, log show, replay --until."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.ports import FakeClock
from tests.core.engine_support import open_engine


@pytest.fixture
def device(tmp_path: Path) -> Path:
    clock = FakeClock(1_764_201_600_000_000)  # 2025-11-27T00:00:00Z
    e = open_engine(tmp_path, clock)
    for name in ("r1", "r2", "r3"):
        clock.advance(3600)
        e.execute("configure")
        e.execute(f"hostname {name}")
        e.execute("end", answers=["yes"])
    e.close()
    return tmp_path


def test_verify_prints_events_head_and_ok(device: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(["log", "verify", str(device)]) == 0
    out = capsys.readouterr().out
    assert "events    : 3" in out and "head seq  : 3" in out and "chain     : OK" in out


def test_verify_names_the_damage_and_exits_non_zero(device: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    seg = next((device / "log").glob("*.seg"))
    raw = bytearray(seg.read_bytes())
    raw[-5] ^= 0x01
    seg.write_bytes(bytes(raw))
    assert main(["log", "verify", str(device)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "offset" in out


def test_show_readable_and_json(device: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "show", str(device), "--from", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "2"
    assert "ConfigurationCommitted" in lines[0]
    assert main(["log", "show", str(device), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[1]["prev"] == rows[0]["hash"]
    assert rows[0]["payload"]["changes"][0][2] == "hostname r1"


def test_replay_until_seq_and_time(device: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(device), "--until", "2", "--show",
                 "show running-config hostname"]) == 0
    out = capsys.readouterr().out
    assert "! state at seq 2" in out and "hostname r2" in out
    assert main(["replay", str(device), "--until", "2025-11-27T01:30:00Z", "--show",
                 "show running-config hostname"]) == 0
    out = capsys.readouterr().out
    assert "! state at seq 1" in out and "hostname r1" in out


def test_replay_until_neither_seq_nor_time_is_a_usage_error(
        device: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It was `trustledger replay: ...` (no `%`) with exit 1, the status of a refused --show;
    `audit export --until` said the same thing as a `%` line, exit 2."""
    for until in ("yesterday", "-5"):
        assert main(["replay", str(device), "--until", until]) == 2
        assert capsys.readouterr() == ("", f"% --until {until!r} is neither a seq nor an "
                                           "ISO time.\n")


def test_replay_show_of_a_bad_line_exits_1_after_every_show(
        device: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(device), "--until", "3", "--show", "show bogus", "--show",
                 "show running-config hostname"]) == 1
    out = capsys.readouterr().out
    assert "% Invalid input detected at '^' marker." in out and "hostname r" in out


def test_replay_is_read_only(device: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(device), "--until", "3", "--show",
                 "rollback configuration last 1"]) == 1  # refused, like exec
    assert "read-only" in capsys.readouterr().out
    assert main(["log", "verify", str(device)]) == 0


def test_replay_performs_no_effect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An audit replay never reaches a CA, asks a question or uses a key."""
    e = open_engine(tmp_path)
    for line in ("configure", "crypto ca trustpoint t1", "enrollment url http://127.0.0.1:9",
                 "commit", "end"):
        e.execute(line)
    e.close()
    assert main(["replay", str(tmp_path), "--until", "1", "--show",
                 "crypto ca authenticate t1", "--show", "crypto key generate rsa k"]) == 1
    out = capsys.readouterr().out
    assert out.count("This is a replay of the log") == 2
    assert "Unable to reach" not in out


def test_scrub_checks_the_sealed_segments(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from events.device import ConfigurationCommitted
    from events.filelog import SCRUB_FILE, FileEventLog
    from events.store import PendingEvent

    root = tmp_path / "log"
    with FileEventLog.open(root, segment_bytes=300) as log:
        for n in range(8):
            ev = ConfigurationCommitted(1_000_000_001 + n, "admin", "", "",
                                        ((("hostname",), None if not n else f"hostname r{n - 1}",
                                          f"hostname r{n}"),))
            log.append([PendingEvent(ev, "device", 1_700_000_000_000_000 + n)])
    segs = sorted(root.glob("*.seg"))
    assert len(segs) >= 3
    assert main(["log", "scrub", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"segments  : {len(segs) - 1} sealed and the newest" in out
    assert "chain     : OK" in out and (root / SCRUB_FILE).exists()
    raw = bytearray(segs[0].read_bytes())
    raw[-5] ^= 0x01
    segs[0].write_bytes(bytes(raw))
    assert main(["log", "scrub", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED   : frame checksum mismatch (seq" in out and segs[0].name in out
