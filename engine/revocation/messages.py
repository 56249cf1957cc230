"""The `%PKI-...` messages of CRL retrieval: the handlers print them and the logging folds
derive the same lines from the same events, so `show logging` keeps them
(engine.device_folds)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.messages import log_date, plural

if TYPE_CHECKING:
    from engine.revocation.model import CachedCrl
    from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed


def attempts_text(attempts: tuple[tuple[str, str], ...]) -> str:
    return "; ".join(f"{uri}: {why}" for uri, why in attempts)


def summary(ev: CrlFetched) -> str:
    """`number 3, 2 entries, next update 00:00:00 UTC Thu Dec 04 2025`."""
    nxt = "no next update" if ev.next_update is None else \
        f"next update {log_date(ev.next_update)}"
    return f"{crl_number(ev.number)}, {plural(ev.count, 'entry', 'entries')}, {nxt}"


def fetched(ev: CrlFetched) -> str:
    return (f"%PKI-6-CRL_FETCHED: CRL of {ev.issuer_text} fetched from {ev.source}: "
            f"{summary(ev)}")


def stale(ev: CrlFetched) -> str:
    """A fetch that gave a CRL already past its nextUpdate (or without one, never fresh):
    the CA published no newer one."""
    past = ("has no next update (RFC 5280 5.1.2.5), so it is never current"
            if ev.next_update is None else
            f"is past its next update ({log_date(ev.next_update)})")
    return (f"%PKI-4-CRL_STALE: CRL of {ev.issuer_text} fetched from {ev.source} {past}: "
            f"{crl_number(ev.number)}, {plural(ev.count, 'entry', 'entries')}; the CA has "
            "published no newer one")


def fetched_said(ev: CrlFetched, before: CachedCrl | None) -> str | None:
    """What a fetch says, given the CRL cached for its issuer and scope `before` it: a fresh
    CRL at info; a stale one as a warning, once per CRL (None when the same CRL was already
    fetched stale: the refresh timer asks again on its back-off, and says it once)."""
    if ev.next_update is not None and ev.next_update > ev.fetched_at:
        return fetched(ev)
    if before is not None and before.sha256 == ev.sha256 and \
            not before.fresh_at(before.fetched_at):
        return None
    return stale(ev)


def crl_number(number: str | None) -> str:
    return "no CRL number" if number is None else f"number {number}"


def fetch_failed(ev: CrlFetchFailed) -> str:
    whose = f" for {ev.issuer_text}" if ev.issuer_text else ""  # a request knows no issuer
    return f"%PKI-3-CRL_FETCH_FAIL: CRL fetch{whose} failed: {attempts_text(ev.attempts)}"


def cleared(ev: CrlCacheCleared) -> str:
    what = "1 cached CRL" if ev.removed == 1 else f"{ev.removed} cached CRLs"
    return f"%PKI-6-CRL_CACHE_CLEARED: {what} removed"
