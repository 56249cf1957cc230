"""The CRL refresh timer: an enrolled trustpoint fetches its CA's CRL again when the cached one
reaches its nextUpdate, so a revocation of its own certificate is found without anyone asking
(issue 16 item 3). `due_refresh` is listed in engine/device_timers.py; its jobs are named
"crl <trustpoint>".

When a job is due, for an enrolled trustpoint (its newest usable router certificate `cert`,
its CA certificate `ca`):
- no fetch made for this trustpoint since `cert` was installed: one fetch, due when `cert`
  was installed (right after the enrollment completes). Even with a CRL cached: a CA may
  answer a re-enrollment with the same key pair with the certificate it revoked, which the
  cached CRL lists (tests/revocation/test_revocation_revoked.py). If no CRL is cached and
  this fetch gives none, no more (a CA without any CRL is not asked every hour);
- a cached CRL with a nextUpdate: due at that nextUpdate;
- a fetch made at or after that nextUpdate that gave no fresh CRL (it failed, or the CA still
  publishes the stale one: `%PKI-4-CRL_STALE`, said once per CRL, with its nextUpdate):
  retried 5 minutes, 15 minutes, 1 hour and 4 hours after the failure, then daily
  (`RETRY_MINUTES`), until a fresh CRL comes in. Soon at first (a CA publishing late, a
  directory restarting), then rarely: a CA that stopped publishing is not asked every hour
  for months, and a peer's validation does not wait for this timer (it fetches a missing or
  stale CRL itself, from a source at most once a minute: engine.validation.folded);
- a cached CRL without a nextUpdate: as one past it, since the fetch that brought it (RFC
  5280 §5.1.2.5: "Conforming CRL issuers MUST include the nextUpdate time in all CRLs"; the
  cache and validation never take such a CRL as current, engine.revocation.verify), so it is
  retried on the same schedule until a CRL with a nextUpdate comes in. Not once a minute, as
  a validation may: that back-off spaces fetches a handshake asks for; this timer runs
  whether anyone validates or not.

Fetching is `engine.revocation.fetch.fetch_crl` with the trustpoint named, so what it finds
(the CRL, a failure, the router's own certificate on the CRL) becomes events the one way.
The trustpoint's `crl_fetched_at` and `crl_failures` (folded below from `CrlFetched` and
`CrlFetchFailed` naming it) say when it last fetched and how many fetches in a row gave no
fresh CRL, so the schedule is a pure function of the log: a restarted engine, a replay and a
`clock set` walk see the same jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from engine.effects import Effect, Outcome
from engine.machines.trustpoint import Lifecycle
from engine.revocation import messages
from engine.revocation.cache import crl_for
from engine.schedule import Job
from engine.state import DeviceState
from engine.trustpoints import (
    RouterCertificate,
    TrustpointStatus,
    status_of,
    usable_certificates,
)
from events.registry import Event

if TYPE_CHECKING:  # parsed when a certificate is there: not at every open
    from cryptography import x509


MINUTE = 60 * 1_000_000
RETRY_MINUTES = (5, 15, 60, 240, 1440)
"""Minutes from a fetch that gave no fresh CRL to the next try: the n-th failure in a row
waits RETRY_MINUTES[n-1], the last one from then on."""


def retry_delay(failures: int) -> int:
    """µs to wait after `failures` fetches in a row gave no fresh CRL (at least one)."""
    return RETRY_MINUTES[min(max(failures, 1), len(RETRY_MINUTES)) - 1] * MINUTE


def refresh_due_at(state: DeviceState, st: TrustpointStatus) -> int | None:
    """When the trustpoint's next CRL fetch is due (µs), or None if none is."""
    pair = _certificates(st)
    if st.lifecycle is not Lifecycle.ENROLLED or pair is None:
        return None
    rc, cert, ca = pair
    if st.crl_fetched_at < rc.installed_at:
        return rc.installed_at
    cached = crl_for(state, cert, ca)
    if cached is None:
        return None
    if cached.next_update is None or st.crl_fetched_at >= cached.next_update:
        return st.crl_fetched_at + retry_delay(st.crl_failures)
    return cached.next_update


def due_refresh(state: DeviceState, now: int) -> list[Job]:
    """The trustpoints whose CRL is due for a fetch (a timer of engine/device_timers.py)."""
    jobs = []
    for name, st in state.trustpoints.items():
        at = refresh_due_at(state, st)
        if at is not None and at <= now:
            jobs.append(Job(f"crl {name}", at, _refresher(name)))
    return jobs


def _refresher(name: str) -> Callable[[DeviceState, int], Generator[Effect, Any, Outcome]]:
    return lambda state, now: refresh(state, now, name)


def refresh(state: DeviceState, now: int, name: str) -> Generator[Effect, Any, Outcome]:
    """Fetch the CRL that covers the trustpoint's newest router certificate; the output is the
    messages the events log."""
    from engine.revocation.fetch import fetch_crl  # loaded when a refresh runs, not by a
    from engine.revocation.own import revoked_lines  # `show` that asks what is due

    pair = _certificates(status_of(state, name))
    if pair is None:  # gone since the job was due
        return Outcome()
    _, cert, ca = pair
    events = yield from fetch_crl(state, cert, ca, now, trustpoint=name)
    text = [line for ev in events if (line := _message(state, ev)) is not None]
    text += revoked_lines(events)
    return Outcome(events=events, output="".join(f"{line}\n" for line in text))


def _message(state: DeviceState, ev: Event) -> str | None:
    """The event's line, as the logging fold derives it (a stale CRL: once)."""
    from engine.revocation.model import CachedCrl
    from events.revocation import CrlFetched, CrlFetchFailed

    if isinstance(ev, CrlFetched):
        return messages.fetched_said(ev, state.crls.of_scope(CachedCrl.from_event(ev)))
    if isinstance(ev, CrlFetchFailed):
        return messages.fetch_failed(ev)
    return None


def _certificates(st: TrustpointStatus
                  ) -> tuple[RouterCertificate, x509.Certificate, x509.Certificate] | None:
    """The newest usable router certificate (as installed and parsed) and the CA's."""
    usable = usable_certificates(st)
    if not usable or st.ca_certificate is None:
        return None
    rc = max(usable, key=lambda c: c.installed_at)
    from cryptography import x509

    return (rc, x509.load_der_x509_certificate(rc.der),
            x509.load_der_x509_certificate(st.ca_certificate))
