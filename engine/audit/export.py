"""Reading a log for an auditor: its audit key, its recorded checkpoints, proofs against them,
and the export bundle (engine/audit/bundle.py). Read-only: a running device keeps writing
beside these readers, which see what the trail last wrote out (engine/audit/trail.py).

Proof texts:
- inclusion (`audit prove --seq N`): C2SP tlog-proof, `c2sp.org/tlog-proof@v1`, an `extra`
  line holding the event's chain hash (base64: the leaf's data, so the entry proven is named),
  `index N-1` (leaf indexes start at 0, seqs at 1), the RFC 9162 inclusion path (base64, one
  hash a line), a blank line, and the signed checkpoint;
- consistency (`audit prove --from-size A`): the body of a C2SP tlog-witness add-checkpoint
  request: `old A`, the RFC 9162 consistency proof (base64, one a line), a blank line, and the
  signed checkpoint.
"""

from __future__ import annotations

import base64
from typing import BinaryIO

from engine.audit.bundle import bundle_header, bundle_record
from engine.audit.checkpoint import Checkpoint, parse_checkpoint
from engine.audit.key import AuditKey
from engine.audit.merkle import MerkleTree, leaf_hash
from engine.audit.note import NoteError, verify_note
from engine.audit.trail import AuditMismatch, checked_checkpoints, read_saved
from engine.devicelog import DeviceLog
from engine.errors import OperatorError, Reason
from events.audit import AuditKeyCreated
from events.codec import encode_core
from events.registry import event_from
from events.store import chain_hash

TLOG_PROOF = "c2sp.org/tlog-proof@v1"


class AuditError(OperatorError):
    """An audit command that cannot do what was asked (the text says why)."""


def find_key(log: DeviceLog) -> AuditKey:
    """The log's audit key (its `AuditKeyCreated`, near the start of the log)."""
    for row in log.read_rows():
        if row[1] == "witness":
            raise _witness_log(log)
        if row[2] == AuditKeyCreated.type_name:
            ev = event_from(row[2], row[3], row[7])
            assert isinstance(ev, AuditKeyCreated)
            return AuditKey.from_event(ev, row[4])
    if (log.root.parent / "witness.key").exists():  # a witness that has recorded nothing yet
        raise _witness_log(log)
    raise AuditError(Reason.NOT_FOUND, f"The log {log.root} has no audit key yet: it is made "
                     "when `trustledger shell`, `exec` or `audit checkpoint` first opens it.")


def _witness_log(log: DeviceLog) -> AuditError:
    return AuditError(Reason.INVALID_VALUE, f"The log {log.root} is a witness's: it has no "
                      "audit key (`trustledger audit witness key DIR` prints the witness's key).")


def latest_checkpoint(log: DeviceLog, key: AuditKey) -> tuple[bytes, Checkpoint]:
    """The latest checkpoint beside the log, its signature checked with the log's key."""
    saved = read_saved(log.root)
    if saved is None or saved.latest is None:
        first = next(log.read_rows(), None)
        how = ("the CA signs one after every certificate issued or revoked and every CRL"
               if first is not None and first[1] == "ca"
               else "`trustledger audit checkpoint` signs one")
        raise AuditError(Reason.NOT_FOUND, f"The log {log.root} has no checkpoint yet: {how}.")
    return saved.latest.note, _checked(saved.latest.note, key)


def _checked(note: bytes, key: AuditKey) -> Checkpoint:
    try:
        cp = parse_checkpoint(verify_note(note, [key.verifier()])[0])
    except NoteError as e:
        raise AuditError(Reason.BAD_DATA, f"A checkpoint beside the log does not verify with "
                         f"the log's audit key ({e}).") from None
    return cp


def recorded_checkpoints(log: DeviceLog, key: AuditKey) -> list[tuple[bytes, Checkpoint]]:
    """Every checkpoint in CHECKPOINTS, oldest first, the file checked against the record
    AUDIT keeps of it and each signature checked."""
    try:
        notes = checked_checkpoints(log.root)
    except AuditMismatch as e:  # AUDIT itself damaged
        raise AuditError(Reason.BAD_DATA, e.text) from None
    if isinstance(notes, str):
        raise AuditError(Reason.BAD_DATA, f"{notes} Its checkpoints are not used (restore "
                         "CHECKPOINTS from a backup).")
    return [(note, _checked(note, key)) for note in notes]


