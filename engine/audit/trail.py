"""The audit trail of one log: its Merkle tree, its signed checkpoints, and the open check.

Theory of operation
-------------------
A writer keeps the tree as a `CompactRange` (O(log n) hashes) bound to the log: the range
covers seq 1..size, the event at `size` has chain hash `chain`, and the frames after it start
at `at` (a `Position`). Each appended batch extends it (`observe`: on the command path
only its chain hashes are kept; their leaf and node hashes are made by whoever needs the
range next: a checkpoint's signing job, or a reader); a batch holding a trust
decision (engine/audit/decisions.py) is followed by a checkpoint: the C2SP tlog-checkpoint of
the range (origin, size, root) signed by the audit key (`checkpoint`). What a checkpoint says
is fixed when it is asked for (after the device's batch is acknowledged; the CA, whose group
commit acknowledges batches later, asks when it appends); the Ed25519 signature is made on the
log's thread while its next fdatasync is in the kernel (`sign_pending`, the log's
`while_syncing`: engine/audit/signer.py), or when someone reads `latest` or the trail is
written out, whichever comes first. Either way a
checkpoint is written out (below) only once every event it covers is acknowledged, so no file
ever holds a checkpoint of events that may be lost.

Two files beside the log (in the log directory) hold the trail:

- `AUDIT`: the range as of its last write and the latest checkpoint with the range at its
  size, each bound as above: one line `trustledger-audit v1 <crc32c>` and a JSON body.
  Rewritten atomically (temp file, fsync, rename, directory fsync).
- `CHECKPOINTS`: every checkpoint ever signed, signed notes one after the other, appended and
  fdatasync'ed before `AUDIT` is replaced. `AUDIT` records how many bytes of it were written
  and their CRC-32C (`Record`): the file only grows, so the open checks that it still begins
  with exactly those bytes (see "Opening").

Why a file and not an event per checkpoint: an event covering the tree up to the batch before
it must be appended after that batch's hashes are known, so it would be a second append (a
second fdatasync) per trust decision, and the tree would never be quiet (the checkpoint event
itself is always the one leaf no checkpoint covers). The file keeps the log the history of
decisions only, and costs no fdatasync per command.

Durability: both files are written in the log's head-marker step (`FileEventLog.on_mark`: at
most every MARK_EVERY seconds, when a snapshot is taken, and at a clean close), never by a
command itself, and hold only what covers acknowledged events (`persist(upto=seq)`; the
signatures still being made are waited for first). A crash (tests/audit/test_audit_crash.py)
between a commit's fdatasync and that step leaves the events (acknowledged) and files that
are true but older: killed before the signature is made or before anything is written, both
files are as of the previous step; after `CHECKPOINTS` is appended but before `AUDIT` is
replaced, `CHECKPOINTS` is ahead of `AUDIT`; after both, only the head marker is older. The
next open re-signs the trust decisions after the newest checkpoint recorded (`sign_on_open`):
Ed25519 signatures are deterministic (RFC 8032 §5.1.6), so the same tree gives the same note,
and every decision's checkpoint is recorded once. `trustledger audit checkpoint` writes
through at once: it prints what it signed.

Opening (`open_trail`): nothing is rebuilt from the whole log when `AUDIT` is there. The latest
checkpoint's signature is checked with the log's audit key and its root against the range it
was saved with; then the log must reach its size and hold, at that seq, the chain hash it was
signed over (the chain hash at seq N commits to every event up to N). The same is checked for
the saved range, and the rows after it are read (what was appended since the last marker step,
from the position saved) to bring the range to the head. A log that ends below either, or
differs at that seq (cut back, or rewritten from some point on), refuses to open with a `%`
sentence naming what is missing: this is what tells a truncation from a torn tail for the
events a checkpoint covers. Without `AUDIT` (a log made before the audit, or the file moved
aside) the range is rebuilt from every event once. Either way, if the newest checkpoint in
`CHECKPOINTS` (read from the file's end) is past the range `AUDIT` saved, it must verify and
the log must reach its size with the root it signed (else the open is refused as above: the
device would otherwise sign a second, different checkpoint for a size it already signed).

The record itself is checked first (`check_record`): a `CHECKPOINTS` that is missing or
shorter than `AUDIT` recorded (emptied, cut) refuses to open, as does one whose newest
checkpoint does not verify or is older than the latest in `AUDIT` (an `AUDIT` written before
it recorded the file; every checkpoint is in `CHECKPOINTS` before `AUDIT` names it). A
damaged record must not lower the bar: it is the trail's evidence, and its newest checkpoint
is what binds a log whose `AUDIT` is lost. Bytes after the recorded ones are checkpoints a
crash kept `AUDIT` from recording (see "Durability"): the newest must verify, as before.

What the open does not read: the recorded bytes before the newest checkpoint, whose CRC-32C
`AUDIT` holds. Checking them means reading the whole file, every checkpoint ever signed (22 MB
at 100,000, one per trust decision), on every open, where the open otherwise reads a snapshot
and the log's tail: the log's own older events are not re-read at open either, but by `log
verify`. The open uses none of those bytes (only the newest checkpoint, checked above), so
they are checked where they are read (`verify_record`): by `checked_checkpoints`, the one
reader of older checkpoints (`audit export --until`), before any is used, and by `trustledger
log verify`. A flipped bit there is caught however many checkpoints were appended since:
the record `AUDIT` keeps is extended from the CRC-32C recorded, never recomputed from the
file (`check_record`, `_append_checkpoints`), so damage is never taken into it.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit.checkpoint import Checkpoint, checkpoint_body, parse_checkpoint
from engine.audit.decisions import is_trust_decision
from engine.audit.key import AuditKey
from engine.audit.merkle import CompactRange, leaf_hash
from engine.audit.note import NoteError, NoteSigner, verify_note
from engine.audit.signer import Jobs
from engine.devicelog import DeviceLog
from engine.logsetup import get_logger
from events.crc import crc32c
from events.durable import fsync_directory
from events.filelog import LogError, Position, TailMismatch
from events.store import GENESIS, Recorded

AUDIT_FILE = "AUDIT"
CHECKPOINTS_FILE = "CHECKPOINTS"
_MAGIC = "trustledger-audit v1"
FOLD_AFTER = 256  # leaves observed and not yet hashed, at most (`AuditTrail.observe`)
_CHUNK = 1 << 20  # CHECKPOINTS is read in chunks of this size when its checksum is made
_RECOVER = ("restore CHECKPOINTS from a backup; or move it and AUDIT aside to open the log "
            "unchecked: the tree is then rebuilt from the log and signed again, without the "
            "checkpoints lost")

logger = get_logger("trustledger.audit")


class AuditMismatch(LogError):
    """The log is shorter than, or not the one, its audit trail covers: refusing to open."""

    def __init__(self, text: str) -> None:
        super().__init__(text, sentence=True)


@dataclass(frozen=True)
class Bound:
    """A compact range bound to a log: seq 1..size, event `size` has chain hash `chain`, the
    frames after it start at `at` (None: not known, found by seq)."""

    size: int
    hashes: tuple[bytes, ...]
    chain: bytes
    at: Position | None

    def range(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "chain": self.chain.hex(),
                "at": None if self.at is None else [self.at.segment, self.at.offset],
                "hashes": [h.hex() for h in self.hashes]}

    @classmethod
    def from_json(cls, obj: Any) -> Bound:
        at = obj["at"]
        bound = cls(int(obj["size"]), tuple(bytes.fromhex(h) for h in obj["hashes"]),
                    bytes.fromhex(obj["chain"]),
                    None if at is None else Position(int(at[0]), int(at[1])))
        bound.range()  # ValueError if the count of hashes does not fit the size
        if len(bound.chain) != 32 or any(len(h) != 32 for h in bound.hashes):
            raise ValueError("a hash is not 32 bytes")
        return bound


@dataclass(frozen=True)
class Signed:
    """A signed checkpoint and the range it was signed over."""

    note: bytes
    checkpoint: Checkpoint
    tree: Bound


@dataclass(frozen=True)
class Record:
    """The first `size` bytes of `CHECKPOINTS` have CRC-32C `crc` (what `AUDIT` records)."""

    size: int
    crc: int

    def extended(self, data: bytes) -> Record:
        return Record(self.size + len(data), crc32c.crc32c(data, self.crc))


@dataclass(frozen=True)
class Saved:
    tree: Bound
    latest: Signed | None
    record: Record | None = None  # None: an AUDIT written before it recorded CHECKPOINTS


# -- the file ------------------------------------------------------------------------------------


def read_saved(root: Path) -> Saved | None:
    """`AUDIT` of the log directory `root`; None if there is none; AuditMismatch if damaged."""
    path = root / AUDIT_FILE
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        head, _, body = raw.partition(b"\n")
        magic, _, crc = head.decode("ascii").rpartition(" ")
        if magic != _MAGIC or int(crc, 16) != crc32c.crc32c(body):
            raise ValueError("bad magic or checksum")
        obj = json.loads(body)
        latest = obj["checkpoint"]
        signed = None
        if latest is not None:
            note = latest["note"].encode()
            signed = Signed(note, parse_checkpoint(note.decode().partition("\n\n")[0] + "\n"),
                            Bound.from_json(latest["tree"]))
        record = obj.get("checkpoints")
        if record is not None:
            record = Record(int(record[0]), int(record[1], 16))
            if record.size < 0:
                raise ValueError("a negative size of CHECKPOINTS")
        return Saved(Bound.from_json(obj["tree"]), signed, record)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as e:
        raise AuditMismatch(
            f"The audit state {path} is damaged ({e}): the log cannot be checked against its "
            "checkpoints. Refusing to open (move the file aside to open the log unchecked; the "
            "tree is then rebuilt from the log).") from None


def _write_saved(root: Path, saved: Saved) -> None:
    latest = saved.latest
    body = json.dumps({
        "tree": saved.tree.to_json(),
        "checkpoint": None if latest is None else {"note": latest.note.decode(),
                                                   "tree": latest.tree.to_json()},
        **({} if saved.record is None else
           {"checkpoints": [saved.record.size, f"{saved.record.crc:08x}"]}),
    }, separators=(",", ":")).encode()
    data = f"{_MAGIC} {crc32c.crc32c(body):08x}\n".encode() + body
    tmp = root / (AUDIT_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while data:  # a short write (a disk filling up) is followed by the rest
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, root / AUDIT_FILE)
    fsync_directory(root)


def _append_checkpoints(root: Path, notes: Sequence[bytes], record: Record | None) -> Record:
    """Append `notes` to CHECKPOINTS, which holds `record` (None: not known, read from the
    file); the record of the file after them. Bytes past `record` are a failed append's (the
    record grows only when one succeeds): they are cut first, never left inside the file."""
    fd = os.open(root / CHECKPOINTS_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        if record is None or size < record.size:
            if record is not None:  # cut while the log was open: the next append goes on
                logger.warning("CHECKPOINTS is shorter than what was written to it",
                               size=size, written=record.size)
            with open(fd, "rb", closefd=False) as f:
                record = Record(*_crc_of(f, None))
        elif size > record.size:
            os.ftruncate(fd, record.size)
        data = b"".join(notes)
        rest = data
        while rest:
            rest = rest[os.write(fd, rest):]
        os.fdatasync(fd)
    finally:
        os.close(fd)
    return record.extended(data)


def _crc_of(f: Any, limit: int | None, crc: int = 0) -> tuple[int, int]:
    """How many bytes `f` has from where it is (up to `limit`), and their CRC-32C from `crc`."""
    n = 0
    while limit is None or n < limit:
        chunk = f.read(_CHUNK if limit is None else min(_CHUNK, limit - n))
        if not chunk:
            break
        crc, n = crc32c.crc32c(chunk, crc), n + len(chunk)
    return n, crc


def check_record(root: Path, saved: Saved | None) -> Record:
    """The record of CHECKPOINTS as it is, once it is found to hold at least the bytes
    `AUDIT` recorded (`saved.record`): the recorded CRC-32C extended over the bytes after
    them, which alone are read (see "What the open does not read"); AuditMismatch naming
    the file if it is shorter. Without a record, the whole file's."""
    path, want = root / CHECKPOINTS_FILE, saved.record if saved is not None else None
    try:
        with open(path, "rb") as f:
            if want is None:
                return Record(*_crc_of(f, None))
            size = os.fstat(f.fileno()).st_size
            if size >= want.size:
                f.seek(want.size)
                more, crc = _crc_of(f, None, want.crc)  # a crash's, not yet recorded
                return Record(want.size + more, crc)
    except FileNotFoundError:
        if want is None or want.size == 0:
            return Record(0, 0)
        size = -1
    except OSError as e:
        raise AuditMismatch(f"The checkpoint record {path} cannot be read ({e.strerror or e}): "
                            "the log cannot be checked against its checkpoints. Refusing to "
                            "open.") from None
    raise AuditMismatch(_short(path, size, want) + f" Refusing to open ({_RECOVER}).")


