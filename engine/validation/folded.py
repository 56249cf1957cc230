"""What validations leave in the folded state (`DeviceState.validations`).

- The counters of `show crypto ca counters`: how many peer validations passed, failed (and
  for which reasons), and passed only because `crl optional` let a missing CRL go; folded
  from every `PeerValidated`, so they are what the log says, through restarts and replays.
  (The CRL fetch counters are the CRL cache's, `DeviceState.crls`.)
- The fetch back-off: when a fetch from a CRL source (a distribution point's URI, or
  `scep:<trustpoint>`) last failed: every failed attempt of a `CrlFetchFailed`, and those a
  `CrlFetched` lists before the source that worked (which is itself cleared). A validation
  does not ask a source again within FETCH_RETRY_US of its failure, and fetches nothing for
  a certificate whose every source is so: a CRL distribution point that is down costs one
  curl-timeout per minute, not one per handshake. The key is the URI the device itself
  chose to ask, never a name read from what a source answered (a forged CRL names whom it
  likes). The verdict meanwhile is the one the cache gives (CRL_UNAVAILABLE or CRL_STALE,
  or bypassed under `crl optional`), and its detail names the source that failed, when, and
  why (the attempt's own words, so an operator running `trustledger validate` sees the cause
  without `show logging`); `crypto ca crl request` still fetches.

This module imports no engine state, so engine.state can hold the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from events.revocation import CrlFetched, CrlFetchFailed
    from events.validation import PeerValidated

BYPASSED = "CRL_BYPASSED"  # engine.validation.verdict.Code.CRL_BYPASSED
FETCH_RETRY_US = 60_000_000
MAX_REMEMBERED = 64  # sources whose last failed fetch is kept (the oldest is forgotten)


@dataclass(frozen=True, slots=True)
class ValidationState:
    """The validation and CRL retrieval counters of `show crypto ca counters`."""

    passed: int = 0  # bypassed ones included
    failed: int = 0
    bypassed: int = 0  # passed with `crl optional` standing in for a CRL
    by_reason: tuple[tuple[str, int], ...] = ()  # failures per reason code, sorted by code
    fetch_failed: tuple[tuple[str, int, str], ...] = ()  # (source URI, µs, why), oldest first

    def counted(self, ev: PeerValidated) -> ValidationState:
        if ev.ok:
            return ValidationState(self.passed + 1, self.failed,
                                   self.bypassed + (BYPASSED in ev.reasons), self.by_reason,
                                   self.fetch_failed)
        counts = dict(self.by_reason)
        for code in ev.reasons:
            if code != BYPASSED:  # not why it failed
                counts[code] = counts.get(code, 0) + 1
        return ValidationState(self.passed, self.failed + 1, self.bypassed,
                               tuple(sorted(counts.items())), self.fetch_failed)

    def fetch_failure(self, ev: CrlFetchFailed | CrlFetched, at: int) -> ValidationState:
        from events.revocation import CrlFetched  # loaded when used (events.registry)

        why = dict(ev.attempts)  # a source tried twice: its last words
        worked = {ev.source} if isinstance(ev, CrlFetched) else set()
        kept = [f for f in self.fetch_failed if f[0] not in why.keys() | worked]
        kept += [(u, at, why[u]) for u in dict.fromkeys(u for u, _ in ev.attempts)]
        return ValidationState(self.passed, self.failed, self.bypassed, self.by_reason,
                               tuple(kept[-MAX_REMEMBERED:]))

    def failed_at(self, uri: str) -> int | None:
        """When a fetch from `uri` last failed (µs), if it is remembered."""
        return next((t for u, t, _ in self.fetch_failed if u == uri), None)

    def failure(self, uri: str) -> tuple[int, str] | None:
        """When a fetch from `uri` last failed (µs) and why, if it is remembered."""
        return next(((t, why) for u, t, why in self.fetch_failed if u == uri), None)

    def recently_failed(self, uri: str, now: int) -> bool:
        """A fetch from `uri` failed less than FETCH_RETRY_US before `now`."""
        t = self.failed_at(uri)
        return t is not None and 0 <= now - t < FETCH_RETRY_US
