"""Segment rotation, reads across segments, group commit and constant-memory streaming."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import filelog
from events.filelog import (
    FileEventLog,
    iter_frames,
    read_segment_header,
    verify,
)
from events.store import GENESIS
from tests.events.eventlog_support import fingerprint, noted, noted_batch, segment_files

# -- rotation ---------------------------------------------------------------------------------


def _fill(root: Path, sizes: list[int], segment_bytes: int) -> None:
    with FileEventLog.open(root, segment_bytes=segment_bytes) as log:
        for size in sizes:
            log.append(noted_batch(log.head[0] + 1, size, size=20))


def test_segments_rotate_at_the_limit_and_are_named_after_their_first_seq(
        tmp_path: Path) -> None:
    root = tmp_path / "log"
    _fill(root, [1, 2, 3, 1, 5, 1, 1, 2] * 5, segment_bytes=600)
    segs = segment_files(root)
    assert len(segs) >= 5
    with FileEventLog.open(root, readonly=True) as log:
        hash_of = {r.seq: r.hash for r in log.read()}
    hash_of[0] = GENESIS
    for seg in segs:
        first_seq, seg_prev = read_segment_header(seg)
        frames = list(iter_frames(seg))
        assert seg.name == f"{first_seq:020d}.seg"
        assert frames[0].first_seq == first_seq  # a batch never spans two segments
        assert seg_prev == hash_of[first_seq - 1]  # the header carries the chain across files
        assert seg.stat().st_size <= 600 or len(frames) == 1
    assert verify(root).damage is None


def test_a_batch_bigger_than_a_segment_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    root = tmp_path / "log"
    with FileEventLog.open(root, segment_bytes=300) as log:
        log.append([noted(1)])
        log.append(noted_batch(2, 10, size=80))  # ~1 KB, one frame
        log.append([noted(12)])
    names = [p.name for p in segment_files(root)]
    assert names == [f"{n:020d}.seg" for n in (1, 2, 12)]
    assert len(list(iter_frames(root / names[1]))) == 1


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=25), st.integers(200, 900))
def test_reading_from_any_seq_across_segments(tmp_path_factory: pytest.TempPathFactory,
                                              sizes: list[int], limit: int) -> None:
    root = tmp_path_factory.mktemp("rot") / "log"
    _fill(root, sizes, segment_bytes=limit)
    with FileEventLog.open(root, readonly=True) as log:
        everything = fingerprint(log.read())
        rows = list(log.read_rows())
        assert [e[0] for e in everything] == list(range(1, sum(sizes) + 1))
        assert [(r[0], r[8]) for r in rows] == [(e[0], e[2]) for e in everything]
        for from_seq in range(0, len(everything) + 2):
            assert fingerprint(log.read(from_seq)) == everything[max(from_seq, 1) - 1:]
            assert [r[0] for r in log.read_rows(from_seq)] == \
                [e[0] for e in everything[max(from_seq, 1) - 1:]]


def test_reopened_writer_continues_in_the_last_segment(tmp_path: Path) -> None:
    root = tmp_path / "log"
    _fill(root, [1, 1, 1], segment_bytes=10_000)
    with FileEventLog.open(root, segment_bytes=10_000) as log:
        log.append([noted(4)])
    [seg] = segment_files(root)
    assert [f.first_seq for f in iter_frames(seg)] == [1, 2, 3, 4]


def test_a_reader_sees_the_head_as_of_its_open(tmp_path: Path) -> None:
    root = tmp_path / "log"
    with FileEventLog.open(root, segment_bytes=300) as writer:
        writer.append(noted_batch(1, 2))
        with FileEventLog.open(root, readonly=True) as reader:
            for n in range(3, 12):
                writer.append([noted(n)])  # some of these rotate segments
            assert reader.head[0] == 2
            assert [r.seq for r in reader.read()] == [1, 2]
            assert [r[0] for r in reader.read_rows()] == [1, 2]
        with FileEventLog.open(root, readonly=True) as later:
            assert [r.seq for r in later.read()] == list(range(1, 12))


def test_a_readonly_open_of_a_missing_directory_is_an_empty_log(tmp_path: Path) -> None:
    with FileEventLog.open(tmp_path / "nowhere", readonly=True) as log:
        assert log.head == (0, GENESIS)
        assert list(log.read()) == []
    assert not (tmp_path / "nowhere").exists()


# -- group commit ---------------------------------------------------------------------------


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records each fdatasync (the acknowledgement point) instead of hiding it."""
    calls: list[int] = []
    real: Callable[[int], None] = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def test_each_append_outside_a_group_is_synced_before_it_returns(
        tmp_path: Path, syncs: list[int]) -> None:
    with FileEventLog.open(tmp_path / "log") as log:
        log.append([noted(1)])  # creates the segment (fsync'd, not counted) and syncs the frame
        for n in range(2, 12):
            before = len(syncs)
            log.append([noted(n)])
            assert len(syncs) == before + 1


def test_group_commit_syncs_once_when_the_block_ends(tmp_path: Path, syncs: list[int]) -> None:
    with FileEventLog.open(tmp_path / "log") as log:
        log.append([noted(1)])
        before = len(syncs)
        with log.group_commit():
            for n in range(2, 102):
                log.append([noted(n)])
            assert len(syncs) == before  # nothing acknowledged inside the block
        assert len(syncs) == before + 1
        assert log.head[0] == 101
        with log.group_commit():
            pass
        assert len(syncs) == before + 1  # an empty block costs no sync
    with FileEventLog.open(tmp_path / "log", readonly=True) as again:
        assert [r.seq for r in again.read()] == list(range(1, 102))


