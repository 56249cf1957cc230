"""Snapshots of the folded device state at a seq, with the chain hash they cover.

A snapshot is a cache, never a source of truth: opening uses the newest one that passes every
check below, then folds only the events after it. Anything that fails a check is ignored with a
warning (`Ignored`, shown as `%LOG-4-SNAPSHOT_IGNORED`) and the state is rebuilt from the log.

File format (version 3), `snapshots/<seq, 20 digits>.snap`, mode 0600:

    magic   8 bytes   b"TLSNAP\\x00\\x03"
    seq     8 bytes   big-endian: the last event folded into the state
    hash   32 bytes   the log's chain hash at that seq
    digest 32 bytes   SHA-256(magic | seq | hash | folds | position | body)
    folds  32 bytes   `engine.state.FOLDS_FINGERPRINT` of the build that wrote it
    position 16 bytes where the frames after seq start in the log: the first seq of their
                      segment and the byte offset in it (both u64; 0 0: not recorded)
    body    the rest  msgpack of the state, encoded through the closed type table

Rules, in the order `read` checks them:
1. The digest is checked before a single byte of the body is decoded: a damaged file (a flipped
   byte, a truncation) is ignored without being parsed. The digest binds the body to the
   (seq, hash) it claims to cover, and `load` binds that pair to the log.
2. The folds fingerprint is this build's: a snapshot folded by other folds (a changed event
   version, or a fold fix marked by bumping `FOLD_VERSION`) would decode into a state that
   this build's folds would not produce, so it is ignored and rebuilt, never reused.
3. Types come only from `TABLE` (tag -> class), declared here. A class instance is stored as
   `[tag, {field: value}]`, an enum member as `[tag, value]`; nothing is imported, looked up by
   name or called because the file says so. Decoding is driven by the declared type hints of
   `DeviceState` and the table's classes: each value must have exactly the hinted type (no
   floats, no extension types, no extra or missing fields, the tag of the hinted class), or
   the snapshot is ignored. Decoding builds frozen dataclasses, named tuples, enum members
   (by value), tuples and read-only mappings: nothing else.
4. The state's own seq equals the header's, the file name's, and the log continues that seq
   and chain hash at the recorded position: the frame there starts at seq + 1 and its first
   row chains from the header's hash (`FileEventLog.tail`, which then checks the hash chain
   of the whole tail from the stored bytes while the engine folds it). Opening thus reads
   the snapshot and the tail, nothing else. Without a recorded position the log is searched
   for the event at seq, as version 2 did.

Retention: the newest KEEP snapshots, and of older ones the newest in each SPAN of seqs, for
the newest SPANS spans (`replay --until SEQ` starts from the newest snapshot at or before SEQ,
so an audit of the recent past folds at most about SPAN events).

What the digest does not stop: it is keyed by nothing secret, so someone who can write the data
directory can write a snapshot whose state lies, with a correct digest. We do not add an HMAC
keyed from the master key: `master.key` usually sits in the same directory (whoever hands over
the directory hands over the key), it does not exist until the first key is generated, and it
may come from the environment instead, so snapshot validity would depend on where the process
runs. What we guarantee instead: (a) reading a snapshot cannot run code or build anything but
the declared state types (rule 2), so the worst a hand-made snapshot can do is what a hand-made
log can do, since the hash chain is keyed by nothing secret either; (b) `trustledger log verify`
folds the log to every snapshot's seq and reports any snapshot whose state differs (`verify`).

Writes are atomic and never fail a command: temp name, write, fsync, rename, fsync the
directory. Any OSError on the way removes what was written and is raised to the engine, which
logs it and carries on (the events are already durable; the next open folds more of the log).
Leftover `*.tmp` files of an interrupted write are removed when a writer opens the directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import os
import struct
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgpack

import engine.commands  # noqa: F401  (registers every feature's folds: verify() replays)
from engine.audit.key import AuditKey
from engine.config import Change, ConfigTree, Node
from engine.devicelog import DeviceLog
from engine.keys import ImportedKey, KeyAlgorithm, KeyPair, KeyRing, KeyUsage
from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.machines.trustpool import UpdateTimer
from engine.revocation.cache import CrlCache
from engine.revocation.model import CachedCrl
from engine.state import FOLDS_FINGERPRINT, Commit, CommitHistory, DeviceState, replay_rows
from engine.trustpoints import (
    Enrollment,
    RenewalState,
    RolloverState,
    RouterCertificate,
    TrustpointConfig,
    TrustpointStatus,
)
from engine.trustpool.pool import PoolCert, TrustpoolState, UpdateRecord
from engine.validation.folded import ValidationState
from events.durable import fsync_directory, write_all
from events.filelog import Position, TailMismatch

EVERY = 10_000  # events between snapshots
KEEP = 2  # the newest ones, always kept
SPAN = 100_000  # older ones: the newest in each span of this many seqs ...
SPANS = 10  # ... for this many spans
MAGIC = b"TLSNAP\x00\x03"
_HEADER = struct.Struct(">8sQ32s32s32sQQ")  # magic, seq, hash, digest, folds, position
HEADER_SIZE = _HEADER.size
MAX_DEPTH = 64  # nesting of configuration nodes (real configurations nest 2 or 3 deep)

TABLE: Mapping[str, type] = types.MappingProxyType({cls.__name__: cls for cls in (
    DeviceState, ConfigTree, Node, Commit, CommitHistory, Change, KeyRing, KeyPair, ImportedKey,
    KeyAlgorithm, KeyUsage, TrustpointStatus, TrustpointConfig, RouterCertificate, Enrollment,
    Lifecycle, RenewalState, RolloverState, RenewalPhase, TrustpoolState, PoolCert, UpdateRecord,
    UpdateTimer, CrlCache, CachedCrl, ValidationState, AuditKey,
)})
"""Every type a snapshot may hold, by the tag it is stored under: its class name. Add a state
type here (a test fails until you do: it walks DeviceState's type hints)."""
_TAG_OF: Mapping[type, str] = {cls: tag for tag, cls in TABLE.items()}


class SnapshotMismatch(Exception):
    """The snapshot does not fit this build or this log; replay from the start instead."""


class LogBehind(Exception):
    """The newest intact snapshot covers seq `seq`, beyond the log's last event: acknowledged
    events are missing from the log (opening refuses, whether snapshots are used or not)."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"a snapshot of seq {seq} exists beyond the log's end")
        self.seq = seq


class SnapshotUnencodable(TypeError):
    """The state holds a value whose type is not in TABLE (a bug: add the type)."""


@dataclass(frozen=True)
class Ignored:
    """A snapshot file that opening did not use, and why."""

    path: Path
    reason: str

    def render(self) -> str:
        return (f"%LOG-4-SNAPSHOT_IGNORED: {self.path}: {self.reason}; "
                "rebuilding the state from the log")


@dataclass(frozen=True)
class Snapshot:
    """A saved state: the seq and chain hash it was folded to, where its tail starts."""

    seq: int
    chain_hash: bytes
    state: DeviceState
    position: Position | None = None  # where the frames after seq start (None: not recorded)


# -- the type schema ---------------------------------------------------------------------------

Decoder = Callable[[Any, int], Any]


_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, hint) of a table class's fields, hints resolved (DeviceState names
    TrustpointStatus only under TYPE_CHECKING, hence the local namespace). Resolved once per
    class, when a snapshot first decodes or encodes one: evaluating the hints is most of what
    building a decoder costs, and a `show` opened from a snapshot resolves only the classes
    that snapshot holds (issue 12's start-up row)."""
    if cls not in _FIELDS:
        hints = typing.get_type_hints(cls, localns=dict(TABLE))
        names = ([f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls)
                 else cls._fields)  # type: ignore[attr-defined]
        _FIELDS[cls] = tuple((name, hints[name]) for name in names)
    return _FIELDS[cls]


def _decoder(hint: Any) -> Decoder:
    """A function checking one raw msgpack value against `hint` and building the value."""
    if hint in (int, str, bytes, bool):
        return _scalar(hint)
    if hint is type(None):
        return _scalar(type(None))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        rest = [a for a in args if a is not type(None)]
        if len(args) != 2 or len(rest) != 1:
            raise TypeError(f"snapshot schema: only `X | None` unions, not {hint}")
        inner = _decoder(rest[0])
        return lambda raw, depth: None if raw is None else inner(raw, depth)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _decoder(args[0])
        return lambda raw, depth: tuple(item(x, depth) for x in _typed(raw, list))
    if origin is tuple and args and Ellipsis not in args:
        return _fixed_tuple([_decoder(a) for a in args])
    if origin is Mapping:
        key, value = _decoder(args[0]), _decoder(args[1])
        return lambda raw, depth: types.MappingProxyType(
            {key(k, depth): value(v, depth) for k, v in _typed(raw, dict).items()})
    if hint in _TAG_OF:
        # Looked up when called: built at first use, and Node's decoder is being built when
        # its children ask for it.
        return lambda raw, depth: _decoder_of(hint)(raw, depth)  # noqa: PLW0108
    raise TypeError(f"snapshot schema: {hint} is not in snapshot.TABLE")


def _fixed_tuple(items: list[Decoder]) -> Decoder:
    """`tuple[A, B]`: an array of exactly that many values, each of its own type."""

    def decode(raw: Any, depth: int) -> tuple[Any, ...]:
        values = _typed(raw, list)
        if len(values) != len(items):
            raise SnapshotMismatch(f"{len(values)} values where {len(items)} were expected")
        return tuple(item(value, depth) for item, value in zip(items, values, strict=True))

    return decode


def _typed(raw: Any, kind: type) -> Any:
    if type(raw) is not kind:
        raise SnapshotMismatch(f"{type(raw).__name__} where {kind.__name__} was expected")
    return raw


def _scalar(kind: type) -> Decoder:
    return lambda raw, depth: _typed(raw, kind)


def _tagged(raw: Any, cls: type) -> Any:
    """The payload of `[tag, payload]`, if tag names `cls`."""
    if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not str:
        raise SnapshotMismatch(f"not a tagged {cls.__name__}")
    if raw[0] not in TABLE:
        raise SnapshotMismatch(f"unknown tag {raw[0][:40]!r}")
    if TABLE[raw[0]] is not cls:
        raise SnapshotMismatch(f"a {raw[0]} where a {cls.__name__} was expected")
    return raw[1]


def _class_decoder(cls: type) -> Decoder:
    if issubclass(cls, enum.Enum):
        by_value = {m.value: m for m in cls}

        def member(raw: Any, depth: int) -> Any:
            value = _tagged(raw, cls)
            if type(value) not in (str, int) or value not in by_value:
                raise SnapshotMismatch(f"no {cls.__name__} member {str(value)[:40]!r}")
            return by_value[value]

        return member
    fields = {name: _decoder(hint) for name, hint in _fields(cls)}

    def instance(raw: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise SnapshotMismatch("nested too deep")
        values = _typed(_tagged(raw, cls), dict)
        if values.keys() != fields.keys():
            raise SnapshotMismatch(f"{cls.__name__} fields differ from this build's")
        return cls(**{name: fields[name](values[name], depth + 1) for name in fields})

    return instance


_DECODERS: dict[type, Decoder] = {}


def _decoder_of(cls: type) -> Decoder:
    """The decoder of a TABLE class, built at its first use: a class the snapshot being read
    holds no instance of is never looked at."""
    found = _DECODERS.get(cls)
    if found is None:
        found = _DECODERS[cls] = _class_decoder(cls)
    return found


def reachable_types(root: type = DeviceState) -> set[type]:
    """Every class named in `root`'s type hints, transitively (what TABLE must hold)."""
    found: set[type] = set()
    todo: list[Any] = [root]
    while todo:
        hint = todo.pop()
        args = typing.get_args(hint)
        if args:
            todo.extend(a for a in args if a is not Ellipsis)
        elif isinstance(hint, type) and hint not in found and hint.__module__ != "builtins":
            found.add(hint)
            if not issubclass(hint, enum.Enum):
                todo.extend(h for _, h in _fields(hint))
    return found


# -- encoding ------------------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """`obj` as plain msgpack values: table classes tagged, tuples as arrays, mappings as maps."""
    tag = _TAG_OF.get(type(obj))
    if tag is not None:
        if isinstance(obj, enum.Enum):
            return [tag, obj.value]
        return [tag, {name: _plain(getattr(obj, name)) for name, _ in _fields(type(obj))}]
    if obj is None or type(obj) in (int, str, bytes, bool):
        return obj
    if type(obj) is tuple:
        return [_plain(x) for x in obj]
    if isinstance(obj, (dict, types.MappingProxyType)):
        return {k: _plain(v) for k, v in obj.items()}
    raise SnapshotUnencodable(f"cannot snapshot a {type(obj).__qualname__}: not in "
                              "snapshot.TABLE")


def _digest(seq: int, chain_hash: bytes, folds: bytes, where: tuple[int, int],
            body: bytes) -> bytes:
    return hashlib.sha256(MAGIC + seq.to_bytes(8, "big") + chain_hash + folds
                          + where[0].to_bytes(8, "big") + where[1].to_bytes(8, "big")
                          + body).digest()


def encode(state: DeviceState, head: tuple[int, bytes], position: Position | None = None
           ) -> bytes:
    body: bytes = msgpack.packb(_plain(state), use_bin_type=True)
    return frame(head[0], head[1], body, position)


def frame(seq: int, chain_hash: bytes, body: bytes, position: Position | None = None
          ) -> bytes:
    """A snapshot file: the header (with the digest binding `body` to seq, hash and
    position), then `body`."""
    folds = FOLDS_FINGERPRINT
    where = (position.segment, position.offset) if position is not None else (0, 0)
    return _HEADER.pack(MAGIC, seq, chain_hash, _digest(seq, chain_hash, folds, where, body),
                        folds, *where) + body


# -- decoding ------------------------------------------------------------------------------------


Sealed = tuple[int, bytes, Position | None, bytes]  # seq, chain hash, position, body


def _unseal(data: bytes) -> Sealed:
    """(seq, chain hash, position, body) of a file whose magic and digest check out."""
    if len(data) < _HEADER.size or data[:len(MAGIC)] != MAGIC:
        raise SnapshotMismatch("not a version-3 snapshot (damaged, or from another build)")
    _, seq, chain_hash, digest, folds, segment, offset = _HEADER.unpack_from(data)
    body = data[_HEADER.size:]
    if _digest(seq, chain_hash, folds, (segment, offset), body) != digest:
        raise SnapshotMismatch("its digest does not match its content (damaged)")
    if folds != FOLDS_FINGERPRINT:
        raise SnapshotMismatch("written by a build whose folds differ (an event version or "
                               "FOLD_VERSION changed)")
    return seq, chain_hash, Position(segment, offset) if segment else None, body


def decode(data: bytes) -> Snapshot:
    """The snapshot in `data`, or SnapshotMismatch saying why not (never anything else)."""
    return _decode_body(*_unseal(data))


def _decode_body(seq: int, chain_hash: bytes, position: Position | None,
                 body: bytes) -> Snapshot:
    """The snapshot of an unsealed file (`_unseal`: magic and digest checked)."""
    try:
        raw = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
        state = _decoder_of(DeviceState)(raw, 0)
    except SnapshotMismatch:
        raise
    except Exception as e:  # untrusted bytes: any failure to decode means "ignore it"
        raise SnapshotMismatch(f"undecodable state ({type(e).__name__})") from e
    if state.seq != seq:
        raise SnapshotMismatch(f"its state is at seq {state.seq}, its header says {seq}")
    return Snapshot(seq, chain_hash, state, position)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SnapshotMismatch(f"unreadable ({e.strerror})") from e


def _check_name(path: Path, seq: int) -> None:
    if not path.stem.isdigit() or int(path.stem) != seq:
        raise SnapshotMismatch(f"its name does not match the seq {seq} it covers")
    if seq == 0:
        raise SnapshotMismatch("it covers no event (seq 0)")


def _unseal_file(path: Path) -> Sealed:
    """(seq, chain hash, position, body) of the file at `path`, read once: magic, digest and
    name checked, the body not yet decoded."""
    sealed = _unseal(_read_bytes(path))
    _check_name(path, sealed[0])
    return sealed


def read(path: Path) -> Snapshot:
    return _decode_body(*_unseal_file(path))


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.snap")) if directory.is_dir() else []


def newest_seq(directory: Path) -> int:
    """The seq of the newest intact snapshot (0 if none): how far the log is known to reach.
    A file whose digest fails proves nothing and is passed over."""
    for path in reversed(_files(directory)):
        with contextlib.suppress(SnapshotMismatch):
            return _unseal_file(path)[0]
    return 0


Rows = Iterator[Sequence[Any]]


def _tail(snap: Snapshot, log: DeviceLog) -> Rows:
    """The log's rows after `snap`, or SnapshotMismatch if the log does not continue it."""
    if snap.position is not None:
        try:
            return log.tail(snap.position, snap.seq, snap.chain_hash, typed=True)
        except TailMismatch as e:
            raise SnapshotMismatch(str(e)) from None
    row = next(iter(log.read_rows(snap.seq)), None)  # no recorded position: search
    if row is None or row[0] != snap.seq:
        raise SnapshotMismatch(f"it covers seq {snap.seq}, but the log ends at seq "
                               f"{log.head[0]}")
    if row[8] != snap.chain_hash:
        raise SnapshotMismatch(f"it covers seq {snap.seq} of another log (the chain hash "
                               "differs)")
    return log.read_rows(snap.seq + 1, typed=True)


def load(directory: Path, log: DeviceLog, ignored: list[Ignored] | None = None
         ) -> DeviceState | None:
    """The state of the newest snapshot that passes every check against `log`, or None."""
    found = load_with_tail(directory, log, ignored)
    return None if found is None else found[0]


def load_with_tail(directory: Path, log: DeviceLog, ignored: list[Ignored] | None = None,
                   upto: int | None = None) -> tuple[DeviceState, Rows] | None:
    """The newest snapshot (at or before seq `upto`, if given) that passes every check
    against `log`, with the log's rows after it (typed, for `replay_rows`); None if there
    is none. Each snapshot passed
    over on the way is added to `ignored`. Each file is read and hashed once: the newest
    intact one (digest and name, as `newest_seq` finds it) says how far the log is known to
    reach, and LogBehind if the log ends before that."""
    reach = 0
    for path in reversed(_files(directory)):
        try:
            sealed = _unseal_file(path)
            if not reach:
                reach = sealed[0]
                if reach > log.head[0]:
                    raise LogBehind(reach)
            if upto is not None and sealed[0] > upto:
                continue
            snap = _decode_body(*sealed)
            return snap.state, _tail(snap, log)
        except SnapshotMismatch as e:
            if ignored is not None:
                ignored.append(Ignored(path, str(e)))
    return None


# -- `trustledger log verify` ------------------------------------------------------------------


class Check(NamedTuple):
    """`snapshot.verify`'s finding for one snapshot file. (A NamedTuple: every open defines
    it, and a frozen dataclass costs ~0.3 ms to define; issue 12.)"""

    path: Path
    seq: int | None
    problem: str | None  # None: it is exactly the log folded to `seq`


def verify(directory: Path, log: DeviceLog) -> list[Check]:
    """Check every snapshot against the log, folding the log once up to each snapshot's seq."""
    checks: list[Check] = []
    good: list[tuple[int, Path, Snapshot]] = []
    for path in _files(directory):
        try:
            snap = read(path)
        except SnapshotMismatch as e:
            checks.append(Check(path, None, str(e)))
            continue
        good.append((snap.seq, path, snap))
    state, rows, last = DeviceState(), iter(log.read_rows(1, typed=True)), [None]
    for seq, path, snap in sorted(good, key=lambda g: g[0]):
        if seq > state.seq:
            state = replay_rows(state, _rows_upto(rows, seq, last))
        row = last[0]
        if row is None or row[0] != seq:
            problem = f"it covers seq {seq}, but the log ends at seq {state.seq}"
        elif row[8] != snap.chain_hash:
            problem = f"it covers seq {seq} of another log (the chain hash differs)"
        elif snap.state != state:
            problem = f"its state differs from the log folded to seq {seq}"
        else:
            problem = None
        checks.append(Check(path, seq, problem))
    return sorted(checks, key=lambda c: c.path)


def _rows_upto(rows: Rows, seq: int, last: list[Any]) -> Rows:
    """Rows from `rows` through `seq` (consuming nothing after it); `last[0]` is the last."""
    for row in rows:
        last[0] = row
        yield row
        if row[0] >= seq:
            return


# -- writing -------------------------------------------------------------------------------------


def save(directory: Path, state: DeviceState, head: tuple[int, bytes],
         position: Position | None = None) -> Path:
    """Write a snapshot atomically and prune old ones (`pruned`). An OSError leaves nothing
    behind. `position`: where the log's frames after the head start (`FileEventLog.position`)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{head[0]:020d}.snap"
    tmp = directory / f"{head[0]:020d}.tmp"
    data = encode(state, head, position)
    written = tmp
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
        written = path  # not known to be durable until the directory is synced
        fsync_directory(directory)
    except OSError:
        with contextlib.suppress(OSError):
            written.unlink()
        raise
    for old in pruned(_files(directory)):
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def pruned(files: list[Path]) -> list[Path]:
    """The snapshot files (sorted, oldest first) that retention drops: all but the newest
    KEEP and, among older ones, the newest of each of the newest SPANS spans of SPAN seqs."""
    older = files[:-KEEP] if KEEP else files
    kept_spans: set[int] = set()
    drop = []
    for path in reversed(older):
        span = int(path.stem) // SPAN if path.stem.isdigit() else -1
        if span < 0 or span in kept_spans or len(kept_spans) >= SPANS:
            drop.append(path)
        else:
            kept_spans.add(span)
    return sorted(drop)


def _write_file(path: Path, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)



def remove_leftovers(directory: Path) -> None:
    """Remove the temp files of snapshot writes a crash interrupted (writers only)."""
    for tmp in directory.glob("*.tmp") if directory.is_dir() else ():
        with contextlib.suppress(OSError):
            tmp.unlink()
