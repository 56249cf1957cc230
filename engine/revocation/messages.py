"""The `%PKI-...` messages of CRL retrieval: the handlers print them and the logging folds
derive the same lines from the same events, so `show logging` keeps them
(engine.device_folds)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed



def _date(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%H:%M:%S UTC %a %b %d %Y")


def _entries(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


def attempts_text(attempts: tuple[tuple[str, str], ...]) -> str:
    return "; ".join(f"{uri}: {why}" for uri, why in attempts)


def fetched(ev: CrlFetched) -> str:
    number = "no CRL number" if ev.number is None else f"number {ev.number}"
    nxt = "no next update" if ev.next_update is None else f"next update {_date(ev.next_update)}"
    return (f"%PKI-6-CRL_FETCHED: CRL of {ev.issuer_text} fetched from {ev.source}: {number}, "
            f"{_entries(ev.count)}, {nxt}")


def fetch_failed(ev: CrlFetchFailed) -> str:
    whose = f" for {ev.issuer_text}" if ev.issuer_text else ""  # a request knows no issuer
    return f"%PKI-3-CRL_FETCH_FAIL: CRL fetch{whose} failed: {attempts_text(ev.attempts)}"


def cleared(ev: CrlCacheCleared) -> str:
    what = "1 cached CRL" if ev.removed == 1 else f"{ev.removed} cached CRLs"
    return f"%PKI-6-CRL_CACHE_CLEARED: {what} removed"
