"""The event store port: what every log (file, memory, PostgreSQL) promises.

A command's events are appended as one batch: all of them become durable, or none. Each stored
event is wrapped in a `Recorded` envelope whose `hash` is SHA-256 over the previous event's hash
and the event's own encoding, so the log is a hash chain an auditor can verify end to end.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from events.codec import encode_core
from events.registry import Event, event_from, payload_of

GENESIS = bytes(32)
"""The `prev` of the first event of a log."""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event about to be appended, with its context (who, when, which command)."""

    event: Event
    stream: str
    at: int  # microseconds since the epoch, from the engine clock
    actor: str = ""
    correlation: str = ""


class StoredEvent(Event):
    """An event exactly as another log stored it (`type`, `v`, `payload` as read back), to be
    appended with the same core bytes, hence the same chain hash (`trustledger log import`):
    never upcast, never rebuilt. A store's `seal` writes its fields as they are."""

    __slots__ = ("name", "payload", "v")

    def __init__(self, name: str, v: int, payload: dict[str, Any]) -> None:
        self.name, self.v, self.payload = name, v, payload


class Recorded(NamedTuple):
    """One event as stored: the envelope `{seq, stream, type, v, at, actor, correlation,
    payload, prev, hash}` of DESIGN.md.

    A named tuple rather than a dataclass: the log makes one per event on every append and
    read, and a tuple is built in a quarter of the time. `cache` holds the typed event once
    known; it takes no part in equality."""

    seq: int
    stream: str
    type: str
    v: int
    at: int
    actor: str
    correlation: str
    payload: dict[str, Any]
    prev: bytes
    hash: bytes
    cache: list[Event] | None = None

    @property
    def event(self) -> Event:
        """The typed event (current schema version; upcast if stored older)."""
        cache = self.cache
        if cache:
            return cache[0]
        ev = event_from(self.type, self.v, self.payload)
        if cache is not None:
            cache.append(ev)
        return ev

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Recorded):
            return NotImplemented
        return self[:10] == other[:10]

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self[:10])

    def core(self) -> list[Any]:
        return [self.seq, self.stream, self.type, self.v, self.at, self.actor, self.correlation,
                self.payload]

    def expected_hash(self) -> bytes:
        return chain_hash(self.prev, encode_core(self.core()))


def chain_hash(prev: bytes, core: bytes) -> bytes:
    return hashlib.sha256(prev + core).digest()


def seal(pending: Sequence[PendingEvent], first_seq: int, prev: bytes) -> list[Recorded]:
    """Number and hash-chain a batch of pending events after `prev`."""
    return seal_encoded(pending, first_seq, prev)[0]


def seal_encoded(pending: Sequence[PendingEvent], first_seq: int,
                 prev: bytes) -> tuple[list[Recorded], list[bytes]]:
    """`seal`, also giving each event's encoded core (the bytes its hash covers), so a store
    can write them without encoding every event a second time."""
    out: list[Recorded] = []
    cores: list[bytes] = []
    seq = first_seq
    for p in pending:
        rec, core = seal_one(p, seq, prev)
        out.append(rec)
        cores.append(core)
        prev = rec.hash
        seq += 1
    return out, cores


def seal_one(p: PendingEvent, seq: int, prev: bytes,
             sha256: Callable[[bytes], Any] = hashlib.sha256) -> tuple[Recorded, bytes]:
    """One event numbered `seq` and chained after `prev`: its record and its encoded core,
    `chain_hash` inlined, the record made as `Recorded._make` makes it without its length
    check (11 fields here). `sha256`: which implementation of SHA-256 hashes it
    (`COLD_SHA256`). The file log's one-event append frames it from the core's bytes
    (`events.filelog.sealed_frame`)."""
    ev = p.event
    if type(ev) is StoredEvent:  # an imported event: its stored form, as it was
        typ, v, payload, cache = ev.name, ev.v, ev.payload, []
    else:
        typ, v, payload, cache = ev.type_name, ev.version, payload_of(ev), [ev]
    stream, at, actor, corr = p.stream, p.at, p.actor, p.correlation
    core = encode_core([seq, stream, typ, v, at, actor, corr, payload])
    h = sha256(prev + core).digest()
    return _new(Recorded, (seq, stream, typ, v, at, actor, corr, payload, prev, h, cache)), core


_new = tuple.__new__


def _small_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (`_sha2` from 3.12, `_sha256` before), hashlib's if neither, or
    if OpenSSL runs in FIPS mode (every digest must then come from the validated module)."""
    with contextlib.suppress(ImportError, AttributeError, ValueError):
        if importlib.import_module("_hashlib").get_fips_mode():
            return hashlib.sha256
    for name in ("_sha2", "_sha256"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
    return hashlib.sha256


COLD_SHA256 = _small_sha256()
"""The SHA-256 for an append that is synced at once (one command, one fdatasync): the same
digest as hashlib's, from CPython's small built-in implementation instead of OpenSSL's EVP
layer. Hot, in a loop, OpenSSL is faster (0.35 against 1.0 us for a chain hash); but after the
writer slept in fdatasync, on a shared machine whose other processes evicted the caches, one
OpenSSL call cost 12-14 us of CPU and the built-in one ~6 (measured after 2 ms sleeps; a
one-event commit paid ~10 us less in all: issue 18's commit row). Group commits and batches
keep hashlib's."""


class EventStore(Protocol):
    """The port. Sequence numbers start at 1 and have no gaps."""

    @property
    def head(self) -> tuple[int, bytes]:
        """(seq of the last durable event, its hash); (0, GENESIS) when empty."""
        ...

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]:
        """Append one atomic batch; returns once it is durable."""
        ...

    def read(self, from_seq: int = 1) -> Iterator[Recorded]:
        """Stream events from `from_seq` on, in order, in constant memory."""
        ...

    def close(self) -> None: ...
