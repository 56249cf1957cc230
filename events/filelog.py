"""`FileEventLog`: the embedded default event store.

Theory of operation
-------------------
The log is a directory of segment files named after the seq of their first event
(`00000000000000000001.seg`). A segment starts with a 48-byte header:

    magic b"TLSEG\\x00\\x01\\n" | first_seq u64 | prev (32 bytes: last hash of the segment before)

then holds frames, one per appended batch (one command = one batch = one frame):

    body_len u32 | first_seq u64 | body_crc32c u32 | header_crc32c u32 | body (msgpack)

The body is `[[seq, stream, type, v, at, actor, correlation, payload, hash], ...]`, where each
`hash` is SHA-256(prev hash + msgpack(core)) (see `events.store`). The header has its own CRC so
a damaged length is never mistaken for a torn write.

Crash safety: a batch is written with one `write` and made durable with `fdatasync` before
`append` returns; that return is the acknowledgement. After a crash the only damage a write can
leave is an incomplete last frame (or an incomplete new segment header): a writer's open cuts it
off and says so in `recovered` ("cut N bytes at segment S offset O: an incomplete last write (a
crash) or a truncated file" -- from the bytes alone the two cannot be told apart). A read-only
open never modifies the log: it reads up to the last whole frame and says in `repair_pending`
what a writer would cut. Anything else that fails a check (a CRC, a seq gap) refuses to open
with `LogCorrupted`, naming the segment and byte offset: an acknowledged event is never dropped.

A failed write or fdatasync (ENOSPC, EIO): the batch was not acknowledged, so it must not be in
the log, now or after a reopen. The log forgets it in memory (the head goes back to the last
acknowledged frame), truncates the segment back to the end of that frame and fsyncs the
truncation; then it takes appends again. Why not just retry the fdatasync: after a failed
fdatasync Linux may have marked the unwritten pages clean and reported the error once ("fsyncgate",
PostgreSQL 2018), so a second fdatasync can succeed without the frame ever reaching the disk, and
a reader would still see it in the page cache -- a command reported as failed would reappear.
Cutting the file back makes the unacknowledged bytes unreachable whatever the cache holds; the
frames below the cut were acknowledged by an earlier fdatasync that succeeded, so they are on the
disk already. Writes made after the cut are new dirty pages that the next fdatasync reports on.
If the truncation or its fsync fails too, the log refuses every further append until it is
reopened (`LogWriteFailed.rolled_back` is False): the failed batch may then still be found on
reopen, and the caller must not claim otherwise.

The head marker (`HEAD`, beside the segments): `seq` and chain hash of an acknowledged event,
rewritten atomically (temp file, fsync, rename, directory fsync) at a clean close, when the owner
asks (`mark_head`, e.g. after a snapshot) and after an fdatasync when the last marker is older
than `MARK_EVERY` seconds -- never an extra sync per command. Every open (read-only too) checks
it: a log that ends below the marker lost acknowledged events and refuses to open
(`LogTruncated`, naming the missing seqs); a log whose event at the marker's seq has another hash
was rewritten and refuses too. A cut above the marker cannot be told from a crash and is reported
as either.

Opening, and the trade it makes: an open reads the newest segment only (its header names the seq
and chain hash it starts from), recovers it as above and checks the marker; the sealed segments
before it were fdatasync'ed and then never written again, and are not read. A snapshot records
the position (segment, offset) where the frames after it start, so opening a data directory
reads the snapshot and that tail, whose hash chain `tail` checks from the stored bytes, and
nothing else: milliseconds instead of a pass over every segment's CRCs. What that gives up:
damage to a sealed segment (a bad sector, a deleted or edited file) is not noticed at open.
It is noticed by whoever reads it (every reader checks the checksums, the numbering and the
segment links of what it reads, and refuses with `LogCorrupted`, never stopping short
quietly: a replay without a snapshot reads everything), by `trustledger log verify` (the whole
chain), and by the scrub (`scrub`, `trustledger log scrub`, and a scheduled one on the engine
clock in the interactive shell), which checks every segment beside a writer. The head marker
also records where the head's frame starts: a writer's open after a clean close walks nothing
before it, and after a crash only the frames written since the marker (at most MARK_EVERY
seconds' worth); the newest segment's older frames are then checked like sealed ones.

One writer at a time: the writer holds an exclusive `flock` on `LOCK`; a second writer gets
`LogLocked`. Readers (`FileEventLog.open(..., readonly=True)`) take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import struct
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from events.codec import count_rows, decode_body, encode_body, encode_core, row_spans
from events.crc import crc32c
from events.durable import fsync_directory
from events.fdsync import Syncer
from events.runs import RUN_MAX, RowRuns, Run, merged
from events.store import (
    COLD_SHA256,
    GENESIS,
    PendingEvent,
    Recorded,
    chain_hash,
    seal_encoded,
    seal_one,
)

MAGIC = b"TLSEG\x00\x01\n"
SEG_HEADER = struct.Struct("<8sQ32s")
FRAME_HEADER = struct.Struct("<IQII")
_FRAME_PREFIX = struct.Struct("<IQI")  # the part of the frame header its own CRC covers
_CRC = struct.Struct("<I")
MAX_BODY = 64 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
GROUP_BUFFER = 1 << 20  # a group commit writes its frames out whenever this much waits
READ_BUFFER = 1 << 20
HEAD_FILE = "HEAD"  # the head marker
MARK_EVERY = 2.0  # seconds: under load the marker is at most this far behind the log
_MARKER_MAGIC = "trustledger-head v1"  # SEQ HASH CRC
_MARKER_MAGIC_2 = "trustledger-head v2"  # SEQ HASH SEGMENT OFFSET CRC


class LogError(Exception):
    """Base of the log's errors (operator-visible: the text says what and where).

    The store layer's own root (events/ imports nothing from engine/), with engine.errors'
    protocol: `text` never carries the IOS `%` marker; a `sentence` (an operator's refusal to
    open) renders as `% text`, any other error is a diagnostic the CLI prefixes with its name.
    """

    def __init__(self, text: str, *, sentence: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.sentence = sentence

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        return f"% {self.text}" if self.sentence else self.text


class LogLocked(LogError):
    """Another process holds the log open for writing."""


class LogWriteFailed(LogError):
    """A write or fdatasync of a batch failed: the batch is not in the log. `rolled_back`:
    the log was cut back to its last acknowledged frame and takes appends again; if False, the
    cut failed too and the log refuses appends until reopened (the batch may then reappear)."""

    def __init__(self, cause: BaseException, rolled_back: bool) -> None:
        # What the system said, as an operator reads it ("No space left on device").
        if isinstance(cause, OSError) and cause.strerror:
            self.reason = cause.strerror
        else:
            self.reason = str(cause) or type(cause).__name__
        super().__init__(f"event log write failed: {self.reason}")
        self.cause = cause
        self.rolled_back = rolled_back


class LogTruncated(LogError):
    """The log ends below the head marker: acknowledged events are missing."""

    def __init__(self, head: int, marked: int, marked_hash: bytes) -> None:
        missing = (f"event {marked} is" if marked == head + 1
                   else f"events {head + 1}-{marked} are")
        super().__init__(
            f"The event log ends at seq {head} but seq {marked} (hash "
            f"{marked_hash.hex()[:16]}\u2026) was acknowledged: {missing} missing. "
            "Refusing to open.", sentence=True)
        self.head, self.marked = head, marked


@dataclass(frozen=True)
class SyncTicket:
    """Frames written out and waiting for their fdatasync (`FileEventLog.start_sync`)."""

    fd: int  # a duplicate of the segment's descriptor, closed by finish_sync
    head: tuple[int, bytes]  # the last frame it covers: (seq, hash)
    head_at: tuple[Path | None, int] | None
    segment: Path | None
    size: int  # the segment's size once these frames are on disk


@dataclass(frozen=True)
class Repair:
    """What a torn tail costs: `cut` bytes at `offset` of `segment` (offset 0 and the whole
    file: an incomplete new segment, removed)."""

    segment: str
    offset: int
    cut: int
    remove: bool = False

    def __str__(self) -> str:
        return (f"cut {self.cut} bytes at segment {self.segment} offset {self.offset}: "
                "an incomplete last write (a crash) or a truncated file")


@dataclass(frozen=True)
class Damage:
    segment: str
    offset: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        at = f"seq {self.seq}, " if self.seq is not None else ""
        return f"{self.reason} ({at}segment {self.segment}, offset {self.offset})"


@dataclass(frozen=True)
class InterruptedAppend(Damage):
    """What `verify` finds when the newest segment ends inside a frame that the head marker
    does not cover: an append a crash interrupted before it was acknowledged, which the next
    open for writing cuts (`Repair`). Not damage to any acknowledged event: every one before
    it verified. `cut` bytes at `offset`; `seq` is unset."""

    cut: int = 0
    acknowledged: int = 0  # the events before it, all verified

    def __str__(self) -> str:
        n = self.acknowledged
        before = ("no event was acknowledged before it" if n == 0 else
                  "the acknowledged event before it verifies" if n == 1 else
                  f"all {n} acknowledged events before it verify")
        return (f"an interrupted append, never acknowledged ({self.cut} bytes at segment "
                f"{self.segment}, offset {self.offset}): the next open for writing cuts it; "
                f"{before}")


class LogCorrupted(LogError):
    """A frame that does not verify: an operator's refusal (`% ...`), saying where and what
    to do, as the scrub's %LOG-1-SCRUB_DAMAGED does; `damage` says it as data."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(f"The event log is damaged: {damage}. Run 'trustledger log verify' "
                         "and restore the log from a backup.", sentence=True)
        self.damage = damage