def _short(path: Path, size: int, want: Record) -> str:
    held = "is missing" if size < 0 else f"holds {size} bytes"
    return (f"The checkpoint record {path} {held}, but {want.size} bytes of signed "
            f"checkpoints were written to it ({AUDIT_FILE} says so): it was cut or emptied.")


def verify_record(root: Path) -> str | None:
    """What is wrong with CHECKPOINTS against the record `AUDIT` holds of it (every recorded
    byte read and its CRC-32C compared, for the readers of older checkpoints: see "What the
    open does not read"); None if nothing is (or nothing is recorded: no `AUDIT`, or one
    from before the record). AuditMismatch if `AUDIT` itself is damaged."""
    return _read_record(root)[1]


def checked_checkpoints(root: Path) -> list[bytes] | str:
    """Every signed note in `CHECKPOINTS`, oldest first (signatures not verified), once
    the file is found to hold exactly the bytes `AUDIT` recorded (`verify_record`); else
    what is wrong, naming the file."""
    data, problem = _read_record(root)
    return problem if problem is not None else _split_notes(data.decode("utf-8", "replace"))


def _read_record(root: Path) -> tuple[bytes, str | None]:
    """CHECKPOINTS' bytes (none if it is missing) and what is wrong with them (`verify_record`).
    `AUDIT` is read first: the file only grows after `AUDIT` records it."""
    saved = read_saved(root)
    path = root / CHECKPOINTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    want = saved.record if saved is not None else None
    if want is None:
        return data or b"", None
    if data is None:
        return b"", None if want.size == 0 else _short(path, -1, want)
    if len(data) < want.size:
        return data, _short(path, len(data), want)
    crc = crc32c.crc32c(data[:want.size])
    if crc != want.crc:
        return data, (f"The checkpoint record {path} is damaged: its first {want.size} bytes "
                      f"are not the signed checkpoints written to it (CRC-32C {crc:08x}, "
                      f"{AUDIT_FILE} recorded {want.crc:08x}).")
    return data, None


