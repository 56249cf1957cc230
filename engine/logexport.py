"""`trustledger log export` / `log import`: a log as one self-describing stream, to move a
device's history between stores (a data directory's file log, a PostgreSQL store) with its
chain, hashes and seqs unchanged.

The stream (version 2)
----------------------
    trustledger-log-export v2\\n
    {"log": NAME, "kind": KIND, "first": F, "last": L, "prev": HEX, "head": HEX}\\n
    L - F + 1 records, each:  length u32 (big-endian) | core (length bytes) | hash (32 bytes)
    then blob records, each:  name (32 bytes: the SHA-256 of the data) | length u32 | data
    end SHA256HEX\\n

Blobs are the bytes the events name by content rather than carry: a device's CRLs
(`CrlFetched.sha256`; engine/revocation/store.py keeps them beside the log, and `log verify`
checks them), one record per CRL, in the order the events first name them. A CRL the source
does not have (a damaged data directory) is left out and said by `write_export`'s caller;
the importing log's `log verify` then says it is missing, as the source's did. Private keys
are never blobs: the keystore stays in its data directory.

Why a new version: a version 1 reader refuses bytes after the last event record, so a stream
with blobs must not claim to be one. Version 1 streams (no blobs) are still read, as before.

The header line is JSON: the log it came from (a file log's directory, or `device ID in
URL` without a password; informational), its kind (the stream of its first event: device,
ca), the first and last seq it holds, the chain hash before the first (`prev`, 64 zero hex
digits from seq 1) and the last event's (`head`). The header is covered by the trailer only
(which anyone can recompute), so its kind is checked against every record's stream. Each
record's core is exactly the bytes the stores hash (`events.codec.encode_core` of `[seq,
stream, type, v, at, actor, correlation, payload]`), and its hash is SHA-256(prev || core).
The trailer is the SHA-256 of every byte before it. A log of no events is a header (first 1,
last 0) and the trailer.

Reading (`read_export`) checks everything before anything is written: the magic, the header,
each record's seq (F, F+1, ... without a gap), its hash over its core chained from `prev`,
that its core decodes and re-encodes to the same bytes, that its time is a time, that the
last hash is `head`, that a whole history (F = 1) folds from an empty log by its kind's fold
table (a device's, a CA's; the chain proves the stream intact, not that trustledger wrote
it: anyone can re-hash a record they altered), the trailer's digest, that each blob hashes
to its name and is named by one of the stream's events (once), and that nothing follows
them. Any byte changed, a cut tail, a gap, or input that is not an export is refused
(`ExportRefused`) and nothing is written.

Importing (`import_into`): the export fixes the chain hash at every seq from F - 1 to L. A
log whose head is one of them (an empty log: seq 0 from a stream of F = 1; a log at F - 1
whose head hash is `prev`; a log an interrupted import left part-way) gets the records after
its head, folded first on top of the state the log's own events fold to (as opening it
will fold them; refused naming the first that does not fold, before anything is written),
then appended with their stored form (`events.store.StoredEvent`: the same cores, so
the same hashes; checked after the append). A log already holding all of it (its hash at L
is `head`) gets nothing: importing the same export twice is a no-op, said as such. Any other
log (a different history, or one the stream does not reach) is refused: a foreign stream.
The blobs are stored (`put`, durable when it returns) after those checks and before the
events that name them, as a device stores a CRL before the event naming it; a re-import
stores the ones the target lacks (a target filled from a version 1 stream).
A file log takes the records in frames of at most CHUNK_BYTES made durable together at the
end (one group commit); a shared store takes them in one transaction.

The target's state, which the records are folded on top of, is found as opening finds it
(engine/snapshot.py `load_with_tail`): the newest snapshot in the data directory's
`snapshots/` that passes every check against the log (digest, this build's folds, the log
continuing its seq and chain hash), and the log's rows after it; a snapshot that fails one is
passed over, and without one the log folds from seq 1. A log that ends before its newest
snapshot (events lost, which opening refuses) folds from seq 1 too: an import may be what
restores them. A whole-history stream (F = 1) that `read_export` folded from an empty log is
not folded again: the target holds the same events up to its head (the chain hashes match),
so it folds to the state the stream's own fold passed through. Like opening, an import does
not re-read the target's frames before its snapshot or its head: a frame damaged there is
found by `trustledger log verify` (and the scheduled scrub), not by the import.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Protocol

import msgpack

from engine.errors import OperatorError, Reason
from engine.folds import FoldTable, UnfoldedEvent
from events.codec import encode_core
from events.store import GENESIS, PendingEvent, Recorded, StoredEvent, chain_hash

MAGIC = b"trustledger-log-export v2\n"
MAGIC_V1 = b"trustledger-log-export v1\n"  # events only; still read
_LEN = struct.Struct(">I")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TRAILER = b"end "  # then the SHA-256 of every byte before it, in hex, and a newline
MAX_CORE = 64 * 1024 * 1024  # no event is larger than a file log frame
CHUNK_BYTES = 4 * 1024 * 1024  # a file log frame of imported records holds at most this
MAX_AT = 253_402_300_800 * 1_000_000  # an event's time (µs since 1970) is before year 10000


class ExportRefused(OperatorError):
    """The input is not an intact export, or does not continue the log it is imported into."""


class _Log(Protocol):
    @property
    def head(self) -> tuple[int, bytes]: ...

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]: ...

    def read(self, from_seq: int = 1) -> Iterator[Recorded]: ...


class _Blobs(Protocol):  # engine.revocation.store.CrlBlobs
    def put(self, der: bytes) -> str: ...

    def get(self, sha256: str) -> bytes: ...


class Written(NamedTuple):
    """What `write_export` wrote: events, blobs, and the blobs the source lacked (seq of
    the first event naming each, its name)."""

    events: int
    blobs: int
    missing: list[tuple[int, str]]


class Imported(NamedTuple):
    """What `import_into` did: the first seq appended, how many (0: it held them all), how
    many blobs were stored."""

    first: int
    appended: int
    blobs: int


@dataclass(frozen=True)
class Export:
    """A checked export: its header and its records (seq, decoded core, core bytes, hash)."""

    name: str
    kind: str
    first: int
    last: int
    prev: bytes
    head: bytes
    records: list[tuple[list[Any], bytes, bytes]]
    blobs: dict[str, bytes]  # hex SHA-256 -> bytes
    folded: bool = False  # read_export folded every record from an empty log

    def hash_at(self, seq: int) -> bytes:
        """The chain hash after `seq` (first - 1 <= seq <= last)."""
        return self.prev if seq == self.first - 1 else self.records[seq - self.first][2]


# -- writing -------------------------------------------------------------------------------------


def write_export(log: _Log, out: BinaryIO, name: str, blobs: _Blobs | None = None
                 ) -> Written:
    """Write the whole of `log` to `out`, and the blobs its events name that `blobs` holds.
    The head is read once, first: a writer appending meanwhile adds nothing to the stream."""
    seq, head = log.head
    records = (r for r in log.read(1) if r.seq <= seq)
    first = next(records, None)
    kind = first.stream if first is not None else "device"
    header = {"log": name, "kind": kind, "first": 1, "last": seq, "prev": GENESIS.hex(),
              "head": head.hex()}
    digest = hashlib.sha256()

    def put(data: bytes) -> None:
        digest.update(data)
        out.write(data)

    put(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
    prev, count = GENESIS, 0
    named: dict[str, int] = {}
    for rec in (first, *records) if first is not None else ():
        core = encode_core(rec.core())
        if rec.seq != count + 1 or rec.prev != prev or chain_hash(prev, core) != rec.hash:
            raise ExportRefused(Reason.BAD_DATA, f"The log {name} does not chain at seq "
                                f"{rec.seq}: not exported (`trustledger log verify` says "
                                "where it is damaged).")
        put(_LEN.pack(len(core)) + core + rec.hash)
        prev, count = rec.hash, count + 1
        for blob in _names(rec.type, rec.payload):
            named.setdefault(blob, rec.seq)
    if count != seq or prev != head:
        raise ExportRefused(Reason.BAD_DATA, f"The log {name} ends at seq {count}, not at its "
                            f"head {seq}: not exported.")
    carried, missing = 0, []
    for blob, at in named.items():
        data = _blob(blobs, blob)
        if data is None:
            missing.append((at, blob))
            continue
        put(bytes.fromhex(blob) + _LEN.pack(len(data)) + data)
        carried += 1
    out.write(_TRAILER + digest.hexdigest().encode() + b"\n")
    return Written(count, carried, missing)


def _names(type_: str, payload: Any) -> tuple[str, ...]:
    """The blobs an event names: a fetched CRL's bytes (events/revocation.py)."""
    if type_ == "CrlFetched" and isinstance(payload, dict):
        name = payload.get("sha256")
        if isinstance(name, str) and _HEX64.match(name):
            return (name,)
    return ()


