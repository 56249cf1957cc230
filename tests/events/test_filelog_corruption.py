"""Damage anywhere in the log is found and named, never skipped.

Every single-bit flip in a small log (and a hypothesis-chosen sample in a bigger one) must be
reported by `verify`; in the newest segment it must make every open refuse, in a sealed one the
scrub must report it and reading must refuse (opening reads only the newest segment), each with
`LogCorrupted` naming the segment and the offset of the damaged frame (or 0 for a segment header),
without touching the files: an acknowledged event is never silently dropped. Deliberate edits
that keep the checksums valid are caught by the hash chain.
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.codec import encode_core
from events.filelog import (
    _FRAME_PREFIX,
    FRAME_HEADER,
    SEG_HEADER,
    FileEventLog,
    LogCorrupted,
    iter_frames,
    scrub,
    verify,
)
from events.store import chain_hash
from tests.events.eventlog_support import fingerprint, noted_batch, segment_files


def _build(root: Path, batch_sizes: list[int], segment_bytes: int) -> None:
    with FileEventLog.open(root, segment_bytes=segment_bytes) as log:
        seq = 1
        for size in batch_sizes:
            log.append(noted_batch(seq, size))
            seq += size


def _damage_site(seg: Path, byte: int) -> int:
    """The offset a report must name for damage at `byte`: 0 inside the segment header,
    otherwise the start of the frame holding that byte."""
    if byte < SEG_HEADER.size:
        return 0
    for frame in iter_frames(seg):
        if frame.offset <= byte < frame.end:
            return frame.offset
    raise AssertionError(f"byte {byte} is in no frame of {seg.name}")


def _assert_flip_is_caught(root: Path, seg: Path, bit: int) -> None:
    original = seg.read_bytes()
    expected = (seg.name, _damage_site(seg, bit // 8))
    damaged = bytearray(original)
    damaged[bit // 8] ^= 1 << (bit % 8)
    seg.write_bytes(bytes(damaged))
    newest = seg == segment_files(root)[-1]
    try:
        report = verify(root)
        assert report.damage is not None, f"bit {bit} of {seg.name} not reported"
        assert (report.damage.segment, report.damage.offset) == expected
        if not newest:  # a sealed segment: the scrub finds it (opening does not read it)
            found = scrub(root).damage
            assert found is not None and (found.segment, found.offset) == expected
        for readonly in (False, True):
            with pytest.raises(LogCorrupted) as err, \
                    FileEventLog.open(root, readonly=readonly) as log:
                list(log.read())  # opening checks the newest segment, reading the rest
            assert (err.value.damage.segment, err.value.damage.offset) == expected
            assert f"offset {expected[1]}" in str(err.value)
        assert seg.read_bytes() == bytes(damaged)  # a refused open repairs nothing
    finally:
        seg.write_bytes(original)


@pytest.mark.slow
def test_every_single_bit_flip_of_a_small_log_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "log"
    _build(root, [1, 2, 1, 1], segment_bytes=260)
    segs = segment_files(root)
    assert len(segs) >= 2  # flips in a non-last and in the last segment
    assert verify(root).damage is None
    for seg in segs:
        for bit in range(seg.stat().st_size * 8):
            _assert_flip_is_caught(root, seg, bit)
    with FileEventLog.open(root) as log:  # every flip was undone: the log is whole again
        assert log.recovered is None and log.head[0] == 5


@pytest.fixture(scope="module")
def bigger_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bigger") / "log"
    _build(root, [1, 3, 1, 7, 2, 1, 1, 12, 4, 1, 2, 30, 1, 1, 5] * 3, segment_bytes=2048)
    assert len(segment_files(root)) >= 4
    return root


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_sampled_bit_flips_of_a_bigger_log_are_caught(bigger_log: Path,
                                                      data: st.DataObject) -> None:
    segs = segment_files(bigger_log)
    seg = data.draw(st.sampled_from(segs), label="segment")
    bit = data.draw(st.integers(0, seg.stat().st_size * 8 - 1), label="bit")
    _assert_flip_is_caught(bigger_log, seg, bit)


# -- edits that keep the checksums valid ------------------------------------------------------


def _rewrite_frame(seg: Path, index: int, rows: list[list[object]]) -> None:
    """Replace frame `index` of `seg` by `rows`, with correct CRCs (a careful forger)."""
    frames = list(iter_frames(seg))
    f = frames[index]
    body = msgpack.packb(rows, use_bin_type=True)
    prefix = _FRAME_PREFIX.pack(len(body), f.first_seq, crc32c.crc32c(body))
    new = prefix + struct.pack("<I", crc32c.crc32c(prefix)) + body
    data = seg.read_bytes()
    seg.write_bytes(data[:f.offset] + new + data[f.end:])


def test_an_edit_with_valid_checksums_breaks_the_hash_chain(tmp_path: Path) -> None:
    root = tmp_path / "log"
    _build(root, [1, 1, 2, 1], segment_bytes=1 << 20)
    [seg] = segment_files(root)
    rows = msgpack.unpackb(list(iter_frames(seg))[2].body)
    rows[0][7]["text"] = "note 9"  # seq 3 now says something else
    _rewrite_frame(seg, 2, rows)
    with FileEventLog.open(root, readonly=True) as log:
        assert log.head[0] == 5  # checksums pass, so open does not notice...
    report = verify(root)
    assert report.damage is not None and report.damage.seq == 3  # ...the auditor does
    assert "hash chain" in report.damage.reason
    assert report.events == 2


def test_rehashing_an_edited_event_breaks_the_link_to_the_next(tmp_path: Path) -> None:
    root = tmp_path / "log"
    _build(root, [1, 1, 2, 1], segment_bytes=1 << 20)
    [seg] = segment_files(root)
    with FileEventLog.open(root, readonly=True) as log:
        prev_of_3 = next(log.read(3)).prev
    rows = msgpack.unpackb(list(iter_frames(seg))[2].body)
    rows[0][7]["text"] = "note 9"
    rows[0][8] = chain_hash(prev_of_3, encode_core(rows[0][:8]))
    _rewrite_frame(seg, 2, rows)
    report = verify(root)
    assert report.damage is not None and report.damage.seq == 4


def test_a_removed_frame_refuses_to_open(tmp_path: Path) -> None:
    root = tmp_path / "log"
    _build(root, [1, 1, 1], segment_bytes=1 << 20)
    [seg] = segment_files(root)
    second = list(iter_frames(seg))[1]
    data = seg.read_bytes()
    seg.write_bytes(data[:second.offset] + data[second.end:])
    with pytest.raises(LogCorrupted, match="expected 2") as err:
        FileEventLog.open(root)
    assert err.value.damage.offset == second.offset
    assert verify(root).damage is not None


def test_a_missing_middle_segment_is_found_by_reading_and_scrub(tmp_path: Path) -> None:
    root = tmp_path / "log"
    _build(root, [1] * 12, segment_bytes=260)
    segs = segment_files(root)
    assert len(segs) >= 3
    with FileEventLog.open(root, readonly=True) as log:
        before = fingerprint(log.read())
    middle = segs[1].read_bytes()
    segs[1].unlink()
    with pytest.raises(LogCorrupted, match="expected") as err, \
            FileEventLog.open(root) as log:  # opening reads the newest segment only
        list(log.read())
    assert err.value.damage.segment == segs[2].name
    assert verify(root).damage is not None
    found = scrub(root).damage
    assert found is not None and found.segment == segs[2].name
    segs[1].write_bytes(middle)
    with FileEventLog.open(root) as log:
        assert fingerprint(log.read()) == before


def test_a_frame_claiming_an_absurd_length_is_damage(tmp_path: Path) -> None:
    root = tmp_path / "log"
    _build(root, [1, 1], segment_bytes=1 << 20)
    [seg] = segment_files(root)
    last = list(iter_frames(seg))[-1]
    prefix = _FRAME_PREFIX.pack(1 << 30, last.first_seq, 0)  # header CRC valid, length not
    data = seg.read_bytes()
    seg.write_bytes(data[:last.offset] + prefix + struct.pack("<I", crc32c.crc32c(prefix))
                    + data[last.offset + FRAME_HEADER.size:])
    with pytest.raises(LogCorrupted, match="length out of range"):
        FileEventLog.open(root)
