"""Opening reads the newest segment and a snapshot's tail only; the scrub checks the rest.

A recorded `Position` lets a reader start at the frames after a snapshot: what lies before it
is not read (so not checked: that is the scrub's job), and what follows is checked along the
hash chain from the stored bytes, so a frame rewritten with valid checksums is refused.
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import msgpack
import pytest

from engine.ports import FakeClock
from engine.scrub import EVERY, FIRST, ScrubSchedule
from events import filelog
from events.filelog import (
    _FRAME_PREFIX,
    HEAD_FILE,
    SCRUB_FILE,
    FileEventLog,
    LogCorrupted,
    LogError,
    Position,
    TailMismatch,
    _parse_marker,
    iter_frames,
    read_marker,
    scrub,
    write_marker,
)
from tests.events.eventlog_support import copy_log, noted_batch, segment_files


def _build(root: Path, n: int, at: int) -> tuple[Position, bytes]:
    """A log of `n` one-event frames in small segments; the position and hash after `at`."""
    with FileEventLog.open(root, segment_bytes=400) as log:
        pos, chain = None, b""
        for i in range(1, n + 1):
            log.append(noted_batch(i, 1))
            if i == at:
                pos, chain = log.position, log.head[1]
    assert pos is not None
    return pos, chain


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_the_tail_skips_what_lies_before_the_position(tmp_path: Path) -> None:
    root = tmp_path / "log"
    pos, chain = _build(root, 30, at=20)
    segs = segment_files(root)
    assert len(segs) >= 4 and int(segs[0].stem) < pos.segment
    _flip(segs[0], 60)  # damage in a sealed segment before the snapshot's position
    with FileEventLog.open(root) as log:
        assert [row[0] for row in log.tail(pos, 20, chain)] == list(range(21, 31))
        with pytest.raises(LogCorrupted):
            list(log.read_rows())  # a full read still finds it...
    damage = scrub(root).damage  # ...and so does the scrub
    assert damage is not None and damage.segment == segs[0].name


def test_a_tail_at_the_head_is_empty_and_checks_the_head_hash(tmp_path: Path) -> None:
    root = tmp_path / "log"
    pos, chain = _build(root, 5, at=5)
    with FileEventLog.open(root, readonly=True) as log:
        assert list(log.tail(pos, 5, chain)) == []
        with pytest.raises(TailMismatch, match="another log"):
            log.tail(pos, 5, bytes(32))
        with pytest.raises(TailMismatch, match="ends at seq 5"):
            log.tail(pos, 6, chain)


def test_a_tail_that_does_not_continue_the_snapshot_is_a_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "log"
    pos, chain = _build(root, 12, at=6)
    with FileEventLog.open(root, readonly=True) as log:
        with pytest.raises(TailMismatch, match="another log"):
            log.tail(pos, 6, bytes(32))
        with pytest.raises(TailMismatch, match="no frame of seq"):
            log.tail(Position(pos.segment, pos.offset + 3), 6, chain)
        with pytest.raises(TailMismatch, match="not in the log"):
            log.tail(Position(pos.segment + 1000, pos.offset), 6, chain)


def test_a_frame_rewritten_with_valid_checksums_in_the_tail_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "log"
    pos, chain = _build(root, 12, at=6)
    last = segment_files(root)[-1]
    frames = list(iter_frames(last))
    victim = frames[-2]  # in the tail, not its first frame
    rows = msgpack.unpackb(victim.body)
    rows[0][7]["text"] = "forged"
    body = msgpack.packb(rows, use_bin_type=True)
    prefix = _FRAME_PREFIX.pack(len(body), victim.first_seq, crc32c.crc32c(body))
    data = last.read_bytes()
    last.write_bytes(data[:victim.offset] + prefix + struct.pack("<I", crc32c.crc32c(prefix))
                     + body + data[victim.end:])
    with FileEventLog.open(root, readonly=True) as log:
        tail = log.tail(pos, 6, chain)
        with pytest.raises(LogCorrupted, match="hash chain broken") as err:
            list(tail)
    assert err.value.damage.seq == victim.first_seq


def test_the_scheduled_scrub_runs_on_real_time_not_the_engine_clock(tmp_path: Path) -> None:
    """A shell on a device whose clock was set two years ahead neither scrubs at once nor
    puts the next scrub years away; the record is private (0600) like the log."""
    from engine import Engine
    from engine.frontends import Scheduler

    base = FakeClock()
    with Engine.open(tmp_path, clock=base) as eng:
        assert eng.execute("clock set 00:00:00 1 January 2029").ok
        scheduler = Scheduler(eng)
        assert scheduler.scrub is not None
        assert scheduler.scrub.next_at == base.now_us() + FIRST
        base.advance(FIRST // 1_000_000)
        assert scheduler.scrub.due() is None
    scrubbed = tmp_path / "log" / SCRUB_FILE
    assert scrubbed.stat().st_mode & 0o777 == 0o600
    assert scrubbed.read_text().split()[2] == str(base.now_us())


def test_the_scheduled_scrub_runs_on_its_clock_and_reports_damage(
        tmp_path: Path) -> None:
    root = tmp_path / "log"
    _build(root, 30, at=1)
    clock = FakeClock()
    schedule = ScrubSchedule(root, clock)
    assert schedule.due() is None and not (root / SCRUB_FILE).exists()  # not at once
    clock.advance(FIRST // 1_000_000)
    assert schedule.due() is None and (root / SCRUB_FILE).exists()  # clean: recorded
    again = ScrubSchedule(root, clock)  # a later open waits for the recorded one
    assert again.next_at == clock.now_us() + EVERY
    _flip(segment_files(root)[1], 60)
    clock.advance(EVERY // 1_000_000 - 1)
    assert again.due() is None
    clock.advance(1)
    message = again.due()
    assert message is not None and message.startswith("%LOG-1-SCRUB_DAMAGED: ")
    assert segment_files(root)[1].name in message


def test_an_open_after_a_crash_walks_from_the_marker_and_cuts_the_torn_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "log"
    with FileEventLog.open(root) as log:
        log.append(noted_batch(1, 5))
    full = _parse_marker(root)
    assert full is not None and full[0] == 5 and full[2] is not None  # v2: with its position
    # Three appends (three fdatasyncs) slower than MARK_EVERY (2 s) on a busy disk moved it.
    monkeypatch.setattr(filelog, "MARK_EVERY", 1e9)
    with FileEventLog.open(root) as log:
        for n in range(6, 9):
            log.append(noted_batch(n, 1))  # the marker stays at 5 (MARK_EVERY not reached)
        assert read_marker(root) == full[:2]
        crashed = copy_log(root, tmp_path / "crashed", marker=True)
    [seg] = segment_files(crashed)
    data = seg.read_bytes()
    seg.write_bytes(data[:-7])  # the last frame torn
    with FileEventLog.open(crashed) as log:
        assert log.head[0] == 7 and log.recovered is not None
        assert [row[0] for row in log.read_rows()] == list(range(1, 8))
    # A marker whose position does not hold its frame: the open walks the whole segment.
    seq, chain, at = full
    assert at is not None
    write_marker(crashed, seq, chain, Position(at.segment, at.offset + 1))
    with FileEventLog.open(crashed) as log:
        assert log.head[0] == 7
    write_marker(crashed, seq, bytes(32), at)  # the marker's hash is not the log's: refused
    with pytest.raises(LogError, match="does not have the hash"):
        FileEventLog.open(crashed)
    assert (crashed / HEAD_FILE).exists()