def read_checkpoints(root: Path) -> list[bytes]:
    """Every signed note in `CHECKPOINTS`, oldest first (not verified)."""
    try:
        text = (root / CHECKPOINTS_FILE).read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return _split_notes(text)


def newest_checkpoint(root: Path) -> bytes | None:
    """The last signed note in `CHECKPOINTS` (not verified), read from the file's end: the
    file holds every checkpoint ever signed, an open reads only its tail."""
    try:
        with open(root / CHECKPOINTS_FILE, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            take = 4096
            while True:
                start = max(0, end - take)
                f.seek(start)
                notes = _split_notes(f.read(end - start).decode("utf-8", "replace"))
                # From the middle of the file the first note is cut; the last one starts
                # at a note's first line once another note was seen before it.
                if start == 0 or len(notes) >= 2:
                    return notes[-1] if notes else None
                take *= 4
    except FileNotFoundError:
        return None


def _split_notes(text: str) -> list[bytes]:
    notes: list[bytes] = []
    current: list[str] = []
    in_sigs = False
    for line in text.splitlines(keepends=True):
        if in_sigs and not line.startswith("\u2014 "):
            notes.append("".join(current).encode())
            current, in_sigs = [], False
        current.append(line)
        if line == "\n":
            in_sigs = True
    if current:
        notes.append("".join(current).encode())
    return notes


# -- the trail ------------------------------------------------------------------------------------


class AuditTrail:
    """A writer's tree, latest checkpoint and what is still to be written out. Thread-safe:
    a log whose fdatasyncs run on another thread (the CA's group commit) calls `on_mark`
    there while commands call `observe` and `checkpoint`."""

    def __init__(self, root: Path, key: AuditKey, signer: Callable[[], Ed25519PrivateKey],
                 tree: Bound, latest: Signed | None, record: Record | None = None) -> None:
        self.root = root
        self._record = record  # CHECKPOINTS as written (None: read at the first append)
        self.key = key
        self._range = tree.range()
        self._leaves: list[bytes] = []  # chain hashes observed, not yet in _range (`_fold`)
        self._computed: CompactRange | None = None  # the last job's range (`_range_at`)
        self.chain, self.at = tree.chain, tree.at
        self._latest = latest
        self._signer = signer
        self._note_signer: NoteSigner | None = None  # the key, opened once (`_opened`)
        self._kid = key.verifier().key_id
        self._origin_line = f"{key.origin}\n".encode()
        self._signing = Jobs()  # engine/audit/signer.py
        self._unsaved: list[Signed] = []  # signed, not yet in CHECKPOINTS
        self._on_disk: Signed | None = latest  # the latest checkpoint AUDIT holds
        self._dirty = False
        self._lock = threading.Lock()
        self.missed: list[Bound] = []  # decisions found unsigned on open (`sign_on_open`)

    @property
    def latest(self) -> Signed | None:
        """The latest checkpoint, once every signature asked for is made."""
        self._signing.drain()
        with self._lock:
            return self._latest

    @property
    def size(self) -> int:
        with self._lock:
            return self._range.size + len(self._leaves)

    @property
    def range(self) -> CompactRange:
        """The tree over every event observed (the live range: the trail's own)."""
        with self._lock:
            return self._fold()

    def _fold(self) -> CompactRange:
        """Hash the leaves observed into the range (under the lock)."""
        append = self._range.append
        for h in self._leaves:
            append(leaf_hash(h))
        self._leaves.clear()
        return self._range

    def bound(self) -> Bound:
        """The range bound to the log (under the lock, or while no one else holds the trail)."""
        rng = self._fold()
        return Bound(rng.size, tuple(rng.hashes), self.chain, self.at)

    def observe(self, records: Sequence[Recorded], at: Position | None) -> bool:
        """Extend the tree by an appended batch; whether it holds a trust decision. Only the
        chain hashes are kept here: the leaf and node hashes are made by whoever needs the
        range next (`_fold`), for a checkpoint its signing job (`checkpoint`)."""
        decision = False
        with self._lock:
            leaves = self._leaves
            for rec in records:
                if rec.seq != self._range.size + len(leaves) + 1:
                    raise ValueError(f"the audit tree is at size "
                                     f"{self._range.size + len(leaves)}, the log appended "
                                     f"seq {rec.seq}")
                leaves.append(rec.hash)
                decision = decision or is_trust_decision(rec.type)
            if records:
                self.chain, self.at, self._dirty = records[-1].hash, at, True
            if len(leaves) >= FOLD_AFTER:  # a long run without a checkpoint: memory stays small
                self._fold()
        return decision

    def checkpoint(self) -> None:
        """Checkpoint the tree as it is: what it signs is fixed now; the signature is made on
        the log's thread while its next fdatasync is in the kernel (`sign_pending`,
        engine/audit/signer.py), after which the signed note is `latest` and waits to be
        written out. `latest` and `persist` have it made first if it is not. The key is
        opened here, the first time (its errors are raised here). The commit path: only
        the range's hashes and the leaves observed since are copied here; the leaf and node
        hashing (`_range_at`), the signature and the note (`_sign`) are the signing job's,
        kept short so that they end inside the fdatasync (engine/audit/signer.py)."""
        with self._lock:
            signer, rng = self._opened(), self._range
            base, leaves = (rng.size, tuple(rng.hashes)), tuple(self._leaves)
            chain, at = self.chain, self.at

        kept: list[Signed] = []  # the job's checkpoint, once kept (a re-run does nothing)

        def job() -> None:
            if not kept:
                rng = self._range_at(base, leaves)
                self._sign(Bound(rng.size, tuple(rng.hashes), chain, at), rng.root(), signer,
                           kept)

        self._signing.submit(job)

    def _range_at(self, base: tuple[int, tuple[bytes, ...]],
                  leaves: tuple[bytes, ...]) -> CompactRange:
        """The signing job's part of `checkpoint`: the range `base` extended by `leaves`.
        It starts from the range its previous job made when that lies between (checkpoints
        queued together hash each leaf once), and the trail keeps the result in place of its
        own range and the leaves it covers (sparing `_fold` the hashing) when it can."""
        start, hashes = base
        done = self._computed  # the jobs' alone: they run one at a time
        if done is not None and start <= done.size <= start + len(leaves):
            rng, todo = CompactRange(done.size, done.hashes), leaves[done.size - start:]
        else:
            rng, todo = CompactRange(start, hashes), leaves
        rng.extend(leaf_hash(h) for h in todo)
        self._computed = rng
        with self._lock:  # the same log's leaves: any range between covers a prefix of rng's
            kept = self._range.size
            if kept <= rng.size <= kept + len(self._leaves):
                self._range = CompactRange(rng.size, rng.hashes)
                del self._leaves[:rng.size - kept]
        return rng

    def _request(self, tree: Bound) -> None:
        with self._lock:
            signer = self._opened()
        kept: list[Signed] = []
        self._signing.submit(lambda: None if kept else
                             self._sign(tree, tree.range().root(), signer, kept))

    def _opened(self) -> NoteSigner:
        """The key's signer, opened the first time it is needed (called under the lock)."""
        if self._note_signer is None:
            self._note_signer = NoteSigner(self.key.origin, self._signer(), self._kid)
        return self._note_signer

    def sign_on_open(self) -> None:
        """What the open found unsigned: a checkpoint of each trust decision after the
        newest checkpoint recorded (a crash kept it from being written out; signing the
        same tree again gives the same note, RFC 8032 §5.1.6), or, on a log that has none at
        all, of the tree as it is (the key's, or a log made before the audit). The key's
        errors are raised (nothing is queued then; the next open finds them again)."""
        missed = self.missed
        if not missed and self._latest is None:
            with self._lock:
                missed = [self.bound()]
        for tree in missed:
            self._request(tree)
        self.missed = []

    def _sign(self, tree: Bound, root: bytes, signer: NoteSigner, kept: list[Signed]) -> None:
        """The signing job: sign the checkpoint of `tree` (whose root is `root`),
        keep it as the latest, to be written out, and say so in `kept` (with it, under the
        lock: a job run again after an interrupt keeps nothing twice)."""
        note = signer.sign(checkpoint_body(self._origin_line, tree.size, root))
        signed = Signed(note, Checkpoint(self.key.origin, tree.size, root), tree)
        with self._lock:
            self._latest = signed
            self._unsaved.append(signed)
            self._dirty = True
            kept.append(signed)

    def add_cosignatures(self, lines: bytes) -> None:
        """Witnesses' cosignature lines on the latest checkpoint (engine/audit/
        witness_client.py): its note, kept and written out, carries them from now on."""
        self._signing.drain()
        with self._lock:
            latest = self._latest
            assert latest is not None
            signed = Signed(latest.note + lines, latest.checkpoint, latest.tree)
            if self._unsaved and self._unsaved[-1] is latest:
                self._unsaved[-1] = signed
            else:  # already written out: CHECKPOINTS gets the co-signed copy too
                self._unsaved.append(signed)
            self._latest = signed
            self._dirty = True

    def persist(self, upto: int | None = None) -> None:
        """Write what changed: new checkpoints to CHECKPOINTS, then AUDIT; with `upto`, only
        what covers no seq after it (what is acknowledged). OSError is raised and nothing is
        forgotten (the next step writes it). Signatures still being made are waited for."""
        self._signing.drain()
        with self._lock:
            if not self._dirty:
                return
            size = self._fold().size
            limit = size if upto is None else upto
            ready = [c for c in self._unsaved if c.checkpoint.size <= limit]
            latest = ready[-1] if ready else self._on_disk
            tree = self.bound() if size <= limit else \
                latest.tree if latest is not None else None
            if tree is None:
                return  # nothing acknowledged to say yet
            if ready:
                self._record = _append_checkpoints(self.root, [c.note for c in ready],
                                                   self._record)
                del self._unsaved[:len(ready)]
            _write_saved(self.root, Saved(tree, latest, self._record))
            self._on_disk = latest
            self._dirty = size > limit or bool(self._unsaved)

    def sign_pending(self) -> None:
        """The log's `while_syncing`: make the signatures asked for while its fdatasync is in
        the kernel (engine/audit/signer.py). A job's error waits for the next `drain`."""
        self._signing.run()

    def write_out(self, upto: int | None = None) -> None:
        """`persist` for callers that go on whatever happens (the shell between commands,
        `ca serve` while idle, closing): a failed write is logged, and the next step writes
        it (the log holds every event)."""
        try:
            self.persist(upto)
        except OSError as e:
            logger.warning("audit trail not written; the log holds every event", error=str(e))

    def on_mark(self, seq: int) -> None:
        """The log's head-marker step (the marker will say `seq`): write the trail with it,
        up to what is acknowledged. A failure leaves the previous files, which are still
        true (only older). Nothing raised here reaches the log: its fdatasync succeeded."""
        try:
            self.persist(seq)
        except OSError:
            pass  # the next step writes it
        except Exception as e:  # a signature job that raised: a bug, said, the log unharmed
            logger.error("audit checkpoint not signed: a bug", error=repr(e), seq=seq)


# -- opening --------------------------------------------------------------------------------------


def open_trail(root: Path, log: DeviceLog, key: AuditKey,
               signer: Callable[[], Ed25519PrivateKey]) -> AuditTrail:
    """The trail of the log in `root`, checked against the log (see "Opening" above); the
    trust decisions in the rows read whose checkpoints were never written out are left for
    `sign_on_open` (see "Durability" above)."""
    saved = read_saved(root)
    record = check_record(root, saved)
    if saved is None:
        start, latest = Bound(0, (), GENESIS, None), None
        rows: Iterator[Sequence[Any]] = log.read_rows()
    else:
        start, latest = saved.tree, saved.latest
        if latest is not None:
            _check_signed(latest, key, log)
        rows = _continues(log, saved.tree, "the audit tree beside it")
    recorded = _newest_recorded(root, key, latest)
    if latest is not None and (recorded is None or recorded.size < latest.checkpoint.size):
        _lost_checkpoints(root, recorded, latest.checkpoint)
    signed = max(recorded.size if recorded else -1, latest.checkpoint.size if latest else -1)
    trail = AuditTrail(root, key, signer, start, latest, record)
    rng, recorded_root, last = trail.range, None, None
    for row in rows:
        rng.append(leaf_hash(row[8]))
        last = row
        if recorded is not None and rng.size == recorded.size:
            recorded_root = rng.root()
        if 0 <= signed < rng.size and is_trust_decision(row[2]):
            trail.missed.append(Bound(rng.size, tuple(rng.hashes), row[8], None))
    if recorded is not None and recorded.size > start.size:
        _check_recorded(recorded, rng.size, recorded_root)
    if last is not None:
        trail.chain, trail.at, trail._dirty = last[8], log.position, True
        if trail.missed and trail.missed[-1].size == rng.size:
            trail.missed[-1] = trail.bound()
    return trail


def _newest_recorded(root: Path, key: AuditKey, latest: Signed | None) -> Checkpoint | None:
    """The newest checkpoint in `CHECKPOINTS` (its signature checked unless it is `latest`,
    which was): the log must still be the one it covers."""
    note = newest_checkpoint(root)
    if note is None:
        return None
    if latest is not None and note == latest.note:
        return latest.checkpoint
    try:
        return parse_checkpoint(verify_note(note, [key.verifier()])[0])
    except NoteError as e:
        raise AuditMismatch(f"The newest checkpoint in {root / CHECKPOINTS_FILE} does not "
                            f"verify with the log's audit key ({e}). Refusing to open "
                            f"({_RECOVER}).") from None


def _lost_checkpoints(root: Path, recorded: Checkpoint | None, latest: Checkpoint) -> None:
    """CHECKPOINTS holds every checkpoint before AUDIT names it: one that ends before the
    latest in AUDIT was cut or emptied (an AUDIT that does not record its size says so)."""
    ends = ("holds no checkpoint" if recorded is None
            else f"ends at the checkpoint of tree size {recorded.size}")
    raise AuditMismatch(f"The checkpoint record {root / CHECKPOINTS_FILE} {ends}, but the latest "
                        f"checkpoint in {AUDIT_FILE} was signed at tree size {latest.size}: it "
                        f"was cut or emptied. Refusing to open ({_RECOVER}).")


def _check_recorded(cp: Checkpoint, head: int, root_there: bytes | None) -> None:
    """The log (of `head` events, whose tree at `cp.size` has `root_there`) must extend the
    recorded checkpoint `cp`; AuditMismatch otherwise."""
    what = (f"the checkpoint recorded at tree size {cp.size} (root "
            f"{base64.b64encode(cp.root).decode()[:16]}\u2026, in {CHECKPOINTS_FILE})")
    if head < cp.size:
        missing = (f"event {cp.size} is" if cp.size == head + 1
                   else f"events {head + 1}-{cp.size} are")
        raise AuditMismatch(f"The event log ends at seq {head}, but {what} covers seq 1-"
                            f"{cp.size}: {missing} missing. Refusing to open.")
    if cp.size and root_there != cp.root:
        raise AuditMismatch(f"The event log's first {cp.size} events do not have the root of "
                            f"{what}: it was replaced or rewritten. Refusing to open.")


def _check_signed(signed: Signed, key: AuditKey, log: DeviceLog) -> None:
    cp, tree = signed.checkpoint, signed.tree
    try:
        verify_note(signed.note, [key.verifier()])
    except NoteError as e:
        raise AuditMismatch(f"The latest audit checkpoint beside the log does not verify with "
                            f"the log's audit key ({e}). Refusing to open.") from None
    if cp.origin != key.origin or cp.size != tree.size or cp.root != tree.range().root():
        raise AuditMismatch("The latest audit checkpoint beside the log is not the one its "
                            "tree was saved with. Refusing to open.")
    what = (f"the audit checkpoint signed at tree size {cp.size} (root "
            f"{base64.b64encode(cp.root).decode()[:16]}\u2026)")
    _continues(log, tree, what)  # checks the first frame after it; the rest is not read


def _continues(log: DeviceLog, tree: Bound, what: str) -> Iterator[Sequence[Any]]:
    """The log's rows after `tree` (lazily), once the log is found to reach `tree.size` and
    hold `tree.chain` there; AuditMismatch otherwise."""
    head = log.head[0]
    if head < tree.size:
        missing = (f"event {tree.size} is" if tree.size == head + 1
                   else f"events {head + 1}-{tree.size} are")
        raise AuditMismatch(f"The event log ends at seq {head}, but {what} covers seq 1-"
                            f"{tree.size}: {missing} missing. Refusing to open.")
    if tree.size == 0:
        return log.read_rows()
    try:
        if tree.at is not None:
            return log.tail(tree.at, tree.size, tree.chain)
        row = next(iter(log.read_rows(tree.size)), None)
        if row is None or row[8] != tree.chain:
            raise TailMismatch("the chain hash differs")
        return log.read_rows(tree.size + 1)
    except TailMismatch as e:
        raise AuditMismatch(f"The event log is not the one {what} covers: at seq {tree.size} "
                            f"it does not hold the chain hash {tree.chain.hex()[:16]}\u2026 "
                            f"({e.text}); it was replaced or rewritten. Refusing to open."
                            ) from None

