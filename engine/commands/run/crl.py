"""CRLs at the operator's hand: `crypto ca crl request <uri>` (fetch one now), `clear crypto
ca crl` (empty the cache), `crypto ca crl curl-timeout <5-50>` (how long a fetch may take, in
all) and `show crypto ca crls`: what the commands do
(declared in engine/commands/crl.py).

A requested CRL is verified like any other (engine.revocation.verify), against the issuer
it names: a trustpoint's CA certificate or a usable trustpool certificate with that subject
whose key verifies it. What it fetched is recorded as `CrlFetched` (engine.revocation.fetch
fetched_events, the one path); a request that gets no usable CRL is one `%` error naming the
source and the cause, and records `CrlFetchFailed` (the fetch was attempted: counted, and
kept in `show logging`), nothing else.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509

from engine.effects import Effect, Outcome
from engine.errors import PeerError, PeerReason
from engine.revocation.cache import crl_timeout
from engine.revocation.fetch import cached_of, fetched_events, trustpoint_of_issuer
from engine.revocation.index import remember
from engine.revocation.transport import FetchCRL, StoreCrl
from engine.revocation.verify import CrlRefused, VerifiedCrl, load_crl, verify_crl
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_names
from engine.trustpool.policy import rsa_1024_disabled
from engine.trustpool.pool import entries
from engine.views import CrlsView
from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed

if TYPE_CHECKING:
    from engine.context import Ctx


def request(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    uri = ctx.args["uri"]
    try:
        data: bytes = yield FetchCRL(uri, crl_timeout(ctx.state))
    except PeerError as e:  # an OperatorError (a replay fetches nothing) is raised as is
        return _failed(uri, "(unknown)", e.text.rstrip("."))
    try:
        got = _verified(ctx.state, data, ctx.now)
    except CrlRefused as e:
        return _failed(uri, _issuer_of(data), str(e))
    sha256: str = yield StoreCrl(got.der)
    remember(sha256, got.index)
    tp = trustpoint_of_issuer(ctx.state, _issuer_cert(ctx.state, got, ctx.now))
    events = fetched_events(ctx.state, cached_of(got, uri, ctx.now, tp))
    ev = events[0]
    assert isinstance(ev, CrlFetched)
    lines = [_fetched_line(ev)]
    if got.expired_at(ctx.now):
        lines.append("% Warning: the CRL is past its next update: it is cached, and shown "
                     "as stale.")
    return Outcome(events=events, output="\n".join(lines) + "\n")


def _failed(uri: str, issuer: str, why: str) -> Outcome:
    """The attempt is recorded (counted, kept in `show logging`); the command fails."""
    err = PeerError(PeerReason.BAD_ANSWER,
                    f"CRL request failed: {uri}: {why}. Nothing was cached.")
    return Outcome(events=[CrlFetchFailed(None, issuer, ((uri, why),))], output=err.message,
                   failure=err)


def _fetched_line(ev: CrlFetched) -> str:
    number = "no CRL number" if ev.number is None else f"number {ev.number}"
    count = "1 entry" if ev.count == 1 else f"{ev.count} entries"
    nxt = "no next update" if ev.next_update is None else f"next update {_date(ev.next_update)}"
    return f"% CRL fetched from {ev.source}: issuer {ev.issuer_text}, {number}, {count}, {nxt}."


def _date(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%H:%M:%S UTC %a %b %d %Y")


def _issuer_of(data: bytes) -> str:
    try:
        return load_crl(data).issuer.rfc4514_string()
    except CrlRefused:
        return "(not a CRL)"


def issuer_candidates(state: DeviceState, now: int) -> list[x509.Certificate]:
    """Whose CRLs the device takes: the trustpoints' CA certificates, then the usable
    trustpool certificates."""
    ders = [der for n in trustpoint_names(state)
            if (der := status_of(state, n).ca_certificate) is not None]
    ders += [e.cert.der for e in entries(state.trustpool, rsa_1024_disabled(state))
             if e.usable_at(now)]
    return [x509.load_der_x509_certificate(d) for d in dict.fromkeys(ders)]


def _verified(state: DeviceState, data: bytes, now: int) -> VerifiedCrl:
    crl = load_crl(data)
    named = [c for c in issuer_candidates(state, now) if c.subject == crl.issuer]
    if not named:
        raise CrlRefused(f"its issuer {crl.issuer.rfc4514_string() or '(empty)'} is no "
                         "trustpoint's CA and not in the trustpool")
    refusal = CrlRefused("no certificate of its issuer verifies it")
    for cert in named:
        try:
            return verify_crl(data, cert)
        except CrlRefused as e:
            refusal = e
    raise refusal


def _issuer_cert(state: DeviceState, got: VerifiedCrl, now: int) -> x509.Certificate:
    from engine.revocation.cache import spki_sha256

    return next(c for c in issuer_candidates(state, now)
                if spki_sha256(c) == got.verified_with and c.subject.public_bytes() == got.issuer)


def clear(ctx: Ctx) -> Outcome:
    n = len(ctx.state.crls.crls)
    if not n:
        return Outcome(output="% The CRL cache is empty.\n")
    what = "1 cached CRL" if n == 1 else f"{n} cached CRLs"
    return Outcome(events=[CrlCacheCleared(n)], output=f"% {what} removed.\n")


def show_crls(ctx: Ctx) -> Outcome:
    return Outcome(output=CrlsView(ctx.state, ctx.now))
