"""Crash safety: a torn last batch is cut back to the acknowledged prefix, nothing more.

A crash can leave the last frame (one append = one batch = one frame) cut at any byte, or a
new segment's header cut short. We simulate every such cut and check that a writer's open
yields exactly the events of all earlier batches, says what it repaired, and can append again.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from events.filelog import (
    FRAME_HEADER,
    HEAD_FILE,
    MAGIC,
    SEG_HEADER,
    FileEventLog,
    InterruptedAppend,
    LogCorrupted,
    LogError,
    LogWriteFailed,
    iter_frames,
    scrub,
    verify,
)
from events.store import GENESIS
from tests.events.eventlog_support import (
    Fingerprint,
    copy_log,
    fingerprint,
    noted,
    noted_batch,
    segment_files,
)


@dataclass
class Crashed:
    """A pristine log whose last batch we are about to tear."""

    root: Path
    last_segment: Path
    frame_start: int  # offset of the last frame in last_segment
    frame_end: int
    prefix: Fingerprint  # the events of every earlier batch

    @property
    def prefix_head(self) -> tuple[int, bytes]:
        return (self.prefix[-1][0], self.prefix[-1][2]) if self.prefix else (0, GENESIS)


def _build(root: Path, last_batch_in_new_segment: bool) -> Crashed:
    with FileEventLog.open(root) as log:
        log.append(noted_batch(1, 1))
        log.append(noted_batch(2, 2, size=40))
        prefix = fingerprint(log.read())
        seg_size = log.segments()[-1].stat().st_size
    # A segment limit equal to the current size forces the last batch into a new segment.
    limit = seg_size if last_batch_in_new_segment else 1 << 20
    with FileEventLog.open(root, segment_bytes=limit) as log:
        log.append(noted_batch(4, 3, size=30))
        last = log.segments()[-1]
    assert (len(segment_files(root)) == 2) is last_batch_in_new_segment
    frames = list(iter_frames(last))
    return Crashed(root, last, frames[-1].offset, frames[-1].end, prefix)


@pytest.fixture(params=[False, True], ids=["same-segment", "new-segment"])
def crashed(request: pytest.FixtureRequest, tmp_path: Path) -> Crashed:
    return _build(tmp_path / "pristine", request.param)


def _tear(c: Crashed, where: Path, cut: int) -> Path:
    root = copy_log(c.root, where)
    os.truncate(root / c.last_segment.name, cut)
    return root


def _assert_opens_to_prefix(c: Crashed, root: Path, *, repaired: bool) -> None:
    with FileEventLog.open(root) as log:
        assert (log.recovered is not None) is repaired, log.recovered
        assert log.head == c.prefix_head
        assert fingerprint(log.read()) == c.prefix
        # Appendable afterwards, continuing the chain from the acknowledged head.
        [rec] = log.append([noted(99)])
        assert (rec.seq, rec.prev) == (c.prefix_head[0] + 1, c.prefix_head[1])
    report = verify(root)
    assert report.damage is None
    assert (report.events, report.head_seq) == (len(c.prefix) + 1, len(c.prefix) + 1)
    with FileEventLog.open(root, readonly=True) as again:
        assert again.recovered is None
        assert fingerprint(again.read())[:-1] == c.prefix


@pytest.mark.slow
def test_cut_at_every_byte_of_the_last_frame_opens_to_the_acknowledged_prefix(
        crashed: Crashed, tmp_path: Path) -> None:
    for cut in range(crashed.frame_start, crashed.frame_end):
        root = _tear(crashed, tmp_path / f"cut{cut}", cut)
        # Cut exactly at the frame's start = the batch never reached the file: nothing to repair.
        _assert_opens_to_prefix(crashed, root, repaired=cut > crashed.frame_start)


def test_an_intact_log_opens_with_every_event_and_nothing_recovered(crashed: Crashed) -> None:
    with FileEventLog.open(crashed.root) as log:
        assert log.recovered is None
        assert log.head[0] == len(crashed.prefix) + 3


def test_cut_inside_a_new_segment_header_removes_the_segment(tmp_path: Path) -> None:
    c = _build(tmp_path / "pristine", last_batch_in_new_segment=True)
    for cut in range(SEG_HEADER.size):
        root = _tear(c, tmp_path / f"cut{cut}", cut)
        with FileEventLog.open(root) as log:
            assert log.recovered is not None and c.last_segment.name in log.recovered
            assert not (root / c.last_segment.name).exists()
            assert (log.head, fingerprint(log.read())) == (c.prefix_head, c.prefix)
        _assert_opens_to_prefix(c, root, repaired=False)  # nothing left to repair on reopen


def test_torn_tail_is_reported_but_not_repaired_by_a_reader(crashed: Crashed,
                                                            tmp_path: Path) -> None:
    cut = crashed.frame_start + FRAME_HEADER.size + 3
    root = _tear(crashed, tmp_path / "torn", cut)
    with FileEventLog.open(root, readonly=True) as log:
        assert log.recovered is None and log.repair_pending is not None
        assert log.repair_pending == (f"cut {cut - crashed.frame_start} bytes at segment "
                                      f"{crashed.last_segment.name} offset {crashed.frame_start}: "
                                      "an incomplete last write (a crash) or a truncated file")
        assert log.head == crashed.prefix_head
        assert fingerprint(log.read()) == crashed.prefix
        assert [r[0] for r in log.read_rows()] == [e[0] for e in crashed.prefix]
    assert (root / crashed.last_segment.name).stat().st_size == cut  # file untouched
    assert verify(root).damage is not None  # the auditor still sees the torn tail


def test_verify_calls_a_torn_tail_an_interrupted_append_not_damage(
        crashed: Crashed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ordinary crash tail: `log verify` says it is an append never acknowledged that the
    next open cuts, with every acknowledged event verified (its exit status stays 1: the
    files are not clean)."""
    from engine.cli import main

    cut = crashed.frame_start + FRAME_HEADER.size + 3
    root = _tear(crashed, tmp_path / "torn", cut)
    report = verify(root)
    assert isinstance(report.damage, InterruptedAppend), report.damage
    assert (report.damage.cut, report.damage.offset) == (cut - crashed.frame_start,
                                                        crashed.frame_start)
    assert report.head_seq == crashed.prefix_head[0] == report.damage.acknowledged
    words = (f"an interrupted append, never acknowledged ({cut - crashed.frame_start} bytes at "
             f"segment {crashed.last_segment.name}, offset {crashed.frame_start}): the next "
             f"open for writing cuts it; all {report.head_seq} acknowledged events before it "
             "verify")
    assert str(report.damage) == words
    assert main(["log", "verify", str(root)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"TORN TAIL : {words}"
    assert (root / crashed.last_segment.name).stat().st_size == cut  # verify changed nothing


def test_a_torn_frame_the_head_marker_acknowledged_is_still_damage(crashed: Crashed,
                                                                   tmp_path: Path) -> None:
    """The marker says the torn frame was acknowledged: events were lost, which is damage."""
    root = copy_log(crashed.root, tmp_path / "lost", marker=True)
    os.truncate(root / crashed.last_segment.name, crashed.frame_start + FRAME_HEADER.size + 3)
    damage = verify(root).damage
    assert damage is not None and not isinstance(damage, InterruptedAppend), damage


def test_header_only_segment_accepts_a_frame_larger_than_the_segment_limit(
        tmp_path: Path) -> None:
    """A crash right after rotation leaves a segment holding only its header; the next
    append must write there, not try to create a segment of the same name again."""
    root = tmp_path / "log"
    with FileEventLog.open(root, segment_bytes=300) as log:
        log.append(noted_batch(1, 1))
        head = log.head
    (root / f"{2:020d}.seg").write_bytes(SEG_HEADER.pack(MAGIC, 2, head[1]))
    with FileEventLog.open(root, segment_bytes=300) as log:
        assert log.recovered is None
        big = log.append(noted_batch(2, 1, size=500))
        after = log.append(noted_batch(3, 1))
    assert [r.seq for r in big + after] == [2, 3]
    assert [p.name for p in segment_files(root)] == [f"{n:020d}.seg" for n in (1, 2, 3)]
    assert verify(root).damage is None


def test_zeroed_frame_header_followed_by_data_is_damage_not_a_torn_tail(
        tmp_path: Path) -> None:
    """Zeros where a header should be are a torn tail only if nothing but zeros follows
    (the file grew before its data reached the disk). With frames after it, truncating
    would drop acknowledged events, so the open must refuse."""
    root = tmp_path / "log"
    with FileEventLog.open(root) as log:
        for n in range(1, 4):
            log.append([noted(n)])
        [seg] = log.segments()
    second = list(iter_frames(seg))[1].offset
    data = bytearray(seg.read_bytes())
    data[second:second + FRAME_HEADER.size] = bytes(FRAME_HEADER.size)
    seg.write_bytes(bytes(data))
    found = scrub(root).damage  # the head marker names frame 3: opening starts after it...
    assert found is not None and found.offset == second
    with pytest.raises(LogCorrupted) as err, FileEventLog.open(root) as log:
        list(log.read_rows())  # ...and reading refuses
    assert err.value.damage.offset == second
    (root / HEAD_FILE).unlink()  # a crash before any marker: opening walks the segment
    with pytest.raises(LogCorrupted) as err:
        FileEventLog.open(root)
    assert err.value.damage.offset == second
    assert seg.read_bytes() == bytes(data)  # nothing truncated


def test_zeros_from_a_frame_header_to_eof_are_a_torn_tail(tmp_path: Path) -> None:
    root = tmp_path / "log"
    with FileEventLog.open(root) as log:
        log.append([noted(1)])
        [seg] = log.segments()
        end = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(bytes(FRAME_HEADER.size + 50))  # size grew, data never arrived
    with FileEventLog.open(root) as log:
        assert log.recovered is not None and str(end) in log.recovered
        assert log.head[0] == 1
    assert seg.stat().st_size == end


def test_a_cut_inside_a_segment_that_is_not_the_last_is_never_repaired(tmp_path: Path) -> None:
    """Opening reads only the newest segment, so it neither notices nor cuts a sealed one;
    reading refuses at the damage and the scrub reports it: nothing is dropped quietly."""
    root = tmp_path / "log"
    with FileEventLog.open(root, segment_bytes=300) as log:
        for n in range(1, 12):
            log.append(noted_batch(n, 1, size=60))
        segs = log.segments()
    assert len(segs) >= 3
    os.truncate(segs[1], segs[1].stat().st_size - 5)
    cut = segs[1].read_bytes()
    with FileEventLog.open(root) as log:
        assert log.recovered is None and log.head[0] == 11
        with pytest.raises(LogCorrupted) as err:
            list(log.read_rows())
    assert segs[1].read_bytes() == cut  # a writer's open repaired nothing there
    assert err.value.damage.segment == segs[1].name
    assert "incomplete" in str(err.value)
    found = scrub(root).damage
    assert found is not None and found.segment == segs[1].name
    os.truncate(segs[1], 10)  # a cut inside a non-last segment's header
    with pytest.raises(LogCorrupted, match="header is incomplete"), \
            FileEventLog.open(root) as log:
        list(log.read_rows())


def test_a_failed_write_is_cut_back_and_the_log_goes_on(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A write cut short by the disk (ENOSPC, EIO) leaves a partial frame: the log cuts it
    off at once (back to the last acknowledged frame), so the next append follows the
    acknowledged head and a reopen finds nothing to repair and no trace of the failed batch."""
    root = tmp_path / "log"
    log = FileEventLog.open(root)
    log.append(noted_batch(1, 2))
    head = log.head
    size = segment_files(root)[-1].stat().st_size
    real_write = os.write

    def half_then_fail(fd: int, data: bytes) -> int:
        monkeypatch.setattr(os, "write", real_write)
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(LogWriteFailed, match="No space") as err:
        log.append([noted(3)])
    assert err.value.rolled_back and err.value.reason == "No space left on device"
    assert log.head == head  # not acknowledged
    assert segment_files(root)[-1].stat().st_size == size  # and not on disk either
    assert log.append([noted(4)])[0].seq == 3
    log.close()
    with FileEventLog.open(root) as again:
        assert again.recovered is None
        assert again.head[0] == 3
    assert verify(root).damage is None


def test_a_failed_fdatasync_forgets_the_whole_group(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failed fdatasync the page cache cannot be trusted (fsyncgate): the written but
    unacknowledged frames are cut off, so neither this process nor a reopen shows them."""
    root = tmp_path / "log"
    with FileEventLog.open(root) as log:
        log.append([noted(1)])
        head = log.head

        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", eio)
        with pytest.raises(LogWriteFailed, match="Input/output"), log.group_commit():
            log.append([noted(2)])
            log.append([noted(3)])
        monkeypatch.undo()
        assert log.head == head
        assert [r.seq for r in log.read()] == [1]
        assert log.append([noted(4)])[0].seq == 2
    with FileEventLog.open(root, readonly=True) as again:
        assert [r.seq for r in again.read()] == [1, 2] and again.repair_pending is None


def test_when_the_cut_back_fails_too_appends_stop_until_reopened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "log"
    log = FileEventLog.open(root)
    log.append([noted(1)])

    def eio(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", eio)
    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(LogWriteFailed) as err:
        log.append([noted(2)])
    assert not err.value.rolled_back
    monkeypatch.undo()
    with pytest.raises(LogWriteFailed, match="Input/output"):
        log.append([noted(3)])
    log.close()
    with FileEventLog.open(root) as again:  # the truncation did happen in the page cache
        assert again.head[0] == 1
        assert again.append([noted(3)])[0].seq == 2


def test_an_interrupt_between_write_and_sync_cuts_the_frame_and_stops_appends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt the caller catches (the shell, an embedding program) after the
    frame reached the file but before it was acknowledged: the frame is cut off, and since
    the interrupt may have struck anywhere, the log takes no more appends until reopened."""
    root = tmp_path / "log"
    log = FileEventLog.open(root)
    log.append([noted(1)])
    real = os.fdatasync

    def interrupted(fd: int) -> None:
        monkeypatch.setattr(os, "fdatasync", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdatasync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        log.append([noted(2)])
    with pytest.raises(LogError, match="KeyboardInterrupt"):
        log.append([noted(3)])
    log.close()
    with FileEventLog.open(root) as again:
        assert again.head[0] == 1  # never acknowledged: not in the log
        assert again.append([noted(3)])[0].seq == 2
    assert verify(root).damage is None


def test_a_last_frame_whose_tail_pages_never_reached_the_disk_is_a_torn_tail(
        tmp_path: Path) -> None:
    """The file's size was persisted but its last pages were not (zeros from a sector
    boundary to the end): not acknowledged, so cut like any torn tail."""
    root = tmp_path / "log"
    with FileEventLog.open(root) as log:
        log.append(noted_batch(1, 2))
        head = log.head
        log.append(noted_batch(3, 2, size=5000))
    (root / HEAD_FILE).unlink()  # a crash: the close that marks the head never happened
    seg = sorted(root.glob("*.seg"))[-1]
    data = bytearray(seg.read_bytes())
    start = (len(data) - 1000) // 512 * 512
    data[start:] = bytes(len(data) - start)
    seg.write_bytes(bytes(data))
    with FileEventLog.open(root) as again:
        assert again.head == head and again.recovered is not None


def test_crafted_frames_with_valid_checksums_are_damage_not_crashes(tmp_path: Path) -> None:
    import msgpack

    from events.filelog import _frame

    for body in (b"\x90", msgpack.packb([[3, "s", "x"]]), msgpack.packb("not a batch")):
        root = tmp_path / f"log{len(body)}"
        with FileEventLog.open(root) as log:
            log.append(noted_batch(1, 2))
        seg = sorted(root.glob("*.seg"))[-1]
        with open(seg, "ab") as f:
            f.write(_frame(3, body))
        with pytest.raises(LogCorrupted):
            FileEventLog.open(root)
        report = verify(root)
        assert report.damage is not None and report.head_seq == 2
