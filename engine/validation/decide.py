"""Peer validation as a pure function of logged facts: `decide_validation(state, blobs, chain,
purpose, at, name) -> Verdict`.

Rules, in order (the first three stop the decision; the others all add their codes):
1. The chain must parse (MALFORMED).
2. An anchor: a trustpoint's CA first, then the trustpool (engine.trustpool.anchor's rule,
   through engine.validation.anchors), else UNKNOWN_CA (NOT_YET_VALID or EXPIRED when only
   a pool certificate not valid at `at` would anchor it). Its `crl optional` is the policy.
3. The path from the peer's certificate to that anchor, checked at `at` for the purpose and
   the name (engine.validation.path).
4. Revocation of every certificate of the path but the anchor (RFC 5280 §6.3), with the
   cached CRL that covers it (engine.revocation.cache.crl_for; verified with its issuer's
   key when it was fetched):
   - listed on it (fresh or stale) with a revocationDate not after `at`: REVOKED, always;
   - no CRL (or its stored bytes cannot be read): CRL_UNAVAILABLE; only a CRL past its
     nextUpdate at `at`: CRL_STALE. Either fails, unless the anchor's policy says
     `crl optional`: then the certificate's status is "bypassed (crl optional)" and the
     verdict passes with CRL_BYPASSED among its codes (counted apart).
   An entry revoked after `at` does not count: at `at` the certificate was good (a
   what-if at a past moment, with a CRL fetched since).
The engine (engine.validation.validate) fetches what rule 4 missed and decides again (unless
rule 3 already refused: no CRL can change that); this
module never fetches, so replaying a recorded validation against the state before its
`PeerValidated` event (and the same CRL bytes) gives the same Verdict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from cryptography import x509

from engine.errors import OperatorError
from engine.revocation.cache import cdp_uris, crl_for
from engine.revocation.index import CrlShape, revocation_of
from engine.revocation.model import CachedCrl
from engine.revocation.store import CrlBlobs
from engine.state import DeviceState
from engine.trustpool.anchor import Anchor
from engine.validation.anchors import Candidate, anchor_index
from engine.validation.chain import Chain, ChainInput, ChainMalformed, fingerprint, parse_chain
from engine.validation.path import check_path
from engine.validation.verdict import AnchorRef, Code, Purpose, Revocation, Status, Verdict


@dataclass(frozen=True)
class Missing:
    """A certificate whose CRL was missing or stale: what a fetch is to bring."""

    cert: x509.Certificate
    issuer: x509.Certificate
    trustpoint: str | None  # the anchoring trustpoint, whose `query url` and CA may help


def decide_validation(state: DeviceState, blobs: CrlBlobs, chain: ChainInput,
                      purpose: Purpose | str, at: int, name: str | None = None) -> Verdict:
    """The verdict on `chain` for `purpose` at `at` (µs), from `state` and the CRL bytes in
    `blobs` alone."""
    verdict, _ = judge(state, blobs, chain, Purpose(purpose), at, name)
    return verdict


def judge(state: DeviceState, blobs: CrlBlobs, given: ChainInput, purpose: Purpose, at: int,
          name: str | None) -> tuple[Verdict, list[Missing]]:
    """The verdict, and the certificates whose CRL a fetch could still bring."""
    try:
        chain = parse_chain(given)
    except ChainMalformed as e:
        return Verdict(False, (Code.MALFORMED,), purpose, at, name, (), None, (), (),
                       str(e)), []
    index = anchor_index(state)
    found = index.find(chain.certs, at)
    if found is None:
        return _no_anchor(chain, purpose, at, name, index.find(chain.certs, None)), []
    anchor = found.anchor
    ref = AnchorRef(anchor.source, anchor.name, fingerprint(found.cert))
    checked = check_path(chain.certs, found.cert, found.store(), purpose, at, name)
    if not checked.path:
        return Verdict(False, checked.codes, purpose, at, name, chain.fingerprints, ref, (),
                       (), checked.detail), []
    path = checked.path
    statuses, missing = _revocation(state, blobs, path, at, anchor)
    # A path refused for its own reasons is not fetched for (no CRL can save it): a missing
    # CRL is then no reason of the verdict; a revocation found in the cache still is.
    codes = list(checked.codes) + [c for s in statuses if (c := _CODE_OF.get(s.status))
                                   and (not checked.codes or c is Code.REVOKED)]
    ok = all(c is Code.CRL_BYPASSED for c in codes)
    detail = checked.detail or _revocation_detail(state, statuses, anchor,
                                                  _failed_fetches(state, missing))
    verdict = Verdict(ok, tuple(dict.fromkeys(codes)), purpose, at, name, chain.fingerprints,
                      ref, tuple(fingerprint(c) for c in path), statuses, detail)
    return verdict, missing if not checked.codes else []  # a CRL cannot save it: no fetch


def _no_anchor(chain: Chain, purpose: Purpose, at: int, name: str | None,
               other: Candidate | None) -> Verdict:
    """No anchor at `at`: UNKNOWN_CA, unless a pool certificate would anchor the chain at
    another moment (it is not valid at `at`): then NOT_YET_VALID or EXPIRED, naming it."""
    if other is None:
        return _refused(chain, purpose, at, name, None, Code.UNKNOWN_CA,
                        "no trustpoint CA or trustpool certificate anchors the chain")
    ref = AnchorRef(other.anchor.source, other.anchor.name, fingerprint(other.cert))
    who = other.cert.subject.rfc4514_string()
    if at < other.not_before:
        return _refused(chain, purpose, at, name, ref, Code.NOT_YET_VALID,
                        f"the trust anchor {who} is not valid before "
                        f"{other.cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    return _refused(chain, purpose, at, name, ref, Code.EXPIRED,
                    f"the trust anchor {who} expired "
                    f"{other.cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")


def _refused(chain: Chain, purpose: Purpose, at: int, name: str | None,
             ref: AnchorRef | None, code: Code, detail: str) -> Verdict:
    return Verdict(False, (code,), purpose, at, name, chain.fingerprints, ref, (), (), detail)


def _revocation(state: DeviceState, blobs: CrlBlobs, path: Sequence[x509.Certificate],
                at: int, anchor: Anchor) -> tuple[tuple[Revocation, ...], list[Missing]]:
    out: list[Revocation] = []
    missing: list[Missing] = []
    tp = anchor.name if anchor.source == "trustpoint" else None
    for cert, issuer in pairwise(path):
        status = _status(state, blobs, cert, issuer, at, anchor.crl_optional)
        if status.status in (Status.UNAVAILABLE, Status.STALE, Status.BYPASSED):
            missing.append(Missing(cert, issuer, tp))
        out.append(status)
    out.append(Revocation(fingerprint(path[-1]), path[-1].serial_number, Status.ANCHOR))
    return tuple(out), missing


def _status(state: DeviceState, blobs: CrlBlobs, cert: x509.Certificate,
            issuer: x509.Certificate, at: int, optional: bool) -> Revocation:
    fp, serial = fingerprint(cert), cert.serial_number
    cached = crl_for(state, cert, issuer)
    if cached is None:
        return Revocation(fp, serial, Status.BYPASSED if optional else Status.UNAVAILABLE)
    try:
        entry = revocation_of(blobs, cached, serial)
    except (OperatorError, CrlShape):  # the stored bytes are missing or unreadable
        return Revocation(fp, serial, Status.BYPASSED if optional else Status.UNAVAILABLE)
    if entry is not None and entry.revoked_at <= at:
        return _decided(fp, serial, Status.REVOKED, cached, entry.revoked_at, entry.reason)
    if cached.fresh_at(at):
        return _decided(fp, serial, Status.GOOD, cached)
    return _decided(fp, serial, Status.BYPASSED if optional else Status.STALE, cached)


def _decided(fp: str, serial: int, status: Status, crl: CachedCrl, revoked_at: int | None = None,
             reason: str = "") -> Revocation:
    return Revocation(fp, serial, status, crl.sha256,
                      None if crl.number is None else int(crl.number), crl.this_update, revoked_at,
                      reason)


_CODE_OF = {Status.REVOKED: Code.REVOKED, Status.UNAVAILABLE: Code.CRL_UNAVAILABLE,
            Status.STALE: Code.CRL_STALE, Status.BYPASSED: Code.CRL_BYPASSED}


def _failed_fetches(state: DeviceState, missing: Sequence[Missing]) -> dict[str, str]:
    """Per certificate whose CRL is missing (by fingerprint): the last failed fetch from one
    of its sources, as the back-off remembers it (engine.validation.folded), in words: where,
    when and why. From the state alone, so a replay gives the same words."""
    notes: dict[str, str] = {}
    for m in missing:
        uris = [*cdp_uris(m.cert), *([f"scep:{m.trustpoint}"] if m.trustpoint else [])]
        failed = [(f, u) for u in uris if (f := state.validations.failure(u)) is not None]
        if failed:
            (t, why), u = max(failed)
            when = dt.datetime.fromtimestamp(t / 1_000_000, dt.UTC)
            notes[fingerprint(m.cert)] = (f" (the last fetch from {u} failed at "
                                          f"{when:%Y-%m-%d %H:%M:%S} UTC: {why}; validations "
                                          "ask it again a minute after a failure)")
    return notes


def _revocation_detail(state: DeviceState, statuses: Sequence[Revocation], anchor: Anchor,
                       notes: dict[str, str]) -> str:
    """The first revocation refusal in words (or what `crl optional` let go): which
    certificate, whether a CRL was had at all and, if one was, why it is not current; then
    the last failed fetch of its CRL (`notes`)."""
    for s in statuses:
        if s.status is Status.REVOKED:
            return f"certificate serial {s.serial:X} is revoked ({s.revocation_reason})"
    for s in statuses:
        note = notes.get(s.fingerprint, "")
        if s.status is Status.UNAVAILABLE:
            return f"no CRL could be had for certificate serial {s.serial:X}{note}"
        if s.status is Status.STALE:
            return (f"only a CRL {_not_current(state, s)} covers certificate serial "
                    f"{s.serial:X}{note}")
    for s in statuses:
        if s.status is Status.BYPASSED:
            had = (f"only one {_not_current(state, s)}" if s.crl_sha256 else
                   "none could be had")
            return (f"no current CRL for certificate serial {s.serial:X}, {had}"
                    f"{notes.get(s.fingerprint, '')}: accepted, `crl optional` ({anchor.name})")
    return ""


def _not_current(state: DeviceState, s: Revocation) -> str:
    """Why the CRL that decided `s` is not current: past its nextUpdate (when), or without
    one (RFC 5280 5.1.2.5: "Conforming CRL issuers MUST include the nextUpdate time in all
    CRLs"; such a CRL is never current)."""
    crl = next((c for c in state.crls.crls if c.sha256 == s.crl_sha256), None)
    if crl is None:  # not in the state `s` was decided from: no more to say
        return "that is not current"
    if crl.next_update is None:
        return "without a nextUpdate (never current: RFC 5280 5.1.2.5)"
    when = dt.datetime.fromtimestamp(crl.next_update / 1_000_000, dt.UTC)
    return f"past its nextUpdate ({when:%Y-%m-%d %H:%M:%S} UTC)"
