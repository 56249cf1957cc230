"""`show crypto ca counters`, as folded state: how many peer validations passed, failed
(and for which reasons), and passed only because `crl optional` let a missing CRL go.

Folded from every `PeerValidated` (engine/device_folds.py; this module imports no
engine state, so engine.state can hold the type), so the counters are what the log
says, through restarts and replays; the CRL fetch counters are the CRL cache's
(`DeviceState.crls`), folded from `CrlFetched` and `CrlFetchFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.validation import PeerValidated

BYPASSED = "CRL_BYPASSED"  # engine.validation.verdict.Code.CRL_BYPASSED


@dataclass(frozen=True, slots=True)
class ValidationCounters:
    passed: int = 0  # bypassed ones included
    failed: int = 0
    bypassed: int = 0  # passed with `crl optional` standing in for a CRL
    by_reason: tuple[tuple[str, int], ...] = ()  # failures per reason code, sorted by code

    def counted(self, ev: PeerValidated) -> ValidationCounters:
        if ev.ok:
            return ValidationCounters(self.passed + 1, self.failed,
                                      self.bypassed + (BYPASSED in ev.reasons), self.by_reason)
        counts = dict(self.by_reason)
        for code in ev.reasons:
            if code != BYPASSED:  # not why it failed
                counts[code] = counts.get(code, 0) + 1
        return ValidationCounters(self.passed, self.failed + 1, self.bypassed,
                                  tuple(sorted(counts.items())))