@dataclass(frozen=True)
class Frame:
    segment: Path
    offset: int
    first_seq: int
    body: bytes

    @property
    def end(self) -> int:
        return self.offset + FRAME_HEADER.size + len(self.body)


class _Torn(Exception):
    """Internal: the segment ends inside a frame (a write the crash cut short)."""

    def __init__(self, offset: int) -> None:
        self.offset = offset


def encode_frame(first_seq: int, records: Sequence[Recorded]) -> bytes:
    return _frame(first_seq, encode_body([[*r.core(), r.hash] for r in records]))


def _frame(first_seq: int, body: bytes) -> bytes:
    prefix = _FRAME_PREFIX.pack(len(body), first_seq, crc32c.crc32c(body))
    return prefix + _CRC.pack(crc32c.crc32c(prefix)) + body


def sealed_frame(p: PendingEvent, seq: int, prev: bytes,
                 sha256: Callable[[bytes], Any] = hashlib.sha256) -> tuple[Recorded, bytes]:
    """A one-event batch sealed (`events.store.seal_one`) and framed: `_frame` of
    `_body_from_cores`, byte for byte, built from the core's bytes (the append hot path, issue
    12's group commit). The body is the core's array grown from 8 elements (0x98) to 9 (0x99)
    by the hash, bin 8 of 32 bytes (0xc4 0x20), in an array of one row (0x91).
    `sha256`: which implementation hashes it (`COLD_SHA256`)."""
    rec, core = seal_one(p, seq, prev, sha256)
    body = b"".join((b"\x91\x99", core[1:], b"\xc4\x20", rec.hash))
    prefix = _FRAME_PREFIX.pack(len(body), seq, crc32c.crc32c(body))
    return rec, b"".join((prefix, _CRC.pack(crc32c.crc32c(prefix)), body))


def _body_from_cores(records: Sequence[Recorded], cores: Sequence[bytes]) -> bytes:
    """The msgpack body `[[*core, hash], ...]` spliced from already-encoded cores: each core
    is an 8-element array (fixarray 0x98); a row is the same array grown to 9 (0x99) with
    the hash appended as bin 8 of 32 bytes (0xc4 0x20). Byte for byte what `encode_body`
    would produce."""
    n = len(cores)
    if n == 1:  # one command, one event: the common frame
        return b"".join((b"\x91\x99", cores[0][1:], b"\xc4\x20", records[0].hash))
    if n < 16:
        parts = [bytes((0x90 | n,))]
    elif n < 1 << 16:
        parts = [b"\xdc" + n.to_bytes(2, "big")]
    else:
        parts = [b"\xdd" + n.to_bytes(4, "big")]
    for rec, core in zip(records, cores, strict=True):
        parts += (b"\x99", core[1:], b"\xc4\x20", rec.hash)
    return b"".join(parts)


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


def iter_frames(path: Path, start: int = SEG_HEADER.size) -> Iterator[Frame]:
    """Frames of one segment from byte `start`; raises `_Torn` or `LogCorrupted`."""
    for offset, first_seq, body in scan_frames(path, start):
        yield Frame(path, offset, first_seq, body)


def scan_frames(path: Path, start: int = SEG_HEADER.size) -> Iterator[tuple[int, int, bytes]]:
    """`(offset, first_seq, body)` of each frame of one segment from byte `start`, both CRCs
    checked; raises `_Torn` or `LogCorrupted`. This is the hot loop of every read and of
    recovery, so frames are cut out of large chunks rather than read one at a time."""
    unpack_header, header_size = FRAME_HEADER.unpack_from, FRAME_HEADER.size
    prefix_size, crc = _FRAME_PREFIX.size, crc32c.crc32c
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        buf, pos, base = b"", 0, start  # base: the file offset of buf[0]
        while True:
            if len(buf) - pos < header_size:
                buf, pos, base = _refill(f, buf, pos, base, header_size)
                if pos == len(buf):
                    return
                if len(buf) - pos < header_size:
                    raise _Torn(base + pos)
            length, first_seq, body_crc, header_crc = unpack_header(buf, pos)
            if crc(buf[pos:pos + prefix_size]) != header_crc:
                if not any(buf[pos:]) and _zero_to_eof(f):
                    raise _Torn(base + pos)  # size grew before the data reached the disk
                raise LogCorrupted(Damage(path.name, base + pos, None,
                                          "frame header checksum mismatch"))
            if length > MAX_BODY:
                raise LogCorrupted(Damage(path.name, base + pos, first_seq,
                                          "frame length out of range"))
            end = pos + header_size + length
            if end > len(buf):
                buf, pos, base = _refill(f, buf, pos, base, header_size + length)
                end = header_size + length
                if end > len(buf):
                    raise _Torn(base)
            body = buf[end - length:end]
            if crc(body) != body_crc:
                if end == len(buf) and _torn_page(body, base + end - length) and \
                        not f.read(1):
                    # The last frame of the file, ending in zeros from a sector boundary: its
                    # size reached the disk but its last pages did not (a crash before the
                    # fdatasync that would have acknowledged it).
                    raise _Torn(base + pos)
                raise LogCorrupted(Damage(path.name, base + pos, first_seq,
                                          "frame checksum mismatch"))
            yield base + pos, first_seq, body
            pos = end


SECTOR = 512


def _torn_page(body: bytes, body_offset: int) -> bool:
    """Does `body` end in zeros from a sector boundary of the file on? A whole frame never
    ends in 32 zero bytes (its last 32 bytes are a SHA-256), so such a run is a page that
    never reached the disk, not a flipped bit in an acknowledged frame."""
    stripped = len(body.rstrip(b"\x00"))
    if len(body) - stripped < 32:
        return False
    start = body_offset + stripped
    boundary = -(-start // SECTOR) * SECTOR  # the first sector boundary at or after it
    return boundary < body_offset + len(body)


def _refill(f: IO[bytes], buf: bytes, pos: int, base: int, need: int) -> tuple[bytes, int, int]:
    """Keep `buf[pos:]` and read on until it holds `need` bytes or the file ends."""
    rest = buf[pos:]
    parts = [rest]
    have = len(rest)
    while have < need:
        chunk = f.read(max(READ_BUFFER, need - have))
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts), 0, base + pos


def _zero_to_eof(f: IO[bytes]) -> bool:
    """Whether nothing but zeros follows: a zeroed header with data after it is damage
    inside the log, not a torn tail, and truncating there would drop acknowledged frames."""
    while chunk := f.read(READ_BUFFER):
        if any(chunk):
            return False
    return True


def read_segment_header(path: Path) -> tuple[int, bytes]:
    with open(path, "rb") as f:
        raw = f.read(SEG_HEADER.size)
    if len(raw) < SEG_HEADER.size:
        raise _Torn(0)
    magic, first_seq, prev = SEG_HEADER.unpack(raw)
    if magic != MAGIC:
        raise LogCorrupted(Damage(path.name, 0, None, "not a trustledger segment (bad magic)"))
    if _segment_name(first_seq) != path.name:
        raise LogCorrupted(Damage(path.name, 0, first_seq, "segment name and header disagree"))
    return first_seq, prev


