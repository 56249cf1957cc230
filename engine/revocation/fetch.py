"""Fetching the CRL that covers a certificate: the one generator every path uses
(`crypto ca crl request`, validation, the CRL refresh timer), and the one function that
turns a verified CRL into events.

`fetch_crl(state, cert, issuer, now, trustpoint=None)` tries, in this order, until one gives
a CRL that passes every check of engine.revocation.verify with `issuer`'s key:

1. the certificate's CRL distribution points, in the order they are listed: `http://` and
   `ldap://` URIs as they are, a directory name (a bare DN) read from the server of the
   trustpoint's `query url`;
2. SCEP GetCRL from the trustpoint's CA, when `issuer` is that trustpoint's CA certificate
   and the trustpoint can sign a request (an enrollment url, a key pair).

The trustpoint is the one given, else the one whose CA certificate is `issuer`. Each fetch
gets the `crypto ca crl curl-timeout` (seconds, in all). A CRL that verifies but is past its
nextUpdate is kept aside while the other sources are tried; if none gives a fresh one, the
newest such is recorded (stale: whoever decides with it sees so). It returns
`[CrlFetched]` (the failed attempts before it included) or `[CrlFetchFailed]` naming every
attempt and why it failed; the CRL's bytes are stored (`StoreCrl`) before the event exists.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from cryptography import x509

from engine.effects import Effect
from engine.errors import PeerError, TrustledgerError
from engine.keyformats import Encoding
from engine.keys import KeyAlgorithm
from engine.revocation.cache import crl_timeout
from engine.revocation.index import remember
from engine.revocation.ldap import CrlValues, LdapUrlError, resolve_dn
from engine.revocation.model import CachedCrl
from engine.revocation.own import own_certificates_revoked
from engine.revocation.transport import FetchCRL, StoreCrl
from engine.revocation.verify import CrlRefused, VerifiedCrl, newest_verified, verify_crl
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_config, trustpoint_names
from events.registry import Event
from events.revocation import CrlFetched, CrlFetchFailed

if TYPE_CHECKING:
    from engine.scep_client import CrlQuery  # loaded by the first GetCRL: a `show` never does

Attempt = tuple[str, str]  # (uri, why it failed)
NO_SOURCE = "(none)"  # the attempt recorded when a certificate's CRL has no source at all


@dataclass(frozen=True)
class Source:
    """One place to ask: a URI (with the GetCRL request for `scep:`), or why it cannot be
    asked (`error`), which is recorded as a failed attempt without touching the network."""

    uri: str
    scep: CrlQuery | None = None
    error: str = ""


def fetch_crl(state: DeviceState, cert: x509.Certificate, issuer: x509.Certificate, now: int,
              trustpoint: str | None = None, skip: frozenset[str] = frozenset(),
              ) -> Generator[Effect, Any, list[Event]]:
    """The events of fetching the CRL that covers `cert` (see the module's rules):
    `[CrlFetched]` or `[CrlFetchFailed]`; an OperatorError (a replay) propagates. The
    sources in `skip` are not asked (a validation's back-off)."""
    tp = trustpoint if trustpoint is not None else trustpoint_of_issuer(state, issuer)
    timeout = crl_timeout(state)
    attempts: list[Attempt] = []
    stale: tuple[VerifiedCrl, str] | None = None
    for src in crl_sources(state, cert, issuer, tp):
        if src.uri in skip:
            continue
        if src.error:
            attempts.append((src.uri, src.error))
            continue
        try:
            answer: bytes | CrlValues = yield FetchCRL(src.uri, timeout, src.scep)
            got = newest_verified(answer, lambda d: verify_crl(d, issuer, cert, now=now))
        except PeerError as e:  # an OperatorError (e.g. fetching in a replay) is no attempt
            attempts.append((src.uri, e.text.rstrip(".")))
            continue
        except CrlRefused as e:
            attempts.append((src.uri, str(e)))
            continue
        if not got.expired_at(now):
            return (yield from _record(state, got, src.uri, now, tp, attempts))
        attempts.append((src.uri, "the CRL has no next update (RFC 5280 5.1.2.5)"
                         if got.next_update is None else "the CRL is past its next update"))
        if stale is None or got.this_update > stale[0].this_update:
            stale = (got, src.uri)
    if stale is not None:
        return (yield from _record(state, stale[0], stale[1], now, tp, attempts))
    if not attempts:
        attempts.append((NO_SOURCE, "the certificate names no CRL distribution point and no "
                                   "trustpoint's CA issued it"))
    return [CrlFetchFailed(tp, issuer.subject.rfc4514_string(), tuple(attempts))]


def _record(state: DeviceState, got: VerifiedCrl, uri: str, now: int, tp: str | None,
            attempts: list[Attempt]) -> Generator[Effect, Any, list[Event]]:
    sha256: str = yield StoreCrl(got.der)
    remember(sha256, got.index)
    return fetched_events(state, cached_of(got, uri, now, tp), tuple(attempts))


def cached_of(got: VerifiedCrl, source: str, now: int, trustpoint: str | None) -> CachedCrl:
    return CachedCrl(got.sha256, got.issuer, got.issuer_text, got.authority_key_id,
                     None if got.number is None else str(got.number),
                     got.this_update, got.next_update, source, now, trustpoint,
                     got.idp_uris, len(got.index), got.verified_with, got.only)


def fetched_events(state: DeviceState, cached: CachedCrl,
                   attempts: tuple[Attempt, ...] = ()) -> list[Event]:
    """The events of a verified, stored CRL: every successful fetch goes through here (what
    else a new CRL means, e.g. a router certificate on it, is added here, once)."""
    return [CrlFetched(cached.sha256, cached.issuer, cached.issuer_text, cached.authority_key_id,
                       cached.number, cached.this_update, cached.next_update, cached.source,
                       cached.fetched_at, cached.trustpoint, cached.idp_uris, cached.count,
                       cached.verified_with, cached.only, attempts),
            *own_certificates_revoked(state, cached)]  # a router certificate on it


# -- where to ask ---------------------------------------------------------------------------------


def trustpoint_of_issuer(state: DeviceState, issuer: x509.Certificate) -> str | None:
    """The trustpoint whose CA certificate is `issuer`, if any (the first configured)."""
    der = issuer.public_bytes(Encoding.DER)
    return next((n for n in trustpoint_names(state)
                 if status_of(state, n).ca_certificate == der), None)


def crl_sources(state: DeviceState, cert: x509.Certificate, issuer: x509.Certificate,
                trustpoint: str | None) -> list[Source]:
    cfg = trustpoint_config(state, trustpoint) if trustpoint else None
    query_url = cfg.query_url if cfg is not None else None
    found: list[Source] = []
    for name in _cdp_names(cert):
        if isinstance(name, x509.Name):
            found.append(_directory(name.rfc4514_string(), query_url))
            continue
        scheme = name.value.partition(":")[0].lower()
        dn = _hostless_dn(name.value) if scheme == "ldap" else None
        if dn is not None:
            found.append(_directory(dn, query_url))
        elif scheme in ("http", "ldap"):
            found.append(Source(name.value))
        else:
            found.append(Source(name.value, error=f"the url scheme {scheme!r} is not "
                                                  "supported (http, ldap)"))
    scep = _scep_source(state, cert, issuer, trustpoint)
    if scep is not None:
        found.append(scep)
    return _once(found)


def _hostless_dn(uri: str) -> str | None:
    """The DN of an LDAP URL that names no server: `ldap:///CN=ca,O=x`, or IOS's
    `ldap://CN=ca,O=x` (a DN where the host would be). None for a URL with a server."""
    rest = uri.partition("://")[2]
    host, _, path = rest.partition("/")
    if not host:
        return unquote(path.partition("?")[0])
    if "=" in host.partition("?")[0]:
        return unquote(rest.partition("?")[0])
    return None


def _directory(dn: str, query_url: str | None) -> Source:
    """A DN read from the server of the trustpoint's `query url`."""
    try:
        return Source(resolve_dn(dn, query_url).uri)
    except LdapUrlError as e:
        return Source(f"ldap:///{quote(dn, safe=',=+;')}", error=str(e))


def _once(sources: list[Source]) -> list[Source]:
    """Each URI once, where it first appears (two CDPs may name the same place)."""
    seen: set[str] = set()
    kept = []
    for src in sources:
        if src.uri not in seen:
            seen.add(src.uri)
            kept.append(src)
    return kept


def _cdp_names(cert: x509.Certificate) -> list[x509.UniformResourceIdentifier | x509.Name]:
    try:
        cdps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    names: list[x509.UniformResourceIdentifier | x509.Name] = []
    for dp in cdps:
        for n in dp.full_name or ():
            if isinstance(n, x509.UniformResourceIdentifier):
                names.append(n)
            elif isinstance(n, x509.DirectoryName):
                names.append(n.value)
        if dp.relative_name is not None:  # RFC 5280 4.2.1.13: relative to the CRL issuer
            names.append(x509.Name([*cert.issuer.rdns, dp.relative_name]))
    return names


def _scep_source(state: DeviceState, cert: x509.Certificate, issuer: x509.Certificate,
                 trustpoint: str | None) -> Source | None:
    if trustpoint is None:
        return None
    uri = f"scep:{trustpoint}"
    cfg = trustpoint_config(state, trustpoint)
    status = status_of(state, trustpoint)
    if status.ca_certificate != issuer.public_bytes(Encoding.DER):
        return None  # the trustpoint's CA did not issue this certificate: not its CRL
    if cfg is None or cfg.scep_url is None:
        return Source(uri, error="the trustpoint has no enrollment url")
    pair = state.keys.signing_pair(KeyAlgorithm.RSA, cfg.key_label)
    if pair is None:
        return Source(uri, error=f"the trustpoint's key pair {cfg.key_label} does not exist")
    from engine.commands.trustpoint import ca_view, identity
    from engine.scep_client import CrlQuery

    try:
        who = identity(state, cfg)
    except TrustledgerError as e:
        return Source(uri, error=e.text.rstrip("."))
    mine = next((c.der for c in status.certificates if c.key_id == pair.key_id), None)
    return Source(uri, CrlQuery(cfg.scep_url, pair, who, ca_view(status),
                                cert.public_bytes(Encoding.DER), cfg.message_digest, mine))
