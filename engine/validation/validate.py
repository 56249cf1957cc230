"""Validating a peer on the engine: decide, fetch the CRLs that were missing or stale,
decide again, and return the events to record (the fetches' and the `PeerValidated`).

The generator yields the CRL fetches' effects (engine.revocation.fetch.fetch_crl, the one
fetch every path uses) and folds what they brought into a local copy of the state, so the
second decision sees exactly the state the log will hold just before `PeerValidated`: a
replay of the decision against that state gives the same Verdict (engine.validation.decide).
A fetch is tried once per validation and certificate, `crl optional` or not (the option
accepts a CRL that cannot be had; it does not skip trying), except for an issuer whose fetch
failed less than a minute ago (engine.validation.folded: the back-off).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from typing import Any

from engine.effects import Effect
from engine.revocation.fetch import fetch_crl
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
    wanted = [m for m in _distinct(missing)
              if not state.validations.recently_failed(m.issuer.subject.rfc4514_string(), now)]
    if wanted:
        for need in wanted:
            got: list[Event] = yield from fetch_crl(state, need.cert, need.issuer, now,
                                                    need.trustpoint)
            for ev in got:
                state = evolve(state, ev, now)
            events += got
        verdict, _ = judge(state, blobs, chain, purpose, at, name)
    events.append(verdict_event(verdict))
    return verdict, events


def _distinct(missing: list[Missing]) -> list[Missing]:
    seen: dict[tuple[str, str], Missing] = {}
    for m in missing:
        seen.setdefault((fingerprint(m.cert), fingerprint(m.issuer)), m)
    return list(seen.values())