def _blob(blobs: _Blobs | None, name: str) -> bytes | None:
    """The checked bytes of `name`, or None if `blobs` does not have them whole."""
    from engine.revocation.store import BlobMissing

    if blobs is None:
        return None
    try:
        return blobs.get(name)
    except BlobMissing:
        return None


# -- reading -------------------------------------------------------------------------------------


def read_export(data: bytes) -> Export:
    """The export in `data`, every check made (see the module docstring); ExportRefused
    naming the first thing wrong."""
    if not data:
        raise _refused("there was no input")
    magic = next((m for m in (MAGIC, MAGIC_V1) if data.startswith(m)), None)
    if magic is None:
        raise _refused("it does not start with the export header (not a `trustledger log "
                       "export` stream)")
    end = len(data) - len(_TRAILER) - 64 - 1
    if end < len(magic) or data[end:end + len(_TRAILER)] != _TRAILER:
        raise _refused("it has no trailer: the stream was cut short")
    if hashlib.sha256(data[:end]).hexdigest().encode() + b"\n" != data[end + len(_TRAILER):]:
        raise _refused("its trailer does not match its contents: a byte was changed, or the "
                       "stream was cut short")
    line_end = data.find(b"\n", len(magic), end)
    if line_end < 0:
        raise _refused("its header is not an export header")
    header = _header(data[len(magic):line_end])
    at = [line_end + 1]
    records = list(_records(data, at, end, header))
    named = {n for c, _, _ in records for n in _names(c[2], c[7])}
    blobs = _blob_records(data, at[0], end, named) if magic == MAGIC else {}
    if at[0] != end and magic == MAGIC_V1:
        raise _refused("it holds bytes after its last record")
    if (records[-1][2] if records else bytes.fromhex(header["prev"])) != bytes.fromhex(
            header["head"]):
        raise _refused("its last record is not the head its header names")
    from_empty = header["first"] == 1  # the whole history: it must fold from an empty log
    if from_empty:
        _check_folds(header["kind"], None, records, "an empty log")
    return Export(header["log"], header["kind"], header["first"], header["last"],
                  bytes.fromhex(header["prev"]), bytes.fromhex(header["head"]), records,
                  blobs, from_empty)