def tree_of(log: DeviceLog, cp: Checkpoint) -> tuple[MerkleTree, list[bytes]]:
    """The tree of the log's first `cp.size` events, which must have the checkpoint's root,
    and the events' chain hashes (the leaves' data)."""
    tree, chains = MerkleTree(), []
    for row in log.read_rows():
        if row[0] > cp.size:
            break
        chains.append(row[8])
        tree.append(leaf_hash(row[8]))
    if tree.size < cp.size:
        raise AuditError(Reason.BAD_DATA, f"The log ends at seq {tree.size}, but its checkpoint "
                         f"covers seq 1-{cp.size}: events are missing.")
    if tree.root() != cp.root:
        raise AuditError(Reason.BAD_DATA, f"The log's first {cp.size} events do not have the "
                         "root their checkpoint signed: the log was rewritten.")
    return tree, chains


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def inclusion_text(tree: MerkleTree, chains: list[bytes], note: bytes, cp: Checkpoint,
                   seq: int) -> str:
    if not 1 <= seq <= cp.size:
        raise AuditError(Reason.INVALID_VALUE, f"Seq {seq} is not covered by the latest "
                         f"checkpoint (seq 1-{cp.size}); `trustledger audit checkpoint` signs "
                         "a newer one of a device's log (a CA signs its next at its next "
                         "certificate, revocation or CRL).")
    proof = tree.inclusion_proof(seq - 1, cp.size)
    lines = [TLOG_PROOF, f"extra {_b64(chains[seq - 1])}", f"index {seq - 1}",
             *(_b64(h) for h in proof)]
    return "\n".join(lines) + "\n\n" + note.decode()


def consistency_text(tree: MerkleTree, note: bytes, cp: Checkpoint, old: int) -> str:
    if not 0 <= old <= cp.size:
        raise AuditError(Reason.INVALID_VALUE, f"Tree size {old} is not within the latest "
                         f"checkpoint's 0-{cp.size}.")
    proof = tree.consistency_proof(old, cp.size)
    return "\n".join([f"old {old}", *(_b64(h) for h in proof)]) + "\n\n" + note.decode()


def export_bundle(log: DeviceLog, key: AuditKey, note: bytes, cp: Checkpoint,
                  out: BinaryIO) -> int:
    """Write the bundle of seq 1..cp.size; the number of events written."""
    out.write(bundle_header(key.verifier().key_string(), note, cp.size))
    written = 0
    for rec in log.read():
        if rec.seq > cp.size:
            break
        core = encode_core(rec.core())
        if chain_hash(rec.prev, core) != rec.hash:
            raise AuditError(Reason.BAD_DATA, f"The log's seq {rec.seq} does not match its "
                             "chain hash: the log is damaged (`trustledger log verify`).")
        out.write(bundle_record(core, rec.hash))
        written += 1
    if written < cp.size:
        raise AuditError(Reason.BAD_DATA, f"The log ends at seq {written}, but the checkpoint "
                         f"covers seq 1-{cp.size}: events are missing.")
    return written


def checkpoint_until(log: DeviceLog, key: AuditKey, seq: int | None,
                     at_us: int | None) -> tuple[bytes, Checkpoint]:
    """The newest recorded checkpoint covering no event after `seq` (or after time `at_us`):
    what `audit export --until` exports."""
    if at_us is not None:
        seq = 0
        for row in log.read_rows():
            if row[4] > at_us:
                break
            seq = row[0]
    assert seq is not None
    if seq > log.head[0]:
        raise AuditError(Reason.INVALID_VALUE, f"The log ends at seq {log.head[0]}: --until "
                         f"{seq} is beyond it.")
    found = [(n, c) for n, c in recorded_checkpoints(log, key) if c.size <= seq]
    if not found:
        raise AuditError(Reason.NOT_FOUND, f"No recorded checkpoint covers the log up to seq "
                         f"{seq} or less.")
    return max(found, key=lambda nc: nc[1].size)