def records_of(frame: Frame, prev: bytes) -> list[Recorded]:
    """Decode a frame into envelopes; `prev` is the hash of the event before the frame."""
    rows = _decode(frame.segment, frame.offset, frame.first_seq, frame.body)
    out: list[Recorded] = []
    for row in rows:
        seq, stream, typ, v, at, actor, corr, payload, h = row
        out.append(Recorded(seq, stream, typ, v, at, actor, corr, payload, prev, h, []))
        prev = h
    return out


class _Scan:
    """The walk of `FileEventLog._recover` over the newest segment only (see "Opening" in the
    module docstring): checksums and numbering (counting a frame's rows needs its msgpack
    array header, not a decode), starting from the seq and chain hash its header names; the
    last frame is decoded for the head hash, and the frame holding the marker's seq, if it is
    in this segment, for its hash."""

    def __init__(self, marked: int) -> None:
        self.marked = marked
        self.marked_hash: bytes | None = GENESIS if marked == 0 else None
        self.first, self.expect, self.prev, self.size = 1, 1, GENESIS, 0
        self.repair: tuple[Repair, Path] | None = None  # a torn tail, to cut after the checks
        self.frame: tuple[int, int, bytes] | None = None  # the head's frame

    def segment(self, seg: Path, *, last: bool, resume: int | None = None) -> bool:
        """Walk one segment; False if it is an incomplete last one (to be removed).
        `resume`: the offset of the frame the head marker names (its seq and hash): if that
        frame is there and ends with them, the walk starts after it."""
        try:
            first_seq, seg_prev = read_segment_header(seg)
        except _Torn:
            if not last:
                raise LogCorrupted(Damage(seg.name, 0, None,
                                          "segment header is incomplete")) from None
            self.repair = Repair(seg.name, 0, seg.stat().st_size, remove=True), seg
            return False
        self.first, self.expect, self.prev = first_seq, first_seq, seg_prev
        if self.marked == first_seq - 1:
            self.marked_hash = seg_prev
        self.size = SEG_HEADER.size
        last_frame: tuple[int, int, bytes] | None = None
        if resume is not None and self._resume(seg, resume):
            last_frame = self.frame
        try:
            for offset, frame_seq, body in scan_frames(seg, self.size):
                self._frame(seg, offset, frame_seq, body)
                last_frame = (offset, frame_seq, body)
        except _Torn as torn:
            if not last:
                raise LogCorrupted(Damage(seg.name, torn.offset, None,
                                          "incomplete frame inside the log")) from None
            self.repair = Repair(seg.name, torn.offset, seg.stat().st_size - torn.offset), seg
            self.size = torn.offset
        if last_frame is not None:
            self.prev = records_of(Frame(seg, *last_frame), self.prev)[-1].hash
            self.frame = last_frame
        return True

    def _resume(self, seg: Path, offset: int) -> bool:
        """Does the frame at `offset` end with the marker's seq? Then the walk goes on after
        it (the frames before it were acknowledged; readers and the scrub check them)."""
        try:
            offset, frame_seq, body = next(scan_frames(seg, offset))
            rows = _decode(seg, offset, frame_seq, body)
        except (_Torn, LogCorrupted, StopIteration):
            return False  # the full walk says what is wrong
        if rows[0][0] != frame_seq or rows[-1][0] != self.marked:
            return False
        self.prev = rows[-1][8]
        self.marked_hash = self.prev
        self.expect = self.marked + 1
        self.size = offset + FRAME_HEADER.size + len(body)
        self.frame = (offset, frame_seq, body)
        return True

    def _frame(self, seg: Path, offset: int, frame_seq: int, body: bytes) -> None:
        if frame_seq != self.expect:
            raise LogCorrupted(Damage(seg.name, offset, frame_seq, f"frame starts at seq "
                                      f"{frame_seq}, expected {self.expect}"))
        self.expect += _count_records(seg, offset, frame_seq, body)
        if frame_seq <= self.marked < self.expect:
            self.marked_hash = _decode(seg, offset, frame_seq, body)[self.marked - frame_seq][8]
        self.size = offset + FRAME_HEADER.size + len(body)


def _hash_in_sealed(segs: Sequence[Path], seq: int) -> bytes | None:
    """The chain hash of event `seq` in a sealed segment (the head marker lags the head by at
    most MARK_EVERY seconds, so this is rare and reads one segment at most); None if no
    segment holds it."""
    holder = [p for p in segs if int(p.stem) <= seq]
    if not holder:
        return None
    seg = holder[-1]
    try:
        for offset, first_seq, body in scan_frames(seg):
            n = _count_records(seg, offset, first_seq, body)
            if first_seq <= seq < first_seq + n:
                row: list[Any] = _decode(seg, offset, first_seq, body)[seq - first_seq]
                return bytes(row[8])
    except _Torn as torn:
        raise LogCorrupted(Damage(seg.name, torn.offset, None,
                                  "incomplete frame inside the log")) from None
    return None


class Position(NamedTuple):
    """A byte position in the log: `offset` in the segment whose first seq is `segment`.
    A snapshot records where the frames after it start, so an open reads only those."""

    segment: int
    offset: int


class TailMismatch(LogError):
    """The frames at a recorded position do not continue the (seq, hash) a snapshot names:
    the snapshot belongs to another log or to another version of this one."""