def _blob_records(data: bytes, at: int, end: int, named: set[str]) -> dict[str, bytes]:
    """The blob records from `at` to the trailer: each hashes to its name, which one of the
    stream's events names, once."""
    blobs: dict[str, bytes] = {}
    while at < end:
        if at + 32 + _LEN.size > end:
            raise _refused("it ends inside a blob record")
        name = data[at:at + 32].hex()
        (size,) = _LEN.unpack_from(data, at + 32)
        blob = data[at + 36:at + 36 + size]
        at += 36 + size
        if size > MAX_CORE or at > end:
            raise _refused(f"it ends inside the blob {name}")
        if hashlib.sha256(blob).hexdigest() != name:
            raise _refused(f"the blob it carries as {name} does not hash to that name (the "
                           "CRL an event names by it)")
        if name not in named:
            raise _refused(f"it carries a blob ({name}) that none of its events names")
        if name in blobs:
            raise _refused(f"it carries the blob {name} twice")
        blobs[name] = blob
    return blobs


def _header(line: bytes) -> dict[str, Any]:
    try:
        h = json.loads(line)
        ok = (isinstance(h, dict) and isinstance(h.get("log"), str)
              and h.get("kind") in ("device", "ca", "witness")
              and all(type(h.get(k)) is int for k in ("first", "last"))
              and 1 <= h["first"] <= h["last"] + 1
              and all(len(bytes.fromhex(h.get(k, ""))) == 32 for k in ("prev", "head")))
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise _refused("its header is not an export header")
    return h  # type: ignore[no-any-return]


def _records(data: bytes, where: list[int], end: int,
             header: dict[str, Any]) -> Iterator[tuple[list[Any], bytes, bytes]]:
    """The event records from `where[0]`, checked; `where[0]` is left after the last."""
    prev, at = bytes.fromhex(header["prev"]), where[0]
    for seq in range(header["first"], header["last"] + 1):
        if at + _LEN.size > end:
            raise _refused(f"it ends before seq {seq} (its header says {header['last']})")
        (size,) = _LEN.unpack_from(data, at)
        core, h = data[at + 4:at + 4 + size], data[at + 4 + size:at + 36 + size]
        at += 36 + size
        if size > MAX_CORE or at > end:
            raise _refused(f"it ends inside seq {seq}")
        if chain_hash(prev, core) != h:
            raise _refused(f"the record of seq {seq} does not hash to its chain hash")
        try:
            decoded = list(msgpack.unpackb(core, raw=False, use_list=False,
                                           strict_map_key=True))
        except (ValueError, TypeError, msgpack.UnpackException):
            raise _refused(f"the record of seq {seq} is not an event") from None
        if len(decoded) != 8 or decoded[0] != seq or encode_core(decoded) != core:
            raise _refused(f"the record at seq {seq} is numbered {decoded[0]!r} or is not "
                           "an event in its stored form (a gap, or a foreign record)")
        if decoded[1] != header["kind"]:  # the header is not hashed; every core is
            raise _refused(f"its header says a {header['kind']} log, but seq {seq} is an "
                           f"event of a {decoded[1]!r} log")
        if type(decoded[4]) is not int or not 0 <= decoded[4] < MAX_AT:
            raise _refused(f"the record of seq {seq} is dated {decoded[4]!r}, not a time")
        prev = h
        yield decoded, core, h
    where[0] = at


