"""What validations leave in the folded state (`DeviceState.validations`).

- The counters of `show crypto ca counters`: how many peer validations passed, failed (and
  for which reasons), and passed only because `crl optional` let a missing CRL go; folded
  from every `PeerValidated`, so they are what the log says, through restarts and replays.
  (The CRL fetch counters are the CRL cache's, `DeviceState.crls`.)
- The fetch back-off: when a CRL fetch for an issuer last failed (`CrlFetchFailed`). A
  validation does not fetch that issuer's CRL again within FETCH_RETRY_US of the failure:
  a CRL distribution point that is down costs one curl-timeout per minute, not one per
  handshake. The verdict meanwhile is the one the cache gives (CRL_UNAVAILABLE or
  CRL_STALE, or bypassed under `crl optional`); `crypto ca crl request` still fetches.

This module imports no engine state, so engine.state can hold the type.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.revocation import CrlFetchFailed
from events.validation import PeerValidated

BYPASSED = "CRL_BYPASSED"  # engine.validation.verdict.Code.CRL_BYPASSED
FETCH_RETRY_US = 60_000_000
MAX_REMEMBERED = 64  # issuers whose last failed fetch is kept (the oldest is forgotten)


@dataclass(frozen=True, slots=True)
class ValidationState:
    passed: int = 0  # bypassed ones included
    failed: int = 0
    bypassed: int = 0  # passed with `crl optional` standing in for a CRL
    by_reason: tuple[tuple[str, int], ...] = ()  # failures per reason code, sorted by code
    fetch_failed: tuple[tuple[str, int], ...] = ()  # (issuer RFC 4514, µs), oldest first

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

    def fetch_failure(self, ev: CrlFetchFailed, at: int) -> ValidationState:
        kept = [(i, t) for i, t in self.fetch_failed if i != ev.issuer_text]
        kept = [*kept[-(MAX_REMEMBERED - 1):], (ev.issuer_text, at)]
        return ValidationState(self.passed, self.failed, self.bypassed, self.by_reason,
                               tuple(kept))

    def recently_failed(self, issuer_text: str, now: int) -> bool:
        """A fetch of this issuer's CRL failed less than FETCH_RETRY_US before `now`."""
        return any(i == issuer_text and 0 <= now - t < FETCH_RETRY_US
                   for i, t in self.fetch_failed)
