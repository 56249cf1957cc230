"""The audit bundle and its verifier: what `trustledger audit export` writes and `audit verify`
checks with nothing but the log's public audit key (no data directory, no keystore, no
network).

Format (version 1): four text lines, then the signed checkpoint, then the events, each the
exact bytes the log's hash chain covers:

    trustledger-audit-bundle v1\\n
    key <the audit key, C2SP verifier key form>\\n
    events <N>\\n
    checkpoint <length of the signed note in bytes>\\n
    <the signed note: the checkpoint of tree size N>
    N times: <u32 big-endian length> <the event's encoded core (msgpack)> <its 32-byte chain hash>

The key line only says which key the exporter used; the verifier trusts the key it is given.

What `verify_bundle` checks, in order, stopping at the first failure (the report names it and,
for an event, its seq):
1. the checkpoint is signed by the given key and names its origin;
2. an older checkpoint the auditor kept, if given: signed by the same key, and not larger than
   this one (a smaller tree now means the log was cut back);
3. the bundle holds as many events as the checkpoint covers;
4. every event, in order: its core says the seq it stands at, and SHA-256(previous hash || core)
   is the chain hash stored with it (an edited event, or an edited hash, fails here);
5. the Merkle tree over the chain hashes (RFC 9162 §2.1) has the signed root (a history
   rewritten with a recomputed chain fails here: the signature covers the root), and at the
   older checkpoint's size the older root. With every event at hand the older tree is
   rebuilt, not proven: that is what a consistency proof shows to someone without them;
6. given witness keys (`--witness-key`), each witness's cosignature on the checkpoint (C2SP
   tlog-cosignature/v1): a witness co-signs only a tree that extends every one it co-signed
   before, so a history rewritten after it saw it has none.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from engine.audit.checkpoint import Checkpoint, parse_checkpoint
from engine.audit.merkle import CompactRange, leaf_hash
from engine.audit.note import Ed25519Verifier, NoteError, Verifier, verify_note

MAGIC = b"trustledger-audit-bundle v1\n"
_LEN = struct.Struct(">I")
GENESIS = bytes(32)  # the `prev` of a log's first event (events.store.GENESIS)


class BundleError(ValueError):
    """A bundle that does not parse."""


@dataclass(frozen=True)
class Bundle:
    key: str
    note: bytes
    count: int
    body: memoryview  # the event records

    def events(self) -> Iterator[tuple[bytes, bytes]]:
        """`(core, chain hash)` of each event; BundleError if the records are cut short."""
        body, pos, unpack = self.body, 0, _LEN.unpack_from
        for _ in range(self.count):
            if pos + 4 > len(body):
                raise BundleError("the bundle ends inside its events")
            (n,) = unpack(body, pos)
            end = pos + 4 + n
            if end + 32 > len(body):
                raise BundleError("the bundle ends inside its events")
            yield bytes(body[pos + 4:end]), bytes(body[end:end + 32])
            pos = end + 32
        if pos != len(body):
            raise BundleError("the bundle holds bytes after its last event")


def bundle_header(key: str, note: bytes, count: int) -> bytes:
    return (MAGIC + f"key {key}\nevents {count}\ncheckpoint {len(note)}\n".encode() + note)


def bundle_record(core: bytes, chain: bytes) -> bytes:
    return _LEN.pack(len(core)) + core + chain


def parse_bundle(data: bytes) -> Bundle:
    if not data.startswith(MAGIC):
        raise BundleError("not a trustledger audit bundle (bad first line)")
    pos = len(MAGIC)
    fields: list[str] = []
    for word in ("key", "events", "checkpoint"):
        end = data.find(b"\n", pos)
        line = data[pos:end].decode("utf-8", "replace") if end >= 0 else ""
        name, _, value = line.partition(" ")
        if name != word or not value:
            raise BundleError(f"the bundle's '{word}' line is missing")
        fields.append(value)
        pos = end + 1
    key, count_text, note_len = fields
    if not count_text.isdigit() or not note_len.isdigit():
        raise BundleError("the bundle's event count or checkpoint length is not a number")
    note_end = pos + int(note_len)
    if note_end > len(data):
        raise BundleError("the bundle ends inside its checkpoint")
    return Bundle(key, data[pos:note_end], int(count_text), memoryview(data)[note_end:])


@dataclass
class Report:
    """What `verify_bundle` found: the lines to print, and the first failure (None: all
    holds)."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def text(self) -> str:
        rows = [*self.lines, ("FAILED" if self.failure else "verified",
                              self.failure or "OK: every check holds")]
        return "".join(f"{name:<11}: {value}\n" for name, value in rows)


class _Failed(Exception):
    """The first check that does not hold: its text is the report's FAILED line."""