class _Target(NamedTuple):
    """The log an import continues: its head seq, and its data directory's snapshots
    (None: it keeps none, so it folds from seq 1)."""

    log: _Log
    head: int
    snapshots: Path | None


def _check_folds(kind: str, target: _Target | None,
                 records: list[tuple[list[Any], bytes, bytes]], where: str) -> None:
    """`records` must fold on top of the state `target` folds to (None: an empty log), as
    opening the target will fold them: the chain
    proves the stream intact, not that its writer was trustledger (anyone can re-hash a
    record they altered). A device's log by the device's fold table (the fast replay first,
    and, only when it fails, event by event to find which), a CA's by the CA's; a witness
    log folds nothing. Refused naming the first event that does not fold."""
    if kind == "device":
        from engine.state import device_folds, evolve, replay_rows

        state = _target_state(where, lambda: _device_state(target))
        rows = _rows(records)
        try:
            replay_rows(state, rows)
        except Exception:  # a forged event can make a fold raise anything
            _fold_each(device_folds(), evolve, state, rows)
            raise  # (the event-by-event folds took what the replay did not: a bug, not input)
    elif kind == "ca":
        from engine.ca.state import CA_FOLDS, CAState
        from engine.ca.state import evolve as ca_evolve

        base = _target_rows(target.log, target.head) if target is not None else ()
        state = _target_state(where, lambda: _fold_plain(CA_FOLDS, ca_evolve, CAState(), base))
        _fold_each(CA_FOLDS, ca_evolve, state, _rows(records))


def _device_state(target: _Target | None) -> Any:
    """The device state `target` folds to at its head (see the module docstring): from
    its newest usable snapshot and the log's rows after it, else from seq 1."""
    from engine.state import DeviceState, replay_rows

    if target is None:
        return DeviceState()
    found = _from_snapshot(target)
    state, rows = found or (DeviceState(), _target_rows(target.log, target.head))
    return replay_rows(state, rows)


def _from_snapshot(target: _Target) -> tuple[Any, Iterable[Sequence[Any]]] | None:
    """The state of `target`'s newest snapshot that passes opening's checks against its
    log, and the log's rows after it (to its head: the importer holds the writer's lock);
    None if there is none. A log short of a snapshot folds from seq 1 (None), where opening
    refuses: the import may be what brings the missing events back."""
    if target.snapshots is None:
        return None
    from engine import snapshot

    try:
        return snapshot.load_with_tail(target.snapshots, target.log)  # type: ignore[arg-type]
    except snapshot.LogBehind:
        return None


def _target_state(where: str, fold: Callable[[], Any]) -> Any:
    """The state the target's own log folds to; refused if it does not fold."""
    try:
        return fold()
    except Exception as e:  # the target cannot open either: say so, write nothing
        why = e.text.rstrip(".") if isinstance(e, OperatorError) else \
            f"{type(e).__name__}: {str(e)[:120]}"
        raise _refused(f"{where} itself does not fold in this build: {why}") from None


def _fold_plain(table: FoldTable[Any], evolve: Callable[[Any, Any, int, int], Any],
                state: Any, rows: Iterable[Sequence[Any]]) -> Any:
    """`rows` folded into `state` by `table`, as opening folds them."""
    for row in rows:
        table.require(row[2], row[0])
        state = evolve(state, row[7], row[4], row[0])
    return state


def _fold_each(table: FoldTable[Any], evolve: Callable[[Any, Any, int, int], Any], state: Any,
               rows: Iterable[Sequence[Any]]) -> Any:
    """`rows` folded one by one into `state` by `table`; refused naming the first that does
    not fold (a type `table` does not know: as opening says it)."""
    for row in rows:
        seq, type_ = row[0], row[2]
        try:
            table.require(type_, seq)
            state = evolve(state, row[7], row[4], seq)
        except UnfoldedEvent:
            raise _refused(f"the stream holds an event of type {type_} at seq {seq}, which "
                           "this build does not fold (was it written by a newer "
                           "trustledger?)") from None
        except Exception as e:  # a forged event can make a fold raise anything
            raise _unfoldable(seq, type_, e) from None
    return state


