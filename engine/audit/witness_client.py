"""A device asking its witnesses to co-sign its checkpoints (C2SP tlog-witness, client side).

Theory of operation
-------------------
The device is configured with witnesses (`audit witness url URL key KEY`: the submission
prefix and the witness's cosignature/v1 verifier key). After each checkpoint the audit trail
signs, `WitnessClient.cosign` POSTs (from a background thread: engine/audit/cosigner.py)
`URL/add-checkpoint` to each: the old size the witness
last co-signed, a consistency proof from there, the signed checkpoint. The client remembers,
per witness and for this process only, the size and compact range it last had co-signed: the
proof from there needs only that range and the leaves appended since (`consistency_from`),
never the whole log. The witness is the one that must remember (durably): when the client
does not know, or guessed wrong, it sends old size 0 and the witness answers 409 with the size
it co-signed; the proof from that size is then built from the log's leaves once, and sent.

A 200 answer's cosignature must verify with the configured key (the spec: "The client MUST
ignore any cosignatures from unknown keys"); it is added to the checkpoint's signed note. Any
other answer is reported, and the checkpoint stays without that witness's cosignature: a
witness that refuses (409 with a size above the log's, 422, 409 at the same size) is saying
the log is not the one it saw grow, which is the point of having one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.audit.checkpoint import Checkpoint
from engine.audit.cosignature import CosignatureVerifier
from engine.audit.merkle import CompactRange, MerkleTree, leaf_hash, node_hash
from engine.audit.note import NoteError, parse_note, signature_line, verify_note
from engine.audit.witness import ADD_CHECKPOINT_PATH, request_body
from engine.errors import PeerError, PeerReason

TIMEOUT = 5.0  # seconds for one socket operation
DEADLINE = 15.0  # seconds for one add-checkpoint exchange
MAX_ANSWER = 64 * 1024
# The answers by which a witness says the log is not the one it saw grow (C2SP tlog-witness:
# 400 an old size above the checkpoint's, 409 a size it did not co-sign or a fork, 422 a
# proof that does not verify): an alert. Any other answer (404 an origin it does not follow or
# a wrong URL, 403 a key it does not trust, 5xx) is a witness not doing its job: a warning.
REFUSALS = frozenset({400, 409, 422})
_HINTS = {404: " (the witness does not follow this log, or the URL is not its submission "
               "prefix)",
          403: " (the witness does not trust this log's key)"}


@dataclass(frozen=True)
class WitnessReply:
    status: int
    content_type: str
    body: bytes


class WitnessTransport(Protocol):
    def post(self, url: str, body: bytes) -> WitnessReply: ...


class HttpxWitnessTransport:
    """add-checkpoint over HTTP with httpx: no proxies, no redirects, one deadline."""

    def __init__(self) -> None:
        from engine.adapters.http_deadline import Deadline, deadline_client

        self.deadline = Deadline(DEADLINE)
        self.client = deadline_client(self.deadline, TIMEOUT)

    def post(self, url: str, body: bytes) -> WitnessReply:
        import httpx

        with self.deadline.exchange():
            try:
                resp = self.client.post(url, content=body,
                                        headers={"content-type": "text/plain"})
            except (httpx.HTTPError, ValueError) as e:
                raise self._failure(url, e) from e
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        return WitnessReply(resp.status_code, ctype, resp.content[:MAX_ANSWER])

    def _failure(self, url: str, e: Exception) -> PeerError:
        if self.deadline.expired():  # whichever socket call the deadline cut: one message
            return PeerError(PeerReason.TIMED_OUT, f"{url}: no complete answer within the "
                             f"{self.deadline.seconds:g} s deadline of the exchange")
        tls = _tls_error(e)
        if tls is not None:
            return PeerError(PeerReason.UNREACHABLE, f"{url}: the TLS handshake failed "
                             f"({tls}): no HTTPS server with a trusted certificate there "
                             "(a `trustledger audit witness serve` speaks plain HTTP)")
        return PeerError(PeerReason.UNREACHABLE, f"{url}: {e or type(e).__name__}")


def _tls_error(e: BaseException) -> str | None:
    """The reason of the ssl.SSLError behind an httpx error, if one is."""
    import ssl

    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class Witness:
    url: str  # the submission prefix
    key: CosignatureVerifier


@dataclass(frozen=True)
class Outcome:
    lines: bytes  # verified cosignature lines to add to the note
    messages: tuple[str, ...]  # what to tell the operator (`%AUDIT-...` lines)


# -- the consistency proof from a compact range ---------------------------------------------------


def _range_nodes(old: CompactRange) -> dict[tuple[int, int], bytes]:
    """The perfect subtrees [start, end) the compact range is made of, largest first."""
    nodes: dict[tuple[int, int], bytes] = {}
    start = 0
    sizes = [1 << b for b in range(old.size.bit_length() - 1, -1, -1) if old.size >> b & 1]
    for size, h in zip(sizes, old.hashes, strict=True):
        nodes[(start, start + size)] = h
        start += size
    return nodes


def _mth(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def consistency_from(old: CompactRange, new_leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) for m = old.size, n = m + len(new_leaves), from the
    compact range at m and the leaf hashes after it: each node the proof needs is either one
    of the range's subtrees (left of m) or a subtree of the new leaves (right of m)."""
    m = old.size
    if m == 0 or not new_leaves:
        return []
    nodes = _range_nodes(old)

    def mth(a: int, b: int) -> bytes:
        if b <= m:
            return nodes[(a, b)]  # SUBPROOF only asks for the range's own subtrees here
        return _mth(new_leaves[a - m:b - m])

    def subproof(a: int, b: int, complete: bool) -> list[bytes]:
        n = b - a
        if m - a == n:
            return [] if complete else [mth(a, b)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m - a <= k:
            return [*subproof(a, a + k, complete), mth(a + k, b)]
        return [*subproof(a + k, b, False), mth(a, a + k)]

    return subproof(0, m + len(new_leaves), True)


# -- the client ------------------------------------------------------------------------------------


class WitnessClient:
    """Co-signatures for one device's checkpoints (see the module docstring)."""

    def __init__(self, transport: WitnessTransport) -> None:
        self.transport = transport
        self.known: dict[str, tuple[int, CompactRange]] = {}  # url -> last co-signed tree

    def cosign(self, witnesses: Iterable[Witness], note: bytes, cp: Checkpoint,
               now: CompactRange, leaves: LeafSource) -> Outcome:
        lines: list[bytes] = []
        messages: list[str] = []
        for w in witnesses:
            try:
                lines.append(self._one(w, note, cp, now, leaves))
            except PeerError as err:
                messages.append(_message(w, cp, err))
        return Outcome(b"".join(lines), tuple(messages))

    def _one(self, w: Witness, note: bytes, cp: Checkpoint, now: CompactRange,
             leaves: LeafSource) -> bytes:
        url = w.url.rstrip("/") + ADD_CHECKPOINT_PATH
        known = self.known.get(w.url)
        old, proof = (0, []) if known is None or known[0] > cp.size else \
            (known[0], consistency_from(known[1], leaves.between(known[0], cp.size)))
        reply = self.transport.post(url, request_body(old, proof, note))
        if reply.status == 409 and reply.content_type == "text/x.tlog.size":
            old = _size(reply.body)
            if old > cp.size:
                raise PeerError(PeerReason.REFUSED, f"it co-signed tree size {old}, and this "
                                f"log has only {cp.size} events: the log was cut back")
            proof = leaves.proof(old, cp.size)
            reply = self.transport.post(url, request_body(old, proof, note))
        if reply.status != 200:
            text = f"HTTP {reply.status}: {reply.body.decode('utf-8', 'replace').strip()[:200]}"
            if reply.status in REFUSALS:
                raise PeerError(PeerReason.REFUSED, text)
            raise PeerError(PeerReason.BAD_ANSWER, f"{text}{_HINTS.get(reply.status, '')}")
        line = _verified(w, note, reply.body)
        self.known[w.url] = (cp.size, now.copy())
        return line


class LeafSource(Protocol):
    """The log's leaf hashes, read when a proof needs them."""

    def between(self, old: int, new: int) -> list[bytes]:
        """Leaf hashes of seq old+1..new."""
        ...

    def proof(self, old: int, new: int) -> list[bytes]:
        """A consistency proof from tree size `old` to `new`, from the leaves."""
        ...


class LogLeaves:
    """A `LeafSource` over rows `(seq, ..., chain hash at index 8)` of a log."""

    def __init__(self, read_rows: ReadRows) -> None:
        self.read_rows = read_rows

    def between(self, old: int, new: int) -> list[bytes]:
        return [leaf_hash(row[8]) for row in self.read_rows(old + 1) if row[0] <= new]

    def proof(self, old: int, new: int) -> list[bytes]:
        if old in (0, new):
            return []
        return MerkleTree(self.between(0, new)).consistency_proof(old, new)


ReadRows = Callable[[int], Iterable[Sequence[Any]]]  # FileEventLog.read_rows

def _size(body: bytes) -> int:
    text = body.decode("ascii", "replace").strip()
    if not text.isdigit():
        raise PeerError(PeerReason.BAD_ANSWER, f"a 409 whose size {text[:20]!r} is not a number")
    return int(text)


def _verified(w: Witness, note: bytes, answer: bytes) -> bytes:
    """The witness's own cosignature line from a 200 answer, once it verifies."""
    try:
        text, _ = parse_note(note)
        _, sigs = parse_note(text.encode() + b"\n" + answer)
        verify_note(text.encode() + b"\n" + answer, [w.key])
    except NoteError as e:
        raise PeerError(PeerReason.BAD_ANSWER, f"its answer is not a cosignature by its key "
                        f"({e})") from None
    mine = [s for s in sigs if (s.name, s.key_id) == (w.key.name, w.key.key_id)]
    return b"".join(signature_line(s.name, s.key_id, s.signature).encode() for s in mine)


def _message(w: Witness, cp: Checkpoint, err: PeerError) -> str:
    root = base64.b64encode(cp.root).decode()[:12]
    if err.reason is PeerReason.REFUSED:
        return (f"%AUDIT-1-WITNESS_REFUSED: witness {w.key.name} ({w.url}) refused the "
                f"checkpoint of tree size {cp.size} (root {root}\u2026): {err.text}")
    return (f"%AUDIT-4-WITNESS: witness {w.key.name} ({w.url}) did not co-sign the checkpoint "
            f"of tree size {cp.size}: {err.text}")