def _signed(note: bytes, key: Ed25519Verifier, what: str) -> Checkpoint:
    try:
        text, _ = verify_note(note, [key])
        cp = parse_checkpoint(text)
    except NoteError as e:
        raise _Failed(f"{what}: {e}") from None
    if cp.origin != key.name:
        raise _Failed(f"{what}: its origin {cp.origin!r} is not the key's name {key.name!r}")
    return cp


def _root(root: bytes) -> str:
    return base64.b64encode(root).decode()


def verify_bundle(data: bytes, key: Ed25519Verifier, older: bytes | None = None,
                  witnesses: Sequence[Verifier] = ()) -> Report:
    """Check a bundle (module docstring); never raises for bad input. `witnesses`: each must
    have co-signed the checkpoint (C2SP tlog-cosignature)."""
    report = Report()
    try:
        _verify(data, key, older, report)
        _witnessed(parse_bundle(data).note, witnesses, report)
    except _Failed as e:
        report.failure = str(e)
    except BundleError as e:
        report.failure = f"bundle: {e}"
    return report


def _verify(data: bytes, key: Ed25519Verifier, older: bytes | None, report: Report) -> None:
    report.lines.append(("key", f"{key.name} ({key.key_id.hex()})"))
    bundle = parse_bundle(data)
    cp = _signed(bundle.note, key, "checkpoint")
    report.lines.append(("checkpoint", f"tree size {cp.size}, root {_root(cp.root)}: "
                                       "signature OK"))
    old = _signed(older, key, "older checkpoint") if older is not None else None
    if old is not None:
        if old.size > cp.size:
            raise _Failed(f"older checkpoint: it covers tree size {old.size}, this one only "
                          f"{cp.size}: the log was cut back (events {cp.size + 1}-{old.size} "
                          "are gone)")
        report.lines.append(("older", f"tree size {old.size}, root {_root(old.root)}: "
                                      "signature OK"))
    if bundle.count != cp.size:
        raise _Failed(f"bundle: it holds {bundle.count} events, the checkpoint covers "
                      f"{cp.size}")
    rng = _check_events(bundle, old)
    report.lines.append(("events", f"{bundle.count}, seq 1-{bundle.count}: hash chain OK"))
    if rng.root() != cp.root:
        raise _Failed(f"tree: the events' root is {_root(rng.root())}, the checkpoint signed "
                      f"{_root(cp.root)}: these are not the events that were signed (a "
                      "history rewritten with its hash chain recomputed)")
    report.lines.append(("tree", "root matches the checkpoint"))
    if old is not None:
        report.lines.append(("consistency", f"tree size {old.size} is a prefix of tree size "
                                            f"{cp.size}"))


def _witnessed(note: bytes, witnesses: Sequence[Verifier], report: Report) -> None:
    """6. each witness's cosignature on the checkpoint verifies (after the log's own)."""
    for w in witnesses:
        try:
            verify_note(note, [w])
        except NoteError as e:
            raise _Failed(f"witness {w.name}: no valid cosignature on the checkpoint ({e}): "
                          "the witness did not see this log reach this tree") from None
        report.lines.append(("witness", f"{w.name}: cosignature OK"))


def _check_events(bundle: Bundle, old: Checkpoint | None) -> CompactRange:
    """Steps 4 and 5 of the module docstring over every event: the tree they make."""
    rng = CompactRange()
    if old is not None and old.size == 0 and old.root != rng.root():
        raise _Failed("older checkpoint: a tree of size 0 has another root")
    prev, sha256 = GENESIS, hashlib.sha256
    for seq, (core, stored) in enumerate(bundle.events(), 1):
        numbered = core_seq(core)
        if numbered != seq:
            raise _Failed(f"seq {seq}: the event there is numbered {numbered} (an event was "
                          "removed, added or moved)")
        chain = sha256(prev + core).digest()
        if chain != stored:
            raise _Failed(f"seq {seq}: SHA-256(previous hash || event) is not the chain hash "
                          "stored with it: the event (or its hash) was altered")
        rng.append(leaf_hash(chain))
        if old is not None and seq == old.size and rng.root() != old.root:
            raise _Failed(f"seq {seq}: the tree of seq 1-{seq} has root {_root(rng.root())}, "
                          f"the older checkpoint {_root(old.root)}: the log was rewritten at "
                          f"or before seq {seq} since that checkpoint")
        prev = chain
    return rng


def core_seq(core: bytes) -> int | None:
    """The seq an encoded core starts with (a msgpack array whose first item is the seq),
    read from its bytes; None if it does not start that way."""
    if len(core) < 2 or not 0x90 <= core[0] <= 0x9F:
        return None
    tag = core[1]
    if tag < 0x80:
        return tag
    width = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}.get(tag)
    if width is None or len(core) < 2 + width:
        return None
    return int.from_bytes(core[2:2 + width], "big")
