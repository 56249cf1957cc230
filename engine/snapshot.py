"""Snapshots of the folded device state at a seq, with the chain hash they cover.

A snapshot is a cache: opening uses the newest one whose (seq, hash) is still what the log
holds at that seq, then folds only the events after it. If anything does not match (the log
was replaced, the state's shape changed in this build, the file is damaged), the snapshot is
ignored and the whole log is replayed. Tests check snapshot + tail == full replay.

The encoding is msgpack with extension types for dataclasses (by module and name, restricted
to this project's packages, with their exact field names), tuples, read-only mappings, enums
and named tuples — never pickle, so a snapshot cannot run code when it is read.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgpack

from engine.state import DeviceState
from events.filelog import FileEventLog

EVERY = 10_000  # events between snapshots
KEEP = 2
_DATACLASS, _TUPLE, _MAPPING, _ENUM, _NAMEDTUPLE = 1, 2, 3, 4, 6
_PACKAGES = ("engine.", "events.", "projections.")


class SnapshotMismatch(Exception):
    """The snapshot does not fit this build or this log; replay from the start instead."""


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):  # a NamedTuple (Change)
        ncls = type(obj)
        return msgpack.ExtType(_NAMEDTUPLE, _pack([ncls.__module__, ncls.__qualname__,
                                                   list(obj)]))
    if isinstance(obj, enum.Enum):
        ecls = type(obj)
        return msgpack.ExtType(_ENUM, _pack([ecls.__module__, ecls.__qualname__, obj.value]))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return msgpack.ExtType(_DATACLASS, _pack([cls.__module__, cls.__qualname__, fields]))
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    if isinstance(obj, (dict, MappingProxyType)):
        return msgpack.ExtType(_MAPPING, _pack(list(obj.items())))
    raise TypeError(f"cannot snapshot {type(obj).__name__}")


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, strict_types=True,  # type: ignore[no-any-return]
                         use_bin_type=True)


def _class(module: str, qualname: str) -> Any:
    if not module.startswith(_PACKAGES):
        raise SnapshotMismatch(f"class {module}.{qualname} is not ours")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _ext(code: int, data: bytes) -> Any:
    raw = _unpack(data)
    if code == _TUPLE:
        return tuple(raw)
    if code == _MAPPING:
        return MappingProxyType(dict(raw))
    if code == _NAMEDTUPLE:
        ncls = _class(raw[0], raw[1])
        if not (isinstance(ncls, type) and issubclass(ncls, tuple)):
            raise SnapshotMismatch(f"{raw[1]} is not a named tuple")
        return ncls(*raw[2])
    if code == _ENUM:
        return _class(raw[0], raw[1])(raw[2])
    if code == _DATACLASS:
        cls = _class(raw[0], raw[1])
        names = {f.name for f in dataclasses.fields(cls)}
        if set(raw[2]) != names:
            raise SnapshotMismatch(f"{raw[1]} fields changed")
        return cls(**raw[2])
    raise SnapshotMismatch(f"unknown extension {code}")


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext, raw=False, strict_map_key=False)


def encode(state: DeviceState, head: tuple[int, bytes]) -> bytes:
    return _pack({"v": 1, "seq": head[0], "hash": head[1], "state": state})


def decode(data: bytes) -> tuple[int, bytes, DeviceState]:
    try:
        raw = _unpack(data)
    except SnapshotMismatch:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, ImportError,
            msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise SnapshotMismatch(f"undecodable snapshot: {e}") from e
    if not isinstance(raw, dict) or raw.get("v") != 1 or not isinstance(raw.get("state"),
                                                                        DeviceState):
        raise SnapshotMismatch("not a version-1 device snapshot")
    return raw["seq"], raw["hash"], raw["state"]


def save(directory: Path, state: DeviceState, head: tuple[int, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{head[0]:020d}.snap"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # as private as the log
    with os.fdopen(fd, "wb") as f:
        f.write(encode(state, head))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in sorted(directory.glob("*.snap"))[:-KEEP]:
        old.unlink()
    return path


def newest_seq(directory: Path) -> int:
    """The seq of the newest snapshot file (0 if none): how far the log is known to reach."""
    seqs = [int(p.stem) for p in directory.glob("*.snap") if p.stem.isdigit()] \
        if directory.exists() else []
    return max(seqs, default=0)


def load(directory: Path, log: FileEventLog) -> DeviceState | None:
    """The newest snapshot that still matches the log, or None."""
    head_seq = log.head[0]
    for path in sorted(directory.glob("*.snap"), reverse=True) if directory.exists() else []:
        try:
            seq, digest, state = decode(path.read_bytes())
        except SnapshotMismatch:
            continue
        if seq > head_seq or seq != state.seq:
            continue
        if seq == 0:
            return state
        row = next(iter(log.read_rows(seq)), None)
        if row is not None and row[0] == seq and row[8] == digest:
            return state
    return None
