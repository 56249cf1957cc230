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
from typing import TYPE_CHECKING, Any

from cryptography import x509

from engine.effects import Effect, Outcome
from engine.errors import PeerError, PeerReason
from engine.messages import log_date
from engine.revocation.cache import crl_timeout, key_of
from engine.revocation.fetch import cached_of, fetched_events, trustpoint_of_issuer
from engine.revocation.index import remember
from engine.revocation.messages import crl_number, summary
from engine.revocation.model import CachedCrl
from engine.revocation.own import revoked_lines
from engine.revocation.transport import FetchCRL, StoreCrl
from engine.revocation.verify import CrlRefused, VerifiedCrl, load_crl, verify_crl
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_names
from engine.trustpool.policy import rsa_1024_disabled
from engine.trustpool.pool import entries, load
from engine.views.state import CrlsView
from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed

if TYPE_CHECKING:
    from engine.context import Ctx


def request(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    uri = ctx.args["uri"]
    try:
        data: bytes = yield FetchCRL(uri, crl_timeout(ctx.state))
    except PeerError as e:  # an OperatorError (a replay fetches nothing) is raised as is
        return _failed(uri, e.text.rstrip("."))
    try:
        got, issuer = _verified(ctx.state, data, ctx.now)
    except CrlRefused as e:
        return _failed(uri, str(e))
    sha256: str = yield StoreCrl(got.der)
    remember(sha256, got.index)
    tp = trustpoint_of_issuer(ctx.state, issuer)
    cached = cached_of(got, uri, ctx.now, tp)
    events = fetched_events(ctx.state, cached)
    ev = events[0]
    assert isinstance(ev, CrlFetched)
    lines = [_fetched_line(ev), *revoked_lines(events)]  # and a router certificate on it
    kept = _kept_instead(ctx.state, cached)
    if kept is not None:
        lines.append(f"% The cached CRL of this issuer and scope is newer "
                     f"({crl_number(kept.number)}, last update {log_date(kept.this_update)}): "
                     "it is kept, this one is not used.")
    elif got.expired_at(ctx.now):
        why = ("has no next update (RFC 5280 5.1.2.5), so it is never current"
               if got.next_update is None else "is past its next update")
        lines.append(f"% Warning: the CRL {why}: it is cached, and shown as stale.")
    return Outcome(events=events, output="\n".join(lines) + "\n")


def _kept_instead(state: DeviceState, new: CachedCrl) -> CachedCrl | None:
    """The cached CRL that stays because `new` is older (the cache's rule), if any."""
    after = state.crls.with_crl(new).crls
    if new in after:
        return None
    return next(c for c in after if key_of(c) == key_of(new))


def _failed(uri: str, why: str) -> Outcome:
    """The attempt is recorded (counted, kept in `show logging`); the command fails. No
    issuer is recorded: the answer's issuer name is unverified (a forged CRL names whom it
    likes), so the attempt is known by its URI alone."""
    err = PeerError(PeerReason.BAD_ANSWER,
                    f"CRL request failed: {uri}: {why}. Nothing was cached.")
    return Outcome(events=[CrlFetchFailed(None, "", ((uri, why),))], output=err.message,
                   failure=err)


def _fetched_line(ev: CrlFetched) -> str:
    return f"% CRL fetched from {ev.source}: issuer {ev.issuer_text}, {summary(ev)}."


def issuer_candidates(state: DeviceState, now: int,
                      issuer: x509.Name | None = None) -> list[x509.Certificate]:
    """Whose CRLs the device takes: the trustpoints' CA certificates, then the usable
    trustpool certificates; with `issuer`, only those whose subject is that name (the pool's
    are matched by their recorded subject bytes before any is parsed: a request does not
    parse the whole pool, and the old roots' warnings stay quiet)."""
    ders = [der for n in trustpoint_names(state)
            if (der := status_of(state, n).ca_certificate) is not None]
    want = None if issuer is None else issuer.public_bytes()
    ders += [e.cert.der for e in entries(state.trustpool, rsa_1024_disabled(state))
             if (want is None or e.cert.subject == want) and e.usable_at(now)]
    certs = [load(d) for d in dict.fromkeys(ders)]
    return certs if issuer is None else [c for c in certs if c.subject == issuer]


def _verified(state: DeviceState, data: bytes,
              now: int) -> tuple[VerifiedCrl, x509.Certificate]:
    """The CRL verified by a certificate of its issuer, and that certificate."""
    crl = load_crl(data)
    named = issuer_candidates(state, now, crl.issuer)
    if not named:
        raise CrlRefused(f"its issuer {crl.issuer.rfc4514_string() or '(empty)'} is no "
                         "trustpoint's CA and not in the trustpool")
    refusal = CrlRefused("no certificate of its issuer verifies it")
    for cert in named:
        try:
            return verify_crl(data, cert, now=now), cert
        except CrlRefused as e:
            refusal = e
    raise refusal


def clear(ctx: Ctx) -> Outcome:
    n = len(ctx.state.crls.crls)
    if not n:
        return Outcome(output="% The CRL cache is empty.\n")
    what = "1 cached CRL" if n == 1 else f"{n} cached CRLs"
    return Outcome(events=[CrlCacheCleared(n)], output=f"% {what} removed.\n")


def show_crls(ctx: Ctx) -> Outcome:
    return Outcome(output=CrlsView(ctx.state, ctx.now))