class FileEventLog:
    """Append-only, hash-chained, crash-safe event log in a directory."""

    def __init__(self, root: Path, readonly: bool, segment_bytes: int) -> None:
        self.root = root
        self.readonly = readonly
        self.segment_bytes = segment_bytes
        self.recovered: str | None = None  # what open() cut off, if anything (a Repair)
        self.repair_pending: str | None = None  # read-only: what a writer's open would cut
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._segment: Path | None = None
        self._segment_first = 0  # the seq _segment is named after (`position`, every commit)
        self._segment_size = 0
        self._head_seq = 0
        self._head_hash = GENESIS
        self._pending_sync = False  # appended inside a group, not yet fdatasync'd
        self._group_depth = 0
        self._unwritten: list[bytes] = []  # frames a group has not written out yet
        self._unwritten_bytes = 0
        self._broken: BaseException | None = None  # a write or sync failed: no more appends
        self._durable = (0, GENESIS)  # the head as of the last successful fdatasync
        self._durable_size = 0  # the current segment's size at that point
        self._marked = 0  # the seq the head marker holds
        # Where the head's frame starts (its segment, offset), if known: a plain tuple, made
        # on every append (the marker turns it into a Position when it is written).
        self._head_at: tuple[Path | None, int] | None = None
        self._durable_at: tuple[Path | None, int] | None = None
        self._marked_at = time.monotonic()
        # Called with the seq the marker is about to record, in the marker's step: what must
        # be durable with the marker writes itself here (engine/audit/trail.py).
        self.on_mark: Callable[[int], None] | None = None
        # Called while each fdatasync of appended frames runs in the kernel (events/fdsync.py;
        # or right before it): work that can be done while the writer waits for the disk
        # (the audit trail's signatures, engine/audit/signer.py). It must not use the log.
        self.while_syncing: Callable[[], None] | None = None
        self._syncer = Syncer()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, readonly: bool = False,
             segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> FileEventLog:
        log = cls(Path(root), readonly, segment_bytes)
        if not readonly:
            log.root.mkdir(parents=True, exist_ok=True)
            log._lock()
        try:
            log._recover()
        except BaseException:
            log.close()
            raise
        return log

    def _lock(self) -> None:
        fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogLocked(f"The event log {self.root} is open for writing by another "
                            "process (a running shell, exec, ca serve or audit witness serve).",
                            sentence=True) from None
        self._lock_fd = fd

    def segments(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.iterdir() if p.suffix == ".seg")

    def _recover(self) -> None:
        """Find the head in the newest segment; check it against the marker; cut a torn tail
        (writer only); refuse any other damage there. Nothing is modified before every check
        has passed. Sealed segments are not read (see "Opening" in the module docstring)."""
        full = _parse_marker(self.root)
        marker = full[:2] if full is not None else None
        scan = _Scan(marker[0] if marker is not None else 0)
        segs = self.segments()
        head_segment: Path | None = None
        at = full[2] if full is not None else None
        resume = at.offset if at is not None and segs and int(segs[-1].stem) == at.segment \
            else None
        if segs and scan.segment(segs[-1], last=True, resume=resume):
            head_segment = segs[-1]
        elif len(segs) > 1:  # the newest segment's header is incomplete: removed below
            torn = scan.repair
            scan.segment(segs[-2], last=False)
            scan.repair, head_segment = torn, segs[-2]
        if head_segment is not None:
            self._segment, self._segment_size = head_segment, scan.size
            self._segment_first = int(head_segment.stem)
            if scan.frame is not None:
                self._head_at = (head_segment, scan.frame[0])
        self._durable_at = self._head_at
        self._head_seq, self._head_hash = scan.expect - 1, scan.prev
        if marker is not None:
            found = scan.marked_hash
            if found is None and marker[0] < scan.first:
                found = _hash_in_sealed(segs, marker[0])
            _check_marker(self._head_seq, marker, found)
        self._durable, self._marked = (self._head_seq, self._head_hash), scan.marked
        if scan.repair is not None:
            self._repair(*scan.repair)
        self._durable_size = self._segment_size
        if not self.readonly:
            if self._segment is not None:
                self._fd = os.open(self._segment, os.O_WRONLY | os.O_APPEND)
            with contextlib.suppress(FileNotFoundError):  # a marker write cut short
                (self.root / (HEAD_FILE + ".tmp")).unlink()

    def _repair(self, repair: Repair, seg: Path) -> None:
        if self.readonly:
            self.repair_pending = str(repair)
            return
        if repair.remove:
            seg.unlink()
        else:
            with open(seg, "r+b") as f:
                f.truncate(repair.offset)
                os.fsync(f.fileno())
        fsync_directory(self.root)
        self.recovered = str(repair)

    def notice(self) -> str | None:
        """The one line an operator must see about this open's repair, if there is one."""
        if self.recovered:
            return f"%LOG-4-RECOVERED: {self.recovered}"
        if self.repair_pending:
            return (f"%LOG-4-REPAIR_PENDING: opened read-only, the log was not changed; the "
                    f"next open for writing will {self.repair_pending}")
        return None

    # -- the port ---------------------------------------------------------------------------

    @property
    def head(self) -> tuple[int, bytes]:
        return self._head_seq, self._head_hash

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]:
        """Append one command's events as one frame; durable when this returns (unless inside
        `group_commit()`, where the block's end is the acknowledgement)."""
        if self.readonly:
            raise LogError("event log is open read-only")
        if self._broken is not None:
            raise LogWriteFailed(self._broken, False)
        if len(batch) == 1:  # one command, one event: the common frame, in one pass
            last, frame = sealed_frame(batch[0], self._head_seq + 1, self._head_hash,
                                       hashlib.sha256 if self._group_depth else COLD_SHA256)
            records = [last]
        elif batch:
            records, cores = seal_encoded(batch, self._head_seq + 1, self._head_hash)
            frame = _frame(records[0].seq, _body_from_cores(records, cores))
            last = records[-1]
        else:
            return []
        size, at = len(frame), self._segment_size
        if self._fd is None or (at > SEG_HEADER.size and at + size > self.segment_bytes):
            self._rotate()  # a segment holding no frame yet takes any frame
            at = self._segment_size
        self._unwritten.append(frame)
        self._unwritten_bytes += size
        self._head_at = (self._segment, at)
        self._segment_size = at + size
        self._head_seq, self._head_hash = last.seq, last.hash
        if self._group_depth:
            # Inside a group, frames wait in memory and go out in one write: nothing is
            # acknowledged before the block ends anyway.
            self._pending_sync = True
            if self._unwritten_bytes >= GROUP_BUFFER:
                self._guarded(self._write_out)
        else:
            self._guarded(self._sync)
        return records

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run a write step; if it fails, forget everything not acknowledged (see the module
        docstring) and raise LogWriteFailed. A KeyboardInterrupt or the like is let through
        after the same roll back, which then also breaks the log: it may have struck between a
        write and its bookkeeping."""
        try:
            step()
        except BaseException as e:
            rolled_back = self._roll_back(e)
            if not isinstance(e, Exception):
                raise
            raise LogWriteFailed(e, rolled_back) from e

    def _roll_back(self, cause: BaseException) -> bool:
        """Back to the last acknowledged frame, in memory and on disk. False: it could not be
        cut back on disk, and the log refuses appends until reopened."""
        self._unwritten.clear()
        self._unwritten_bytes = 0
        self._pending_sync = False
        self._head_seq, self._head_hash = self._durable
        self._head_at = self._durable_at
        self._segment_size = self._durable_size
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._durable_size)
                os.fsync(self._fd)
            except OSError as e:
                self._broken = e
                return False
        if not isinstance(cause, Exception):
            self._broken = cause
            return False
        return True

    @contextlib.contextmanager
    def group_commit(self) -> Iterator[None]:
        """Bulk writers: every append inside the block is made durable by one fdatasync at its
        end. Nothing appended inside is acknowledged before the block exits normally."""
        self._group_depth += 1
        try:
            yield
        finally:
            self._group_depth -= 1
            if not self._group_depth and self._pending_sync and self._fd is not None:
                self._guarded(self._sync)

    def _write_out(self) -> None:
        """Write the frames waiting in memory, in one write."""
        if not self._unwritten:
            return
        data = b"".join(self._unwritten) if len(self._unwritten) > 1 else self._unwritten[0]
        self._unwritten.clear()
        self._unwritten_bytes = 0
        assert self._fd is not None
        _write_all(self._fd, data)

    def _sync(self) -> None:
        """Write what waits, then fdatasync: the acknowledgement point. Callers run it
        `_guarded`: a failure cuts the log back to the previous acknowledgement point."""
        self._write_out()
        assert self._fd is not None
        self._syncer.fdatasync(self._fd, self.while_syncing)
        self._pending_sync = False
        self._durable = self._head_seq, self._head_hash
        self._durable_at = self._head_at
        self._durable_size = self._segment_size
        if time.monotonic() - self._marked_at >= MARK_EVERY:
            self.mark_head()

    def start_sync(self) -> SyncTicket | None:
        """The first half of an acknowledgement whose fdatasync runs without the writer's
        lock (group commit: appends go on meanwhile). Call under the lock, inside a
        `group_commit()` block: writes out what waits and returns a ticket to fdatasync
        (`ticket.fd`, a duplicate descriptor of the segment), then hand it to `finish_sync`
        under the lock again. None when nothing waits for a sync."""
        if self.readonly or self._fd is None or not self._pending_sync:
            return None
        self._guarded(self._write_out)
        self._pending_sync = False  # appends from now on need the next sync
        return SyncTicket(os.dup(self._fd), (self._head_seq, self._head_hash), self._head_at,
                          self._segment, self._segment_size)

    def sync_ticket(self, ticket: SyncTicket) -> None:
        """The fdatasync of a ticket (without the lock), `while_syncing` run meanwhile;
        OSError if it failed (hand it to `finish_sync`)."""
        self._syncer.fdatasync(ticket.fd, self.while_syncing)

    def finish_sync(self, ticket: SyncTicket, error: OSError | None) -> None:
        """The second half (under the lock): the frames up to `ticket.head` are acknowledged,
        or, if the fdatasync failed, everything not acknowledged before is forgotten as for
        any failed sync (see the module docstring) and LogWriteFailed is raised."""
        os.close(ticket.fd)
        if error is not None:
            raise LogWriteFailed(error, self._roll_back(error)) from error
        if ticket.head[0] > self._durable[0]:  # a rotation may have synced further meanwhile
            self._durable, self._durable_at = ticket.head, ticket.head_at
            if ticket.segment == self._segment:
                self._durable_size = max(self._durable_size, ticket.size)
        if time.monotonic() - self._marked_at >= MARK_EVERY:
            self.mark_head()

    def _rotate(self) -> None:
        if self._fd is not None:
            self._guarded(self._sync)
            os.close(self._fd)
            self._fd = None
        first = self._head_seq + 1
        path = self.root / _segment_name(first)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except OSError as e:
            raise LogWriteFailed(e, True) from e
        try:
            _write_all(fd, SEG_HEADER.pack(MAGIC, first, self._head_hash))
            os.fsync(fd)
            fsync_directory(self.root)
        except OSError as e:
            os.close(fd)
            raise LogWriteFailed(e, self._discard_segment(path)) from e
        self._fd, self._segment, self._segment_size = fd, path, SEG_HEADER.size
        self._segment_first = first
        self._durable_size = SEG_HEADER.size

    def _discard_segment(self, path: Path) -> bool:
        """Remove a new segment whose header could not be made durable (it holds no event);
        the next append creates it again. False (and no more appends) if it cannot be."""
        try:
            path.unlink()
            fsync_directory(self.root)
        except OSError as e:
            self._broken = e
            return False
        return True

    def mark_head(self) -> None:
        """Record the acknowledged head in the marker (see the module docstring). A marker
        that cannot be written leaves the previous one, which is still true (only older)."""
        if self.readonly or self._lock_fd is None:
            return
        self._marked_at = time.monotonic()
        seq, hash_ = self._durable
        if seq == self._marked:
            return
        if self.on_mark is not None:
            self.on_mark(seq)
        try:
            at = self._durable_at
            write_marker(self.root, seq, hash_, None if at is None or at[0] is None
                         else Position(int(at[0].stem), at[1]))
        except OSError:
            return
        self._marked = seq

    @property
    def position(self) -> Position | None:
        """Where the frames after the head will start (None: no segment yet)."""
        if self._segment is None:
            return None
        return Position(self._segment_first, self._segment_size)

    def read(self, from_seq: int = 1) -> Iterator[Recorded]:
        """Stream events with seq >= from_seq, up to the head as of the first step."""
        head = self._head_seq
        self._write_out()  # what a group commit holds back is part of the head
        segs = self._segments_from(from_seq)
        if not segs:
            return
        try:
            _, prev = read_segment_header(segs[0])
        except _Torn:
            return
        for seg, offset, first_seq, body in self._frames(segs, SEG_HEADER.size, None, head):
            if first_seq < from_seq - 1 and \
                    first_seq + _count_records(seg, offset, first_seq, body) < from_seq:
                continue  # wholly before from_seq - 1, whose hash is the first prev
            for row in _decode(seg, offset, first_seq, body):
                seq, stream, typ, v, at, actor, corr, payload, h = row
                if seq >= from_seq:
                    yield Recorded(seq, stream, typ, v, at, actor, corr, payload, prev, h, [])
                prev = h

    def read_rows(self, from_seq: int = 1, *, typed: bool = False) -> Iterator[Row]:
        """The raw rows `[seq, stream, type, v, at, actor, correlation, payload, hash]`, for
        replay loops that must not pay for an envelope object per event. Arrays inside a
        payload are tuples, as `events.registry.event_from` expects them. `typed`: each
        row's payload is its event instead, decoded straight from the stored bytes
        (`events.typed`; what `engine.state.replay_rows` folds; such rows are tuples).
        Every check `_frames` makes is made, in one loop (`_read_frames`): a full replay
        reads every event through it. Typed rows come as `RowRuns` (events.runs): rows, which
        replay may take as runs of one type instead."""
        head = self._head_seq
        self._write_out()
        segs = self._segments_from(from_seq)
        if typed:
            return RowRuns(_read_frames(segs, head, from_seq, _decoder(True), RUN_MAX))
        return _rows_of(_read_frames(segs, head, from_seq, _decoder(False)))

    def _frames(self, segs: Sequence[Path], start: int, expect: int | None,
                head: int) -> Iterator[tuple[Path, int, int, bytes]]:
        """`(segment, offset, first_seq, body)` of every frame from byte `start` of `segs[0]`
        up to `head`, checksums and numbering checked across segments (sealed segments are
        checked here, by whoever reads them, not at open). `expect`: the seq the first frame
        must start at (None: the first segment's header says). A frame cut short anywhere but
        after the head, or a gap, raises LogCorrupted: a reader never stops short quietly."""
        last: tuple[Path, int, int, bytes] | None = None  # the frame before, for its hash
        for i, seg in enumerate(segs):
            try:
                seg_first, seg_prev = read_segment_header(seg)
            except _Torn:
                if int(seg.stem) > head:
                    return  # an incomplete new segment a writer's open will remove
                raise LogCorrupted(Damage(seg.name, 0, None,
                                          "segment header is incomplete")) from None
            if seg_first > head:
                return
            if expect is None:
                expect = seg_first
            elif i and seg_first != expect:
                raise LogCorrupted(Damage(seg.name, 0, seg_first, f"segment starts at seq "
                                          f"{seg_first}, expected {expect}"))
            if (seg_first == 1 and seg_prev != GENESIS) or (
                    last is not None and _decode(*last)[-1][8] != seg_prev):
                raise LogCorrupted(Damage(seg.name, 0, seg_first,
                                          "segment prev hash breaks the chain"))
            try:
                for offset, first_seq, body in scan_frames(seg, start if not i else
                                                           SEG_HEADER.size):
                    if first_seq > head:
                        return
                    if first_seq != expect:
                        raise LogCorrupted(Damage(seg.name, offset, first_seq, f"frame starts "
                                                  f"at seq {first_seq}, expected {expect}"))
                    expect += _count_records(seg, offset, first_seq, body)
                    yield seg, offset, first_seq, body
                    last = (seg, offset, first_seq, body)
            except _Torn as torn:
                if expect > head:
                    return  # a torn tail after the head (a read-only open's pending repair)
                raise LogCorrupted(Damage(seg.name, torn.offset, None,
                                          "incomplete frame inside the log")) from None
        if expect is not None and expect <= head:
            where = segs[-1].name if segs else "-"
            raise LogCorrupted(Damage(where, 0, expect, f"the log ends before seq {expect} "
                                      f"(its head is {head})"))

    def tail(self, at: Position, seq: int, chain: bytes, *,
             typed: bool = False) -> Iterator[Row]:
        """The rows after event `seq` (chain hash `chain`) whose frames start at `at`, as
        `read_rows` gives them (`typed` likewise), each row's chain hash checked from its
        stored bytes. The
        first frame is checked before this returns: TailMismatch if the log does not continue
        `seq` there (the caller replays from the start instead); damage further on raises
        LogCorrupted while reading."""
        head = self._head_seq
        self._write_out()
        if seq > head:
            raise TailMismatch(f"it covers seq {seq}, but the log ends at seq {head}")
        if seq == head:
            if chain != self._head_hash:
                raise TailMismatch(f"it covers seq {seq} of another log (the chain hash "
                                   "differs)")
            return iter(())
        segs = [p for p in self.segments() if int(p.stem) >= at.segment]
        if not segs or int(segs[0].stem) != at.segment:
            raise TailMismatch(f"its position (segment {at.segment}) is not in the log")
        if not SEG_HEADER.size <= at.offset <= segs[0].stat().st_size:
            raise TailMismatch(f"the log has no frame of seq {seq + 1} where it says")
        frames = self._frames(segs, at.offset, seq + 1, head)
        try:
            first = next(frames)
        except (LogCorrupted, StopIteration):
            raise TailMismatch(f"the log has no frame of seq {seq + 1} where it says") from None
        prev = _chain_rows(first, chain)
        if prev is None:
            raise TailMismatch(f"it covers seq {seq} of another log (the chain hash differs)")
        checked = _checked_tail(first, frames, prev, _decoder(typed))
        return RowRuns(merged(checked)) if typed else _rows_of(checked)

    def refresh(self) -> None:
        """Nothing to learn: the writer holds the lock, so no other process appends."""

    @contextlib.contextmanager
    def reader(self) -> Iterator[FileEventLog]:
        """A read-only log of the same directory, for a reader on another thread (the
        witnesses' cosigner): engine/devicelog.py's `DeviceLog.reader`."""
        with FileEventLog.open(self.root, readonly=True) as log:
            yield log

    def _segments_from(self, from_seq: int) -> list[Path]:
        """The segments that can hold seq >= from_seq (names are their first seqs)."""
        segs = self.segments()
        start = 0
        for i, p in enumerate(segs):
            if int(p.stem) <= from_seq:
                start = i
        return segs[start:]

    def close(self) -> None:
        try:
            if self._fd is not None and self._broken is None and self._pending_sync:
                self._guarded(self._sync)
            if self._broken is None:
                self.mark_head()
        finally:
            self._syncer.close()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> FileEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Row = Sequence[Any]
"""A stored row `[seq, stream, type, v, at, actor, correlation, payload, hash]` (a list, or a
tuple with the payload decoded into its event: `events.typed`)."""
Fast = tuple[str, Callable[[bytes], list[Row]]]
"""A type name and a decoder of frames of rows of that type alone (one msgspec call), which
raises ValueError for any other frame: what a `Decode` proposes to try on the next frame."""
Decode = Callable[[bytes], tuple[str, Sequence[Row], Fast | None]]
"""A frame body's rows, the type name they all hold ("" if they differ, or if not typed),
and a decoder to try first on the next frame (None: this one again); ValueError or
TypeError if the body is not a batch of whole rows."""


def _rows_of(frames: Iterable[Run]) -> Iterator[Row]:
    for _, rows in frames:
        yield from rows
        del rows  # not alive beside the next frame's


def _checked_tail(first: tuple[Path, int, int, bytes],
                  frames: Iterator[tuple[Path, int, int, bytes]],
                  prev: bytes, decode: Decode) -> Iterator[Run]:
    """The decoded rows of `first` and then of `frames`, each frame's hash chain checked
    from its stored bytes (`first`'s was, by `tail`)."""
    yield _decoded(decode, *first)
    for frame in frames:
        after = _chain_rows(frame, prev)
        if after is None:
            seg, offset, first_seq, _ = frame
            raise LogCorrupted(Damage(seg.name, offset, first_seq, "hash chain broken"))
        prev = after
        yield _decoded(decode, *frame)


def _read_frames(segs: Sequence[Path], head: int, from_seq: int, decode: Decode,
                 gather: int = 1) -> Iterator[Run]:
    """The rows with seq >= from_seq of every frame of `segs` up to `head`, in runs: the rows
    of consecutive frames of one type name, yielded as soon as at least `gather` rows are
    gathered (1: frame by frame). `_frames` and `scan_frames` as one loop per segment
    (`_segment_runs`), the hot path of a full replay. The checks are theirs: both CRCs of
    every frame, the numbering across frames and segments, the segment links of the chain."""
    at = _Reading(decode, gather)
    for seg in segs:
        start = _segment_start(seg, at.expect, at.last, head)
        if start is None:
            break
        at.expect = start
        if (yield from _segment_runs(seg, head, from_seq, at)):
            break  # the head was reached before the segment's end
    else:
        _reached_head(segs, at.expect, head)
    if at.run:
        yield at.name, at.run


class _Reading:
    """What `_read_frames` carries from one segment to the next: the seq the next frame must
    start at, the last frame read (the next segment's header names its last hash), the run
    being gathered, and the decoder to try first (`Decode`)."""

    __slots__ = ("decode", "expect", "fast", "gather", "last", "name", "run")

    def __init__(self, decode: Decode, gather: int) -> None:
        self.decode, self.gather = decode, gather
        self.expect: int | None = None
        self.last: tuple[Path, int, int, bytes] | None = None
        self.name, self.run = "", list[Row]()
        self.fast: Fast | None = None  # (type name, decoder) the last frame proposed


def _segment_runs(seg: Path, head: int, from_seq: int,  # noqa: PLR0915 - one loop: a
                  at: _Reading) -> Generator[Run, None, bool]:  # helper is a call an event
    """The runs of one segment's frames (see `_read_frames`); True if it stopped at the head
    before the segment's end. A frame is decoded first by the decoder the frame before
    proposed (one C call: msgspec, for a run of one type), else by `decode`. Anything that
    fails a check is handed to `scan_frames` from that frame (`_why`), which names it
    exactly as every reader does."""
    unpack, crc = FRAME_HEADER.unpack_from, crc32c.crc32c
    header_size, prefix_size = FRAME_HEADER.size, _FRAME_PREFIX.size
    max_body, batch_of_one = MAX_BODY, _BATCH_OF_ONE
    decode, gather, fast = at.decode, at.gather, at.fast
    expect, name, run = at.expect or 0, at.name, at.run
    at.run = []  # `run` grows in place: not kept alive here beside the frames after it
    frame_name, fast_name = "", ""
    rows: Sequence[Row] = ()
    offset = first_seq = 0
    body = b""
    if fast is not None:
        fast_name, fast_decode = fast
    with open(seg, "rb", buffering=0) as f:
        f.seek(SEG_HEADER.size)
        buf, pos, base = b"", 0, SEG_HEADER.size  # base: the file offset of buf[0]
        size = 0  # len(buf)
        try:
            while True:
                if size - pos < header_size:
                    buf, pos, base = _refill(f, buf, pos, base, header_size)
                    size = len(buf)
                    if pos == size:
                        break  # the end of the segment
                    if size - pos < header_size:
                        raise _why(seg, base + pos)
                length, first_seq, body_crc, header_crc = unpack(buf, pos)
                if length > max_body or crc(buf[pos:pos + prefix_size]) != header_crc:
                    raise _why(seg, base + pos)
                end = pos + header_size + length
                if end > size:
                    buf, pos, base = _refill(f, buf, pos, base, header_size + length)
                    size, end = len(buf), header_size + length
                    if end > size:
                        raise _why(seg, base + pos)
                body = buf[end - length:end]
                if crc(body) != body_crc:
                    raise _why(seg, base + pos)
                if first_seq > head:
                    return True
                offset, pos = base + pos, end
                if first_seq != expect:
                    raise LogCorrupted(Damage(seg.name, offset, first_seq, f"frame starts "
                                              f"at seq {first_seq}, expected {expect}"))
                if first_seq < from_seq:
                    n, (frame_name, rows) = _rows_from((seg, offset, first_seq, body),
                                                       from_seq, decode)
                else:
                    if body[0] != batch_of_one:  # not the common frame: count first
                        _count_records(seg, offset, first_seq, body)
                    if fast is not None:
                        try:
                            rows = fast_decode(body)
                            frame_name = fast_name
                        except ValueError:  # not a frame of that type: `decode` decides
                            fast = None
                    if fast is None:
                        try:
                            frame_name, rows, fast = decode(body)
                        except (ValueError, TypeError) as e:
                            raise _body_damage(seg, offset, first_seq, e) from e
                        if fast is not None:
                            fast_name, fast_decode = fast
                    n = len(rows)
                expect += n
                if frame_name != name and run:
                    yield name, run
                    run = []
                name = frame_name
                run += rows
                del rows
                if len(run) >= gather:
                    yield name, run
                    run = []  # not alive beside the next frame's (a 1000-event batch)
        except _Torn as torn:
            if expect <= head:
                raise LogCorrupted(Damage(seg.name, torn.offset, None,
                                          "incomplete frame inside the log")) from None
            return True  # a torn tail after the head (a read-only open's pending repair)
        finally:
            at.expect, at.name, at.run, at.fast = expect, name, run, fast
    if offset:  # the segment's last frame
        at.last = (seg, offset, first_seq, body)
    return False


def _reached_head(segs: Sequence[Path], expect: int | None, head: int) -> None:
    """LogCorrupted if the segments ended before the head (`expect`: the next seq)."""
    if expect is not None and expect <= head:
        where = segs[-1].name if segs else "-"
        raise LogCorrupted(Damage(where, 0, expect, f"the log ends before seq {expect} "
                                  f"(its head is {head})"))


def _rows_from(frame: tuple[Path, int, int, bytes], from_seq: int,
               decode: Decode) -> tuple[int, Run]:
    """How many rows a frame starting before `from_seq` holds, and those from `from_seq` on
    (decoded only if there are any)."""
    n = _count_records(*frame)
    if frame[2] + n <= from_seq:
        return n, ("", [])
    name, rows = _decoded(decode, *frame)
    return n, (name, [row for row in rows if row[0] >= from_seq])


def _segment_start(seg: Path, expect: int | None, last: tuple[Path, int, int, bytes] | None,
                   head: int) -> int | None:
    """The seq segment `seg` starts at, its header checked against the segment before (whose
    last frame is `last`, and whose rows end before `expect`); None if it starts after the
    head (a reader stops there)."""
    try:
        seg_first, seg_prev = read_segment_header(seg)
    except _Torn:
        if int(seg.stem) > head:
            return None  # an incomplete new segment a writer's open will remove
        raise LogCorrupted(Damage(seg.name, 0, None, "segment header is incomplete")) from None
    if seg_first > head:
        return None
    if expect is not None and seg_first != expect:
        raise LogCorrupted(Damage(seg.name, 0, seg_first, f"segment starts at seq "
                                  f"{seg_first}, expected {expect}"))
    if (seg_first == 1 and seg_prev != GENESIS) or (
            last is not None and _decode(*last)[-1][8] != seg_prev):
        raise LogCorrupted(Damage(seg.name, 0, seg_first, "segment prev hash breaks the chain"))
    return seg_first


def _why(seg: Path, offset: int) -> Exception:
    """What is wrong with the frame at `offset`, as `scan_frames` names it (_Torn or
    LogCorrupted): the fast loop's checks found something, and the careful loop says what."""
    try:
        next(scan_frames(seg, offset), None)
    except (_Torn, LogCorrupted) as e:
        return e
    return LogCorrupted(Damage(seg.name, offset, None, "the frame changed while it was read"))


def _count_records(seg: Path, offset: int, first_seq: int, body: bytes) -> int:
    try:
        n = count_rows(body)
    except ValueError as e:
        raise LogCorrupted(Damage(seg.name, offset, first_seq,
                                  f"undecodable frame body: {e}")) from e
    if n == 0:
        raise LogCorrupted(Damage(seg.name, offset, first_seq, "an empty batch"))
    return n


ROW_FIELDS = 9  # seq, stream, type, v, at, actor, correlation, payload, hash


_BATCH_OF_ONE = 0x91  # a frame body that is an array of one row (msgpack fixarray 1)


class _NotRows(ValueError):
    """A frame body that decodes but is not a batch of whole rows: named as it is."""


def _plain_rows(body: bytes) -> tuple[str, list[list[Any]], None]:
    """A frame's rows as stored (a Decode). ValueError or TypeError if the body does not
    decode; _NotRows if it decodes but is not a batch of whole rows (never written by us:
    crafted, or damaged with checksums recomputed)."""
    rows = decode_body(body)
    if len(rows) == 1:
        if len(rows[0]) != ROW_FIELDS:  # the common frame: one command, one event
            raise _NotRows("frame body is not a batch of whole event rows")
    elif not rows or any(len(row) != ROW_FIELDS for row in rows):
        raise _NotRows("frame body is not a batch of whole event rows")
    return "", rows, None


def _body_damage(seg: Path, offset: int, first_seq: int, e: Exception) -> LogCorrupted:
    """A frame body a Decode refused, as damage named like any other."""
    text = str(e) if isinstance(e, _NotRows) else f"undecodable frame body: {e}"
    return LogCorrupted(Damage(seg.name, offset, first_seq, text))


def _decoded(decode: Decode, seg: Path, offset: int, first_seq: int, body: bytes) -> Run:
    """`decode(body)`, with a body it refuses raised as LogCorrupted naming the frame."""
    try:
        name, rows, _ = decode(body)
    except (ValueError, TypeError) as e:
        raise _body_damage(seg, offset, first_seq, e) from e
    return name, rows


def _decode(seg: Path, offset: int, first_seq: int, body: bytes) -> list[list[Any]]:
    """A frame's rows as stored; a frame whose body is not a batch of whole rows is damage,
    named like any other."""
    try:
        return _plain_rows(body)[1]
    except (ValueError, TypeError) as e:
        raise _body_damage(seg, offset, first_seq, e) from e


def _decoder(typed: bool) -> Decode:
    """`_plain_rows`, or with `typed` the rows with each payload decoded into its event
    (`events.typed`, imported here: only the readers that need msgspec load it)."""
    if not typed:
        return _plain_rows
    import events.typed

    return events.typed.decode_frame


_ROW = 0x99  # a stored row: a 9-element array, `[*core, hash]`
_HASH_TAG = b"\xc4\x20"  # bin 8 of 32 bytes: the row's last element
_CORE = b"\x98"  # the core: the same array with 8 elements


def _chain_rows(frame: tuple[Path, int, int, bytes], prev: bytes) -> bytes | None:
    """The chain hash after the rows of `frame` if each row's hash is SHA-256(prev + its core)
    computed from the stored bytes (no decode, no re-encode), else None. A row is stored as
    `0x99 core-elements 0xc4 0x20 hash`, and its core was hashed as `0x98 core-elements`."""
    sha256 = hashlib.sha256
    try:
        rows = row_spans(frame[3])
    except Exception:
        return None
    for row in rows:
        if len(row) < 36 or row[0] != _ROW or row[-34:-32] != _HASH_TAG:
            return None
        h = sha256(prev + _CORE + row[1:-34]).digest()
        if h != row[-32:]:
            return None
        prev = h
    return prev


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]



# -- the head marker -------------------------------------------------------------------------


def write_marker(root: Path, seq: int, hash_: bytes, at: Position | None = None) -> None:
    """`HEAD` := "trustledger-head v2 SEQ HASH SEGMENT OFFSET CRC" (v1 without SEGMENT OFFSET
    when the position is not known), atomically and durably. SEGMENT OFFSET: where the frame
    ending with SEQ starts, so an open walks only what follows it."""
    line = f"{_MARKER_MAGIC} {seq} {hash_.hex()}"
    if at is not None:
        line = f"{_MARKER_MAGIC_2} {seq} {hash_.hex()} {at.segment} {at.offset}"
    data = f"{line} {crc32c.crc32c(line.encode()):08x}\n".encode()
    tmp = root / (HEAD_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, root / HEAD_FILE)
    fsync_directory(root)


def read_marker(root: Path) -> tuple[int, bytes] | None:
    """The marker's (seq, hash), None if there is none; LogError if it is unreadable."""
    full = _parse_marker(root)
    return None if full is None else full[:2]


def _parse_marker(root: Path) -> tuple[int, bytes, Position | None] | None:
    path = root / HEAD_FILE
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    parts = raw.decode("ascii", "replace").split()
    try:
        magic = " ".join(parts[:2])
        if (len(parts), magic) not in ((5, _MARKER_MAGIC), (7, _MARKER_MAGIC_2)):
            raise ValueError("not a head marker")
        line = " ".join(parts[:-1])
        if int(parts[-1], 16) != crc32c.crc32c(line.encode()):
            raise ValueError("checksum mismatch")
        seq, hash_ = int(parts[2]), bytes.fromhex(parts[3])
        at = Position(int(parts[4]), int(parts[5])) if len(parts) == 7 else None
        if seq < 1 or len(hash_) != 32:
            raise ValueError("out of range")
    except ValueError as e:
        raise LogError(f"The event log's head marker {path} is damaged ({e}): the log "
                       "cannot be checked against what was acknowledged. Refusing to open "
                       "(remove the marker to open the log unchecked).", sentence=True) from None
    return seq, hash_, at


def _check_marker(head: int, marker: tuple[int, bytes], found: bytes | None) -> None:
    seq, hash_ = marker
    if head < seq:
        raise LogTruncated(head, seq, hash_)
    if found != hash_:
        raise LogError(f"The event log's seq {seq} does not have the hash "
                       f"{hash_.hex()[:16]}\u2026 that was acknowledged: the log was "
                       "replaced or rewritten. Refusing to open.", sentence=True)


# -- audit -----------------------------------------------------------------------------------


_TORN_TAIL = "incomplete frame (torn tail)"  # scrub passes over one at the newest segment's end


@dataclass(frozen=True)
class VerifyReport:
    events: int
    head_seq: int
    head_hash: bytes
    damage: Damage | None


def verify(root: str | os.PathLike[str]) -> VerifyReport:
    """Walk every frame and the whole hash chain; report the first damage found. Each row's
    hash is checked over its stored bytes (`_verified_frame`); a frame that fails that is
    walked again the careful way (decode, re-encode) to name its first problem. A crash's
    torn tail that opening would cut is reported as an `InterruptedAppend`."""
    log = FileEventLog(Path(root), True, DEFAULT_SEGMENT_BYTES)
    segs = log.segments()
    report = _walk(segs, GENESIS, 1)
    torn = report.damage
    if torn is not None and torn.reason == _TORN_TAIL and torn.segment == segs[-1].name:
        return VerifyReport(report.events, report.head_seq, report.head_hash,
                            _interrupted(log, torn, segs[-1], report.head_seq))
    if report.damage is not None:
        return report
    return VerifyReport(report.events, report.head_seq, report.head_hash,
                        _marker_damage(log, report.head_seq))


def _interrupted(log: FileEventLog, torn: Damage, seg: Path, head: int) -> Damage:
    """A chain that ends inside the newest segment's last frame: an `InterruptedAppend` if
    opening agrees (the head marker is within the whole frames, and the repair it would make
    is exactly this cut); else what opening says (acknowledged events lost), or `torn`."""
    cut = seg.stat().st_size - torn.offset
    try:
        with FileEventLog.open(log.root, readonly=True) as opened:
            pending = opened.repair_pending
    except LogError as e:
        return Damage(torn.segment, torn.offset, head + 1, e.text)
    if pending != str(Repair(torn.segment, torn.offset, cut)):
        return torn
    return InterruptedAppend(torn.segment, torn.offset, None, _TORN_TAIL, cut, head)


def _walk(segs: Sequence[Path], prev: bytes, expect: int) -> VerifyReport:
    """Check `segs` in order: headers, checksums, numbering and chain from (`prev`, seq
    `expect`) on."""
    for seg in segs:
        try:
            first_seq, seg_prev = read_segment_header(seg)
            if first_seq != expect or seg_prev != prev:
                return VerifyReport(expect - 1, expect - 1, prev,
                                    Damage(seg.name, 0, first_seq, "segment breaks the chain"))
            with open(seg, "rb") as f:
                data = f.read()
            start, prev, expect = _fast_walk(data, prev, expect)
            if start < len(data):  # something to look at closely: name it
                prev, expect = _careful_walk(seg, start, prev, expect)
        except _Torn as torn:
            return VerifyReport(expect - 1, expect - 1, prev,
                                Damage(seg.name, torn.offset, None, _TORN_TAIL))
        except _Damaged as bad:
            return VerifyReport(bad.expect - 1, bad.expect - 1, bad.prev, bad.damage)
        except LogCorrupted as bad:
            return VerifyReport(expect - 1, expect - 1, prev, bad.damage)
    return VerifyReport(expect - 1, expect - 1, prev, None)


def _fast_walk(data: bytes, prev: bytes, expect: int) -> tuple[int, bytes, int]:
    """The hot loop of `verify` over one segment's bytes: each frame's checksums, its seq,
    and each row's hash over its stored bytes, with no decode and no re-encode. Stops at the
    first frame that is not exactly what `append` writes; returns (its offset, or the end of
    the data; the chain hash and the next seq before it).

    A one-event frame (the common one) is `0x91 0x99 core-elements 0xc4 0x20 hash`: its two
    tag pairs are compared, its core is hashed and its hash compared, so every byte of the
    body is checked against the chain and its CRC would add nothing (the CRC field itself is
    covered by the header's CRC, which is checked): only other frames compute it."""
    unpack, crc, sha256 = FRAME_HEADER.unpack_from, crc32c.crc32c, hashlib.sha256
    widths, one_row, hash_tag, core_tag = _UINT_WIDTH, b"\x91\x99", _HASH_TAG, _CORE
    pos, size, header = SEG_HEADER.size, len(data), FRAME_HEADER.size
    while pos + header <= size:
        length, first_seq, body_crc, header_crc = unpack(data, pos)
        start, end = pos + header, pos + header + length
        if first_seq != expect or end > size or crc(data[pos:pos + 16]) != header_crc:
            return pos, prev, expect
        tag = data[start + 2] if length > 36 else 0xC1  # the row's seq: its type byte
        seq = tag if tag < 0x80 else int.from_bytes(
            data[start + 3:start + 3 + widths.get(tag, 0)], "big")
        if seq == expect and data[start:start + 2] == one_row and \
                data[end - 34:end - 32] == hash_tag:
            h = sha256(prev + core_tag + data[start + 2:end - 34]).digest()
            if h != data[end - 32:end]:
                return pos, prev, expect
            prev, expect = h, expect + 1
        else:
            body = data[start:end]
            after = _verified_frame(first_seq, body, expect, prev) \
                if crc(body) == body_crc else None
            if after is None:
                return pos, prev, expect
            prev, expect = after
        pos = end
    return pos, prev, expect


class _Damaged(Exception):
    def __init__(self, damage: Damage, prev: bytes, expect: int) -> None:
        self.damage, self.prev, self.expect = damage, prev, expect


def _careful_walk(seg: Path, start: int, prev: bytes, expect: int) -> tuple[bytes, int]:
    """Walk one segment from byte `start` frame by frame, decoding and re-encoding, to name
    the first damage exactly (_Damaged, _Torn or LogCorrupted); a frame that passes is
    accepted and the walk goes on."""
    for offset, frame_seq, body in scan_frames(seg, start):
        after = _verified_frame(frame_seq, body, expect, prev)
        if after is None:
            damage, prev, expect = _frame_damage(Frame(seg, offset, frame_seq, body),
                                                 prev, expect)
            if damage is not None:
                raise _Damaged(damage, prev, expect)
        else:
            prev, expect = after
    return prev, expect


@dataclass(frozen=True)
class ScrubReport:
    sealed: int  # sealed segments checked (and the newest one)
    events: int  # the events checked
    damage: Damage | None


def scrub(root: str | os.PathLike[str]) -> ScrubReport:
    """Check what opening does not: every segment frame by frame and along the hash chain,
    the newest one up to its last whole frame (a writer may be appending to it: a frame cut
    short at its end is not damage here; opening deals with torn tails). Safe beside a
    writer: frames already written never change."""
    segs = FileEventLog(Path(root), True, DEFAULT_SEGMENT_BYTES).segments()
    report = _walk(segs, GENESIS, 1)
    damage = report.damage
    if damage is not None and segs and damage.segment == segs[-1].name and \
            damage.reason.startswith("incomplete frame"):
        damage = None  # the newest segment's end, being written
    return ScrubReport(max(len(segs) - 1, 0), report.events, damage)


SCRUB_FILE = "SCRUBBED"  # when the last clean scrub ran (system clock, µs) and what it covered
_SCRUB_MAGIC = "trustledger-scrub v1"


def record_scrub(root: Path, at_us: int, report: ScrubReport) -> None:
    """Remember a clean scrub (best effort: a scrub not recorded only runs again sooner).
    `at_us` is system-clock time: bytes on a disk age in real time, whatever `clock set` did
    to the engine clock. Private like every file of the log (0600)."""
    with contextlib.suppress(OSError):
        tmp = root / (SCRUB_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{_SCRUB_MAGIC} {at_us} {report.sealed} {report.events}\n")
        os.replace(tmp, root / SCRUB_FILE)


def last_scrub(root: Path) -> int | None:
    """The system-clock time (µs) of the last recorded clean scrub, None if none is known."""
    try:
        parts = (root / SCRUB_FILE).read_text().split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(parts) != 5 or " ".join(parts[:2]) != _SCRUB_MAGIC or not parts[2].isdigit():
        return None
    return int(parts[2])


def _verified_frame(first_seq: int, body: bytes, expect: int,
                    prev: bytes) -> tuple[bytes, int] | None:
    """(chain hash, next seq) after a frame whose rows are numbered from `expect` on and
    chained from `prev`, checked over the stored bytes; None if anything differs."""
    if first_seq != expect:
        return None
    try:
        rows = row_spans(body)
    except Exception:
        return None
    sha256 = hashlib.sha256
    for row in rows:
        if len(row) < 36 or row[0] != _ROW or row[-34:-32] != _HASH_TAG or \
                _stored_seq(row) != expect:
            return None
        h = sha256(prev + _CORE + row[1:-34]).digest()
        if h != row[-32:]:
            return None
        prev, expect = h, expect + 1
    return (prev, expect) if rows else None


_UINT_WIDTH = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _stored_seq(row: bytes) -> int:
    """The seq a stored row starts with (msgpack's unsigned integer forms), -1 if none."""
    tag = row[1]
    if tag < 0x80:
        return tag
    width = _UINT_WIDTH.get(tag)
    return -1 if width is None else int.from_bytes(row[2:2 + width], "big")


def _frame_damage(frame: Frame, prev: bytes, expect: int) -> tuple[Damage | None, bytes, int]:
    """The careful walk of one frame: decode, check each seq, re-encode and re-hash."""
    seg = frame.segment.name
    for rec in records_of(frame, prev):
        if rec.seq != expect:
            return Damage(seg, frame.offset, rec.seq, f"expected seq {expect}"), prev, expect
        if chain_hash(prev, encode_core(rec.core())) != rec.hash:
            return Damage(seg, frame.offset, rec.seq, "hash chain broken"), prev, expect
        prev, expect = rec.hash, expect + 1
    return None, prev, expect


def _marker_damage(log: FileEventLog, head: int) -> Damage | None:
    """A whole chain that the head marker says is short (or not the one acknowledged)."""
    segs = log.segments()
    where = (segs[-1].name, segs[-1].stat().st_size) if segs else (HEAD_FILE, 0)
    try:
        FileEventLog.open(log.root, readonly=True).close()  # open() checks the marker
    except LogError as e:
        return Damage(where[0], where[1], head + 1, e.text)
    return None
