"""The CA trustpool: `crypto ca trustpool import url URL|clean`, the `crypto ca trustpool
policy` submode, `crypto ca rsa 1024 disable`, `show crypto ca trustpool [policy]`, and the
automatic update (a scheduled job on the engine clock).

An import or an automatic update fetches the bundle (FetchBundle), checks it whole
(engine.trustpool.bundle) and records it as one `TrustpoolImported` that replaces the
downloaded part of the pool; anything wrong is one `%` error naming the cause, and nothing is
recorded (an automatic attempt that fails records only `TrustpoolUpdateFailed`, for its
retry schedule and `show logging`). The update timer's legality is its machine's
(engine/machines/trustpool.py); when it is due is engine.trustpool.schedule's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from cryptography import x509

from engine.effects import Effect, Outcome
from engine.errors import OperatorError, PeerError, PeerReason, TrustledgerError
from engine.grammar import GRAMMAR, LINE, WORD, ArgKind, ArgSpec, Mode, well_formed_authority
from engine.machines import trustpool as timer_machine
from engine.schedule import Job
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_names
from engine.trustpool import messages
from engine.trustpool.bundle import Bundle, parse_bundle
from engine.trustpool.fetch import FetchBundle
from engine.trustpool.policy import POLICY_KEY, RSA_1024_KEY, policy_of, rsa_1024_disabled
from engine.trustpool.pool import entries
from engine.trustpool.schedule import next_attempt, next_warning
from engine.views import TrustpoolPolicyView, TrustpoolView
from events.trustpool import (
    TrustpoolCleaned,
    TrustpoolImported,
    TrustpoolPolicyWarned,
    TrustpoolUpdateFailed,
)

if TYPE_CHECKING:
    from engine.context import Ctx

G = GRAMMAR
POOL = Mode.TRUSTPOOL


def _bundle_url(s: str) -> str:
    """http://, https:// (with a host) or file: (a local path)."""
    if re.match(r"^https?://[^\s/]+(/\S*)?$", s, re.IGNORECASE):
        return well_formed_authority(s)
    if re.match(r"^file:(//(localhost)?)?/\S+$", s, re.IGNORECASE):
        return s
    raise ValueError(s)


BUNDLE_URL = ArgSpec(ArgKind("WORD", _bundle_url), "http://, https:// or file: url of the bundle")

G.describe({"trustpool": "CA trustpool", "import": "Import certificates into the trustpool"})

# -- configuration --------------------------------------------------------------------------------
# The reference gives `cabundle url`, `crl optional` and `description`; `vrf` and the layout of
# the submode follow IOS XR's configuration model (crypto ca trustpool policy / vrf NAME).

G.config("crypto ca trustpool policy", key=POLICY_KEY, enters=POOL, rank=55,
         help="Configure the CA trustpool policy",
         words={"trustpool": "CA trustpool", "policy": "Trustpool policy parameters"})
G.config("cabundle url <url>", key="cabundle url", mode=POOL,
         help="URL the CA bundle is downloaded from (manual and automatic updates)",
         args={"url": BUNDLE_URL},
         words={"cabundle": "CA bundle parameters", "url": "URL of the CA bundle"})
G.config("crl optional", key="crl optional", mode=POOL,
         help="Accept chains anchored in the trustpool when no CRL can be had",
         words={"crl": "Revocation checking of chains anchored in the trustpool",
                "optional": "Do not require a CRL"})
G.config("description <text>", key="description", mode=POOL, help="Trustpool policy description",
         args={"text": ArgSpec(LINE, "Up to 80 characters")},
         words={"description": "Trustpool policy description"})
G.config("vrf <name>", key="vrf", mode=POOL, help="VRF the bundle is fetched in (recorded; "
         "VRFs are not used)", args={"name": ArgSpec(WORD, "VRF name")},
         words={"vrf": "VRF the bundle is fetched in"})
G.config("crypto ca rsa 1024 disable", key=RSA_1024_KEY, rank=56,
         help="Do not use trustpool certificates with RSA keys of 1024 bits or less",
         words={"rsa": "RSA key policy", "1024": "RSA keys of 1024 bits or less",
                "disable": "Do not use them"})


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


IMPORT_URL_HELP = "Import from a URL (or 'clean' to remove the downloaded certificates)"


@G.action("crypto ca trustpool import url <url>",
          help="Download a CA bundle into the trustpool (replaces the downloaded part)",
          args={"url": BUNDLE_URL},
          words={"url": IMPORT_URL_HELP})
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
    lines.append(f"% {len(bundle.ders)} CA certificate{'s' if len(bundle.ders) != 1 else ''} "
                 f"downloaded into the trustpool ({bundle.signature})" +
                 (f"; {shadowed} built-in certificate{'s' if shadowed != 1 else ''} inactive "
                  "while they are there (same subject)." if shadowed else "."))
    return Outcome(events=[ev], output="\n".join(lines))


def _same_as_downloaded(state: DeviceState, bundle: Bundle) -> bool:
    """The bundle brings exactly the certificates already downloaded: the event records only
    that (the log holds each bundle's certificates once)."""
    return bundle.ders == tuple(c.der for c in state.trustpool.downloaded)


def _shadowed(state: DeviceState, bundle: Bundle) -> int:
    subjects = {c.subject.public_bytes() for c in bundle.certificates}
    return sum(1 for c in state.trustpool.builtin if c.subject in subjects)


@G.action("crypto ca trustpool import url clean",
          help="Remove every downloaded certificate from the trustpool (built-ins stay)",
          words={"url": IMPORT_URL_HELP, "clean": "Remove the downloaded certificates"})
def import_clean(ctx: Ctx) -> Outcome:
    n = len(ctx.state.trustpool.downloaded)
    if not n:
        return Outcome(output="% The trustpool holds no downloaded certificates: nothing "
                              "to remove.")
    ev = TrustpoolCleaned(n)
    return Outcome(events=[ev], output=messages.cleaned(ev))


# -- show -----------------------------------------------------------------------------------------


@G.action("show crypto ca trustpool", help="Show the CA trustpool's certificates")
def show_trustpool(ctx: Ctx) -> Outcome:
    return Outcome(output=TrustpoolView(ctx.state, ctx.now))


@G.action("show crypto ca trustpool policy", help="Show the CA trustpool policy",
          words={"policy": "Trustpool policy, last update and next automatic update"})
def show_policy(ctx: Ctx) -> Outcome:
    return Outcome(output=TrustpoolPolicyView(ctx.state, ctx.now))


# -- the automatic update (scheduled) -------------------------------------------------------------


def due_update(state: DeviceState, now: int) -> list[Job]:
    """The trustpool update attempt, or the missing-url warning, if due at `now` (a timer
    listed in engine/device_timers.py). Each job's event moves its due time past the time it
    ran at (the schedule counts from the attempt; the warning is daily)."""
    pool = state.trustpool
    if policy_of(state).cabundle_url is not None:
        at = next_attempt(pool)
        return [Job("trustpool update", at, _update)] if at is not None and at <= now else []
    at = next_warning(pool)
    if at is None or at > now:
        return []
    return [Job("trustpool warning", at, _warn, notice=True)]


def _update(state: DeviceState, now: int) -> Generator[Effect, Any, Outcome]:
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


def _warn(state: DeviceState, now: int) -> Outcome:
    if timer_machine.fire(state, "warn") is None:
        return Outcome()
    ev = TrustpoolPolicyWarned(state.trustpool.target)
    return Outcome(events=[ev], output=messages.warned(ev))

