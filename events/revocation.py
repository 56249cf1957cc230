"""Events of CRL retrieval (stream `device`): a CRL fetched and verified, a fetch that found
no usable CRL, and the cache emptied.

A CRL's bytes are not carried in the event: a CRL of 100,000 entries is megabytes, fetched
again at every nextUpdate. They are stored content-addressed beside the log
(engine/revocation/store.py, `<data>/crls/<sha256>`), written and made durable before the
event naming them is appended; the event carries their SHA-256, so `trustledger log verify`
proves the stored bytes are the ones that were fetched and verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.registry import Event, event, upcaster


@event("CrlFetched", version=2)
@dataclass(frozen=True, slots=True)
class CrlFetched(Event):
    """A complete CRL was fetched and verified against its issuer's key: it becomes the
    cached CRL of its issuer and scope if it is not older than the one cached."""

    sha256: str  # hex SHA-256 of the CRL's DER: names the stored blob
    issuer: bytes  # DER of the CRL's issuer Name
    issuer_text: str  # the issuer as `show crypto ca crls` prints it
    authority_key_id: bytes | None  # the CRL's authorityKeyIdentifier keyIdentifier
    number: str | None  # cRLNumber in decimal (RFC 5280 5.2.3: up to 20 octets, no msgpack int)
    this_update: int  # µs
    next_update: int | None  # µs; None when the CRL has none
    source: str  # the URI it came from, or "scep:<trustpoint>"
    fetched_at: int  # µs, engine clock
    trustpoint: str | None  # the trustpoint whose fetch it was, if any
    idp_uris: tuple[str, ...]  # issuing distribution point URIs; () = the issuer's full scope
    count: int  # revoked entries
    verified_with: str  # hex SHA-256 of the SubjectPublicKeyInfo that verified its signature
    only: str = ""  # IDP onlyContainsUserCerts ("user"), onlyContainsCACerts ("ca"), or ""
    attempts: tuple[tuple[str, str], ...] = ()  # sources tried first that failed: (uri, reason)


@upcaster("CrlFetched", from_version=1)
def _crl_fetched_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 carried the cRLNumber as a msgpack int, which cannot hold the 20 octets RFC 5280
    allows: v2 carries it in decimal."""
    number = payload.get("number")
    return {**payload, "number": None if number is None else str(number)}


@event("CrlFetchFailed", version=1)
@dataclass(frozen=True, slots=True)
class CrlFetchFailed(Event):
    """No usable CRL could be had from any source: each attempt's URI and why it failed."""

    trustpoint: str | None
    issuer_text: str  # whose CRL was wanted
    attempts: tuple[tuple[str, str], ...]  # (uri, reason), in the order tried


@event("CrlCacheCleared", version=1)
@dataclass(frozen=True, slots=True)
class CrlCacheCleared(Event):
    """`clear crypto ca crl`: every cached CRL forgotten (the stored bytes stay for the
    audit: earlier events still name them)."""

    removed: int