def test_nested_group_commits_sync_when_the_outermost_ends(tmp_path: Path,
                                                           syncs: list[int]) -> None:
    with FileEventLog.open(tmp_path / "log") as log:
        log.append([noted(1)])
        before = len(syncs)
        with log.group_commit():
            log.append([noted(2)])
            with log.group_commit():
                log.append([noted(3)])
            assert len(syncs) == before
            log.append([noted(4)])
        assert len(syncs) == before + 1


def test_rotation_inside_a_group_makes_the_full_segment_durable(tmp_path: Path,
                                                                syncs: list[int]) -> None:
    with FileEventLog.open(tmp_path / "log", segment_bytes=400) as log, log.group_commit():
        for n in range(1, 20):
            log.append([noted(n)])
        rotations = len(segment_files(tmp_path / "log")) - 1
        assert rotations >= 2
        assert len(syncs) == rotations  # each closed segment synced before the next opens


# -- constant-memory streaming --------------------------------------------------------------

STREAM_EVENTS = 200_000


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream") / "log"
    with FileEventLog.open(root, segment_bytes=8 << 20) as log, log.group_commit():
        for first in range(1, STREAM_EVENTS + 1, 1000):
            log.append(noted_batch(first, 1000))
    return root


def _peak_while(consume: Callable[[], int]) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = consume()
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_read_streams_a_large_log_in_constant_memory(big_log: Path) -> None:
    log_bytes = sum(p.stat().st_size for p in segment_files(big_log))
    assert log_bytes > 16 << 20 and len(segment_files(big_log)) >= 3
    with FileEventLog.open(big_log, readonly=True) as log:
        seen, peak = _peak_while(lambda: sum(1 for _ in log.read()))
    assert seen == STREAM_EVENTS
    assert peak < 4 << 20, f"read() peaked at {peak} bytes for a {log_bytes}-byte log"


def test_read_rows_streams_from_a_late_seq_in_constant_memory(big_log: Path) -> None:
    with FileEventLog.open(big_log, readonly=True) as log:
        seen, peak = _peak_while(lambda: sum(1 for _ in log.read_rows(150_001)))
        first = next(log.read_rows(150_001))
    assert (seen, first[0]) == (50_000, 150_001)
    assert peak < 4 << 20


def test_appends_inside_a_group_are_readable_before_the_block_ends(tmp_path: Path,
                                                                   syncs: list[int]) -> None:
    with FileEventLog.open(tmp_path / "log") as log, log.group_commit():
        log.append(noted_batch(1, 3))
        log.append([noted(4)])
        assert [r.seq for r in log.read()] == [1, 2, 3, 4]
        assert [r[0] for r in log.read_rows(3)] == [3, 4]
        assert syncs == []  # written so readers see them, but not yet acknowledged


def test_a_long_group_writes_out_in_bounded_chunks(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    real_write = os.write

    def counting(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    with FileEventLog.open(tmp_path / "log") as log:
        log.append([noted(0)])
        [seg] = log.segments()
        before = seg.stat().st_size
        monkeypatch.setattr(os, "write", counting)
        with log.group_commit():
            for first in range(1, 3001, 100):
                log.append(noted_batch(first, 100, size=400))  # ~45 KB per frame
            assert writes and max(writes) <= filelog.GROUP_BUFFER + 64 * 1024
        monkeypatch.undo()  # the head marker written at close is not the segment's
    assert len(writes) < 30  # one write per ~1 MiB, not one per frame
    assert sum(writes) == seg.stat().st_size - before  # and every byte went out


def _outcome(read: Callable[[], list[int]]) -> list[int] | str:
    try:
        return read()
    except filelog.LogCorrupted as e:
        return f"LogCorrupted: {e}"


def test_read_rows_reads_and_refuses_exactly_as_read_does(tmp_path: Path) -> None:
    """`read_rows` (one loop over the bytes, the replay's) against `read` (frames from
    `scan_frames`, checked by `_frames`): the same rows, or the same damage named, whatever
    byte of a sealed segment is changed (headers, lengths, CRCs, seqs, bodies)."""
    root = tmp_path / "log"
    _fill(root, [1, 2, 1, 3, 1, 1, 2, 1] * 3, segment_bytes=700)
    segs = segment_files(root)
    assert len(segs) >= 4
    for seg in segs[:-1]:  # sealed segments: a read-only open does not read them
        original = seg.read_bytes()
        for at in range(0, len(original), 5):
            damaged = bytearray(original)
            damaged[at] ^= 0x41
            seg.write_bytes(bytes(damaged))
            with FileEventLog.open(root, readonly=True) as log:
                for start in (1, 5):
                    rows = _outcome(lambda: [r[0] for r in log.read_rows(start)])  # noqa: B023
                    typed = _outcome(lambda: [r[0] for r in log.read_rows(start, typed=True)])  # noqa: B023
                    records = _outcome(lambda: [r.seq for r in log.read(start)])  # noqa: B023
                    assert rows == records, (seg.name, at, start)
                    if isinstance(rows, list):
                        assert typed == rows, (seg.name, at, start)
        seg.write_bytes(original)
