"""The CA trustpool, what its commands and its automatic update do (declared, with the
timer, in engine/commands/trustpool.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from cryptography import x509

from engine.effects import Effect, Outcome
from engine.errors import OperatorError, PeerError, PeerReason, TrustledgerError
from engine.machines import trustpool as timer_machine
from engine.messages import plural
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_names
from engine.trustpool import messages
from engine.trustpool.bundle import Bundle, parse_bundle
from engine.trustpool.fetch import FetchBundle
from engine.trustpool.policy import policy_of, rsa_1024_disabled
from engine.trustpool.pool import entries
from engine.views.state import TrustpoolPolicyView, TrustpoolView
from events.trustpool import (
    TrustpoolCleaned,
    TrustpoolImported,
    TrustpoolPolicyWarned,
    TrustpoolUpdateFailed,
)

if TYPE_CHECKING:
    from engine.context import Ctx


# -- import and clean -----------------------------------------------------------------------------


def _usable(state: DeviceState, now: int) -> list[x509.Certificate]:
    return [e.cert.certificate() for e in entries(state.trustpool, rsa_1024_disabled(state))
            if e.usable_at(now)]


def tls_anchors(state: DeviceState, now: int) -> tuple[bytes, ...]:
    """Whom an https download trusts: the pool's usable certificates and the trustpoints'
    CA certificates."""
    cas = [der for name in trustpoint_names(state)
           if (der := status_of(state, name).ca_certificate) is not None]
    pool = [e.cert.der for e in entries(state.trustpool, rsa_1024_disabled(state))
            if e.usable_at(now)]
    return tuple(dict.fromkeys([*pool, *cas]))


def fetch_and_check(state: DeviceState, now: int, url: str
                    ) -> Generator[Effect, Any, tuple[Bundle, str]]:
    """The bundle at `url`, fetched and checked, and its SHA-256; a `TrustledgerError` (the
    fetch's or the check's) names the cause."""
    data: bytes = yield FetchBundle(url, tls_anchors(state, now))
    return parse_bundle(data, _usable(state, now), now), hashlib.sha256(data).hexdigest()


def _refused(url: str, err: TrustledgerError) -> TrustledgerError:
    text = f"Trustpool import from {url} failed: {err.text.rstrip('.')}. Nothing was changed."
    if isinstance(err, OperatorError):
        return OperatorError(err.reason, text)
    return PeerError(err.reason if isinstance(err, PeerError) else PeerReason.BAD_ANSWER, text)


def import_url(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    url = ctx.args["url"]
    try:
        bundle, digest = yield from fetch_and_check(ctx.state, ctx.now, url)
    except TrustledgerError as err:
        raise _refused(url, err) from err
    same = _same_as_downloaded(ctx.state, bundle)
    ev = TrustpoolImported(url, digest, () if same else bundle.ders, bundle.signature,
                           bundle.notes, False, same)
    lines = [f"% {note}." for note in bundle.notes]
    if bundle.signature == "unsigned":
        lines.append("% Warning: the bundle is not signed: its certificates are trusted on "
                     "the strength of the url alone.")
    shadowed = _shadowed(ctx.state, bundle)
    lines.append(f"% {plural(len(bundle.ders), 'CA certificate')} downloaded into the "
                 f"trustpool ({bundle.signature})" +
                 (f"; {plural(shadowed, 'built-in certificate')} inactive while they are "
                  "there (same subject)." if shadowed else "."))
    return Outcome(events=[ev], output="\n".join(lines))


def _same_as_downloaded(state: DeviceState, bundle: Bundle) -> bool:
    """The bundle brings exactly the certificates already downloaded: the event records only
    that (the log holds each bundle's certificates once)."""
    return bundle.ders == tuple(c.der for c in state.trustpool.downloaded)


def _shadowed(state: DeviceState, bundle: Bundle) -> int:
    subjects = {c.subject.public_bytes() for c in bundle.certificates}
    return sum(1 for c in state.trustpool.builtin if c.subject in subjects)


def import_clean(ctx: Ctx) -> Outcome:
    n = len(ctx.state.trustpool.downloaded)
    if not n:
        return Outcome(output="% The trustpool holds no downloaded certificates: nothing "
                              "to remove.")
    ev = TrustpoolCleaned(n)
    return Outcome(events=[ev], output=messages.cleaned(ev))


# -- show -----------------------------------------------------------------------------------------


def show_trustpool(ctx: Ctx) -> Outcome:
    return Outcome(output=TrustpoolView(ctx.state, ctx.now))


def show_policy(ctx: Ctx) -> Outcome:
    return Outcome(output=TrustpoolPolicyView(ctx.state, ctx.now))


# -- the automatic update (scheduled) -------------------------------------------------------------


def update(state: DeviceState, now: int) -> Generator[Effect, Any, Outcome]:
    url = policy_of(state).cabundle_url
    if url is None or timer_machine.fire(state, "fetch") is None:
        return Outcome()
    try:
        bundle, digest = yield from fetch_and_check(state, now, url)
    except TrustledgerError as err:
        failed = TrustpoolUpdateFailed(url, err.text.rstrip("."))
        return Outcome(events=[failed], output=messages.update_failed(failed))
    same = _same_as_downloaded(state, bundle)
    ev = TrustpoolImported(url, digest, () if same else bundle.ders, bundle.signature,
                           bundle.notes, True, same)
    return Outcome(events=[ev], output=messages.imported(ev))


def warn(state: DeviceState, now: int) -> Outcome:
    if timer_machine.fire(state, "warn") is None:
        return Outcome()
    ev = TrustpoolPolicyWarned(state.trustpool.target)
    return Outcome(events=[ev], output=messages.warned(ev))

