"""Validating a peer on the engine: decide, fetch the CRLs that were missing or stale,
decide again, and return the events to record (the fetches' and the `PeerValidated`).

The generator yields the CRL fetches' effects (engine.revocation.fetch.fetch_crl, the one
fetch every path uses) and folds what they brought into a local copy of the state, so the
second decision sees exactly the state the log will hold just before `PeerValidated`: a
replay of the decision against that state gives the same Verdict (engine.validation.decide).
A fetch is tried once per validation and certificate, `crl optional` or not (the option
accepts a CRL that cannot be had; it does not skip trying), except from a source whose fetch
failed less than a minute ago (engine.validation.folded: the back-off): such sources are left
out, and a certificate whose every source is left out is not fetched for at all.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from typing import Any

from engine.effects import Effect
from engine.revocation.fetch import NO_SOURCE, crl_sources, fetch_crl, trustpoint_of_issuer
from engine.revocation.store import CrlBlobs
from engine.state import DeviceState, evolve
from engine.validation.chain import ChainInput, fingerprint
from engine.validation.decide import Missing, judge
from engine.validation.verdict import Purpose, Verdict, verdict_event
from events.registry import Event


def moment_us(at: datetime | int) -> int:
    """`at` as µs since the epoch: an int is taken as µs; a datetime must say its zone."""
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("the validation time must be timezone-aware (UTC)")
        return round(at.timestamp() * 1_000_000)
    if isinstance(at, bool) or not isinstance(at, int):
        raise ValueError(f"the validation time must be a datetime or µs, not {at!r}")
    return at


def validate(state: DeviceState, blobs: CrlBlobs, chain: ChainInput, purpose: Purpose,
             at: int, name: str | None, now: int
             ) -> Generator[Effect, Any, tuple[Verdict, list[Event]]]:
    verdict, missing = judge(state, blobs, chain, purpose, at, name)
    events: list[Event] = []
    wanted = [(m, skip) for m in _distinct(missing)
              if (skip := _backed_off(state, m, now)) is not None]
    if wanted:
        for need, skip in wanted:
            got: list[Event] = yield from fetch_crl(state, need.cert, need.issuer, now,
                                                    need.trustpoint, skip)
            for ev in got:
                state = evolve(state, ev, now)
            events += got
        verdict, _ = judge(state, blobs, chain, purpose, at, name)
    events.append(verdict_event(verdict))
    return verdict, events


def _backed_off(state: DeviceState, m: Missing, now: int) -> frozenset[str] | None:
    """The sources of `m`'s CRL not to ask now (they failed less than a minute ago), or None
    when that is every source there is: then there is nothing to fetch."""
    tp = m.trustpoint if m.trustpoint is not None else trustpoint_of_issuer(state, m.issuer)
    uris = [s.uri for s in crl_sources(state, m.cert, m.issuer, tp)] or [NO_SOURCE]
    skip = frozenset(u for u in uris if state.validations.recently_failed(u, now))
    return None if skip == set(uris) else skip


def _distinct(missing: list[Missing]) -> list[Missing]:
    seen: dict[tuple[str, str], Missing] = {}
    for m in missing:
        seen.setdefault((fingerprint(m.cert), fingerprint(m.issuer)), m)
    return list(seen.values())
