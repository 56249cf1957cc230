"""Events of peer validation (stream `device`): every `validate_peer` decision.

Each validation is one `PeerValidated`: its inputs (the chain's fingerprints as given, the
purpose, the moment, the name) and the verdict, so `show crypto ca counters` is a projection
of the log and an auditor sees every trust decision and why. The chain's certificates are not
carried (a peer presents them again at each handshake; three fingerprints cost 200 bytes,
three certificates 3 KB): whoever replays a decision brings the chain, and the fingerprints
prove it is the one decided on. The CRLs a validation fetched are their own events
(`CrlFetched`, `CrlFetchFailed`), recorded in the same batch, before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.registry import Event, event, upcaster

RevocationRow = tuple[str, str, str, str, str | None, int | None, int | None, str]
"""(fingerprint, serial in hex (serials reach 159 bits: no msgpack int), status, crl sha256,
crl number in decimal (up to 20 octets: no msgpack int either), crl thisUpdate µs, revoked
at µs, revocation reason) of one certificate of the path."""


@event("PeerValidated", version=2)
@dataclass(frozen=True, slots=True)
class PeerValidated(Event):
    chain: tuple[str, ...]  # SHA-256 hex of each certificate as given
    purpose: str  # ike | tls-server | tls-client | any
    at: int  # µs: the moment validated for
    peer_name: str | None
    ok: bool
    reasons: tuple[str, ...]  # engine.validation.verdict.Code values
    anchor_source: str  # "trustpoint" | "trustpool" | "" (none)
    anchor_name: str
    anchor_sha256: str
    path: tuple[str, ...]  # SHA-256 hex, leaf first, anchor last
    revocation: tuple[RevocationRow, ...]
    detail: str  # the first refusal in words


@upcaster("PeerValidated", from_version=1)
def _peer_validated_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 carried each row's CRL number as a msgpack int (which cannot hold the 20 octets
    RFC 5280 allows): v2 carries it in decimal."""
    rows = tuple((*r[:4], None if r[4] is None else str(r[4]), *r[5:])
                 for r in payload.get("revocation", ()))
    return {**payload, "revocation": rows}
