"""A checkpoint witness's rules (C2SP tlog-witness `add-checkpoint`), with no I/O.

Theory of operation
-------------------
A witness follows logs, each named by its origin line and trusted through its verifier keys.
For each origin it remembers the latest checkpoint it co-signed (size and root). A log asks
for a co-signature by POSTing to `<prefix>/add-checkpoint`:

    old <size of the latest checkpoint the witness co-signed, 0 at first>\\n
    <base64 consistency proof hash>\\n          (0 to 63 lines, RFC 9162 §2.1.4 from old size)
    \\n
    <the checkpoint, a signed note>

`decide` checks it in the order the spec gives, each refusal with its HTTP status:

    400  the body does not parse, more than 63 proof lines, or "The old size MUST be equal to
         or lower than the checkpoint size" (a log that went back: a rollback)
    404  "If the checkpoint origin is unknown, the witness MUST respond with a 404"
    403  "If none of the signatures verify against a trusted public key ... 403"
    409  "The witness MUST check that the old size matches the size of the latest checkpoint it
         cosigned ... If it doesn't match ... 409 Conflict"; the body is that size and a
         newline, `Content-Type: text/x.tlog.size`; also 409 when the sizes are equal and the
         roots differ (a fork at the same size)
    422  "If the Merkle Consistency Proof doesn't verify ... 422 Unprocessable Entity"
    200  the witness's cosignature line(s) (engine.audit.cosignature)

A refusal of a checkpoint correctly signed by the log (a rollback, a fork, a proof that does
not verify) is evidence of the log's misbehaviour: the decision says so, and the service
records it (events/witness.py `CheckpointRefused`). On 200 the new latest checkpoint must be
made durable before the answer leaves, atomically with the check (the service holds one lock
across both: the spec's race of two requests rolling the size back).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit.checkpoint import Checkpoint, parse_checkpoint
from engine.audit.cosignature import cosign
from engine.audit.merkle import verify_consistency
from engine.audit.note import NoteError, Verifier, parse_note, verify_note

ADD_CHECKPOINT_PATH = "/add-checkpoint"  # after the witness's submission prefix
MAX_PROOF_LINES = 63  # "The client MUST NOT send more than 63 consistency proof lines."
SIZE_CONTENT_TYPE = "text/x.tlog.size"
COSIGNATURE_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes


@dataclass(frozen=True)
class Latest:
    """The latest checkpoint a witness co-signed for one origin."""

    size: int
    root: bytes


@dataclass(frozen=True)
class WitnessState:
    """What the witness knows: the logs it follows (origin -> verifier keys) and, per
    origin, the latest checkpoint it co-signed."""

    logs: Mapping[str, tuple[Verifier, ...]] = field(default_factory=dict)
    latest: Mapping[str, Latest] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    status: HTTPStatus
    content_type: str
    body: bytes
    reason: str = ""  # why it was refused, for the witness's console and its evidence
    checkpoint: Checkpoint | None = None  # the submitted checkpoint, once its signature held
    cosigned: Latest | None = None  # 200: the origin's new latest checkpoint
    timestamp: int = 0  # 200: the cosignature's time
    evidence: bool = False  # a refusal of a checkpoint the log did sign


class BadRequest(ValueError):
    """An add-checkpoint body that does not parse."""


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Split the request body into old size, proof and the signed checkpoint."""
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise BadRequest("no empty line between the proof and the checkpoint")
    lines = head.split(b"\n")
    size_line, proof_lines = lines[0], lines[1:]
    if not size_line.startswith(b"old "):
        raise BadRequest("the first line is not `old <size>`")
    size = size_line[4:]
    if not size.isdigit() or (size != b"0" and size.startswith(b"0")):
        raise BadRequest("the old size is not a decimal number without leading zeros")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = tuple(base64.b64decode(line, validate=True) for line in proof_lines)
    except binascii.Error:
        raise BadRequest("a consistency proof line is not base64") from None
    if any(len(h) != 32 for h in proof):
        raise BadRequest("a consistency proof hash is not 32 bytes")
    return AddCheckpoint(int(size), proof, note)


def request_body(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """The add-checkpoint body a log sends (the client's half of `parse_add_checkpoint`)."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return "".join(f"{line}\n" for line in lines).encode() + b"\n" + note


def refuse(status: HTTPStatus, reason: str, checkpoint: Checkpoint | None = None, *,
            evidence: bool = False) -> Decision:
    return Decision(status, "text/plain; charset=utf-8", (reason + "\n").encode(), reason,
                    checkpoint, evidence=evidence)


def _signed_checkpoint(note: bytes, state: WitnessState
                       ) -> tuple[Checkpoint, str] | Decision:
    """The checkpoint and its text, once a key the witness trusts for its origin signed it."""
    try:
        text, _ = parse_note(note)
        checkpoint = parse_checkpoint(text)
    except NoteError as err:
        return refuse(HTTPStatus.BAD_REQUEST, f"malformed checkpoint: {err}")
    keys = state.logs.get(checkpoint.origin)
    if keys is None:
        return refuse(HTTPStatus.NOT_FOUND, f"unknown log origin {checkpoint.origin}")
    try:
        verify_note(note, keys)
    except NoteError as err:  # unknown keys are ignored; a known key's bad signature is not
        return refuse(HTTPStatus.FORBIDDEN, f"checkpoint signature: {err}")
    return checkpoint, text


def decide(request: AddCheckpoint, state: WitnessState, name: str, key: Ed25519PrivateKey,
           now_s: int) -> Decision:
    """The answer to one add-checkpoint request, and the origin's new latest on 200."""
    signed = _signed_checkpoint(request.note, state)
    if isinstance(signed, Decision):
        return signed
    (cp, text), old = signed, request.old_size
    if old > cp.size:
        return refuse(HTTPStatus.BAD_REQUEST, f"old size {old} is above the checkpoint's "
                       f"size {cp.size}: the log went back", cp, evidence=True)
    latest = state.latest.get(cp.origin, Latest(0, b""))
    if old != latest.size:
        return Decision(HTTPStatus.CONFLICT, SIZE_CONTENT_TYPE, f"{latest.size}\n".encode(),
                        f"old size {old} is not {latest.size}, the size last co-signed", cp,
                        evidence=cp.size < latest.size)
    if cp.size == latest.size and cp.root != latest.root and latest.size:
        return refuse(HTTPStatus.CONFLICT, f"a different root at size {cp.size}, which was "
                       "co-signed with another root: the log was rewritten", cp, evidence=True)
    if old == 0 and request.proof:
        return refuse(HTTPStatus.UNPROCESSABLE_ENTITY, "a proof from size 0 must be empty", cp)
    if old and not verify_consistency(old, cp.size, latest.root, cp.root, request.proof):
        return refuse(HTTPStatus.UNPROCESSABLE_ENTITY,
                       f"the consistency proof from size {old} to {cp.size} does not verify: "
                       "the log does not extend the checkpoint co-signed", cp, evidence=True)
    line = cosign(text, name, key, now_s)  # the body as signed, extension lines in
    return Decision(HTTPStatus.OK, COSIGNATURE_CONTENT_TYPE, line.encode(), "", cp,
                    Latest(cp.size, cp.root), now_s)
