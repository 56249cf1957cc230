"""What the device knows of a verified CRL (`CachedCrl`) and of one of its entries
(`Revoked`). Times are µs since the epoch (UTC), as everywhere in the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from events.revocation import CrlFetched


REASONS: dict[int, str] = {
    # RFC 5280 §5.3.1 CRLReason (7 is not used)
    0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
    4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL",
    9: "privilegeWithdrawn", 10: "aACompromise",
}


@dataclass(frozen=True, slots=True)
class CachedCrl:
    """A complete CRL, verified when it was fetched; its bytes are the blob `sha256`."""

    sha256: str  # hex
    issuer: bytes  # DER of the issuer Name
    issuer_text: str  # for `show`
    authority_key_id: bytes | None
    number: str | None  # cRLNumber in decimal (20 octets fit no msgpack int); see number_value
    this_update: int  # µs
    next_update: int | None  # µs
    source: str  # the URI, or "scep:<trustpoint>"
    fetched_at: int  # µs
    trustpoint: str | None
    idp_uris: tuple[str, ...]  # issuing distribution point scope; () = full scope
    count: int  # entries
    verified_with: str = ""  # hex SHA-256 of the issuer SPKI that verified the signature
    only: str = ""  # IDP onlyContainsUserCerts ("user") / onlyContainsCACerts ("ca"), or ""

    @classmethod
    def from_event(cls, ev: CrlFetched) -> CachedCrl:
        return cls(ev.sha256, ev.issuer, ev.issuer_text, ev.authority_key_id, ev.number,
                   ev.this_update, ev.next_update, ev.source, ev.fetched_at, ev.trustpoint,
                   ev.idp_uris, ev.count, ev.verified_with, ev.only)

    @property
    def number_value(self) -> int:
        """The cRLNumber as a number, for ordering (-1 when the CRL has none)."""
        return -1 if self.number is None else int(self.number)

    def fresh_at(self, now: int) -> bool:
        """RFC 5280 §6.3.3 (a)(2): past its nextUpdate a CRL is stale (a new one is to be
        had); a CRL without nextUpdate is never fresh."""
        return self.next_update is not None and now < self.next_update


@dataclass(frozen=True, slots=True)
class Revoked:
    """One entry of a CRL: the serial is revoked since `revoked_at` for `reason`."""

    serial: int
    revoked_at: int  # µs
    reason: str = "unspecified"  # RFC 5280 §5.3.1 name
