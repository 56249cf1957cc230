"""What a peer validation decided: the `Verdict`, its reason codes, and each certificate's
revocation status.

A Verdict is a value: frozen, comparable, and turned into the `PeerValidated` event and back
without loss (`verdict_event`, `verdict_of`), so an auditor reads from the log exactly what the
device decided, and a replay of the decision (`engine.validation.decide`) can be compared
with it field by field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from events.validation import PeerValidated


class Purpose(enum.Enum):
    """What the peer's certificate is to be used for."""

    IKE = "ike"
    TLS_SERVER = "tls-server"
    TLS_CLIENT = "tls-client"
    ANY = "any"


class Code(enum.Enum):
    """Why a chain is refused (or, for CRL_BYPASSED, what a passing one relied on)."""

    MALFORMED = "MALFORMED"  # not a certificate chain we can parse
    UNKNOWN_CA = "UNKNOWN_CA"  # no trustpoint CA or pool certificate anchors it
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    # an issuer not a CA, its path length exceeded, or a CA certificate as the peer's own
    BAD_BASIC_CONSTRAINTS = "BAD_BASIC_CONSTRAINTS"
    KEY_USAGE = "KEY_USAGE"
    EKU_MISMATCH = "EKU_MISMATCH"
    NAME_MISMATCH = "NAME_MISMATCH"
    UNKNOWN_CRITICAL_EXTENSION = "UNKNOWN_CRITICAL_EXTENSION"
    WEAK_ALGORITHM = "WEAK_ALGORITHM"  # a signature algorithm refused (SHA-1, MD5, ...)
    UNSUPPORTED_ALGORITHM = "UNSUPPORTED_ALGORITHM"  # an issuer key type it cannot use
    WEAK_KEY = "WEAK_KEY"  # an RSA key under 2048 bits
    INVALID_PATH = "INVALID_PATH"  # refused by RFC 5280 path validation for another reason
    REVOKED = "REVOKED"
    CRL_UNAVAILABLE = "CRL_UNAVAILABLE"
    CRL_STALE = "CRL_STALE"
    CRL_BYPASSED = "CRL_BYPASSED"  # passed without a CRL because of `crl optional`


class Status(enum.Enum):
    """One certificate's revocation status in a verdict."""

    GOOD = "good"  # a current CRL covers it and does not list it
    REVOKED = "revoked"
    UNAVAILABLE = "unavailable"  # no CRL could be had
    STALE = "stale"  # only a CRL past its nextUpdate (or without one: never current)
    BYPASSED = "bypassed (crl optional)"  # no usable CRL, and `crl optional` applies
    ANCHOR = "anchor"  # the trust anchor: trusted as configured, not checked


@dataclass(frozen=True)
class AnchorRef:
    source: str  # "trustpoint" | "trustpool"
    name: str  # the trustpoint's name, or "trustpool"
    fingerprint: str  # SHA-256 hex of the anchor certificate


@dataclass(frozen=True)
class Revocation:
    """One certificate of the path: its status and the CRL that decided it (if one did)."""

    fingerprint: str  # SHA-256 hex
    serial: int
    status: Status
    crl_sha256: str = ""
    crl_number: int | None = None
    crl_this_update: int | None = None  # µs
    revoked_at: int | None = None  # µs, when REVOKED
    revocation_reason: str = ""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    codes: tuple[Code, ...]  # empty when ok (but for CRL_BYPASSED)
    purpose: Purpose
    at: int  # µs: the moment validated for
    peer_name: str | None
    chain: tuple[str, ...]  # SHA-256 hex of each certificate as given
    anchor: AnchorRef | None
    path: tuple[str, ...]  # SHA-256 hex, leaf first, anchor last (empty if none was built)
    revocation: tuple[Revocation, ...]  # one per certificate of `path`
    detail: str = ""  # the first refusal in words

    @property
    def bypassed(self) -> bool:
        return Code.CRL_BYPASSED in self.codes

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.codes)

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON form (`trustledger validate --json`)."""
        return {
            "ok": self.ok, "reasons": list(self.reasons), "purpose": self.purpose.value,
            "at": self.at, "peer_name": self.peer_name, "chain": list(self.chain),
            "anchor": None if self.anchor is None else {
                "source": self.anchor.source, "name": self.anchor.name,
                "fingerprint": self.anchor.fingerprint},
            "path": list(self.path),
            "revocation": [{
                "fingerprint": r.fingerprint, "serial": r.serial, "status": r.status.value,
                "crl": None if not r.crl_sha256 else {
                    "sha256": r.crl_sha256, "number": r.crl_number,
                    "this_update": r.crl_this_update},
                "revoked_at": r.revoked_at, "reason": r.revocation_reason or None,
            } for r in self.revocation],
            "detail": self.detail,
        }


def verdict_event(v: Verdict) -> PeerValidated:
    anchor = v.anchor or AnchorRef("", "", "")
    return PeerValidated(
        v.chain, v.purpose.value, v.at, v.peer_name, v.ok, v.reasons,
        anchor.source, anchor.name, anchor.fingerprint, v.path,
        tuple((r.fingerprint, f"{r.serial:X}", r.status.value, r.crl_sha256,
               None if r.crl_number is None else str(r.crl_number), r.crl_this_update,
               r.revoked_at, r.revocation_reason) for r in v.revocation),
        v.detail)


def verdict_of(ev: PeerValidated) -> Verdict:
    anchor = AnchorRef(ev.anchor_source, ev.anchor_name, ev.anchor_sha256) \
        if ev.anchor_source else None
    return Verdict(
        ev.ok, tuple(Code(c) for c in ev.reasons), Purpose(ev.purpose), ev.at, ev.peer_name,
        tuple(ev.chain), anchor, tuple(ev.path),
        tuple(Revocation(f, int(serial, 16), Status(s), crl,
                         None if number is None else int(number), this_update, revoked_at, why)
              for f, serial, s, crl, number, this_update, revoked_at, why in ev.revocation),
        ev.detail)