def _rows(records: list[tuple[list[Any], bytes, bytes]]) -> list[tuple[Any, ...]]:
    """The records as typed rows `[seq, stream, type, v, at, actor, correlation, event,
    hash]`; a type this build does not know keeps its payload (no table folds it)."""
    from events.registry import UnknownEventType, event_from

    rows = []
    for core, _, h in records:
        seq, stream, type_, v, at, actor, correlation, payload = core
        try:
            ev = event_from(type_, v, dict(payload))
        except UnknownEventType:
            ev = payload  # `_fold_each` refuses it by name
        except (TypeError, ValueError, AttributeError) as e:
            raise _unfoldable(seq, type_, e) from None
        rows.append((seq, stream, type_, v, at, actor, correlation, ev, h))
    return rows


def _target_rows(log: _Log, head: int) -> Iterator[tuple[Any, ...]]:
    """The typed rows of `log` up to seq `head` (what it folds to before an import)."""
    for rec in log.read(1):
        if rec.seq > head:
            return
        yield (rec.seq, rec.stream, rec.type, rec.v, rec.at, rec.actor, rec.correlation,
               rec.event, rec.hash)


def _unfoldable(seq: int, type_: str, e: Exception) -> ExportRefused:
    return _refused(f"the {type_} event at seq {seq} cannot be folded "
                    f"({type(e).__name__}: {str(e)[:120]}): the stream was not written by "
                    "trustledger, or was altered and re-hashed")


def _refused(why: str) -> ExportRefused:
    return ExportRefused(Reason.BAD_DATA, f"Not imported: {why}. Nothing was written.")


# -- importing -----------------------------------------------------------------------------------


def import_into(log: _Log, export: Export, where: str, blobs: _Blobs | None = None,
                snapshots: Path | None = None) -> Imported:
    """Append what `log` lacks of `export` (see the module docstring), storing its blobs in
    `blobs` first; `snapshots`: the target data directory's snapshots, where its state is
    found (a file log's; None: fold the log from seq 1). ExportRefused for a foreign
    stream, before anything is written."""
    seq, head = log.head
    if seq > export.last:
        held = next(iter(log.read(export.last)), None) if export.last else None
        if export.last == 0 or (held is not None and held.hash == export.head):
            return Imported(seq + 1, 0, _store_blobs(blobs, export))
    elif export.first - 1 <= seq and export.hash_at(seq) == head:
        todo = export.records[seq + 1 - export.first:]
        if todo and not export.folded:  # on top of what the target holds
            _check_folds(export.kind, _Target(log, seq, snapshots), todo, where)
        stored = _store_blobs(blobs, export)
        _append(log, todo, export)
        return Imported(seq + 1, len(todo), stored)
    raise ExportRefused(Reason.NOT_ALLOWED, (
        f"Not imported: {where} is at seq {seq} (chain hash {head.hex()[:16]}...), which the "
        f"stream (seq {export.first}-{export.last} of {export.name}) does not continue: a "
        "foreign stream. Nothing was written."))


def _store_blobs(blobs: _Blobs | None, export: Export) -> int:
    """Store the export's blobs the target lacks whole (each durable when `put` returns);
    how many."""
    if blobs is None:
        return 0
    stored = 0
    for name, data in export.blobs.items():
        if _blob(blobs, name) is not None:
            continue  # already there, whole
        if blobs.put(data) != name:  # a bug: read_export checked every name
            raise AssertionError("a blob was stored under another name")
        stored += 1
    return stored


def _append(log: _Log, todo: list[tuple[list[Any], bytes, bytes]], export: Export) -> None:
    """The records, in batches of at most CHUNK_BYTES (one append each), each appended
    batch's hashes checked against the stream's."""
    batch: list[tuple[list[Any], bytes, bytes]] = []
    size = 0
    for item in todo:
        if batch and size + len(item[1]) > CHUNK_BYTES:
            _append_batch(log, batch)
            batch, size = [], 0
        batch.append(item)
        size += len(item[1])
    if batch:
        _append_batch(log, batch)


def _append_batch(log: _Log, batch: list[tuple[list[Any], bytes, bytes]]) -> None:
    pending = [PendingEvent(StoredEvent(c[2], c[3], c[7]), c[1], c[4], c[5], c[6])
               for c, _, _ in batch]
    records = log.append(pending)
    if [r.hash for r in records] != [h for _, _, h in batch]:  # a bug: say it, loudly
        raise AssertionError("an imported event was stored with another chain hash")
