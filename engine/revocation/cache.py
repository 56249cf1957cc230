"""The CRL cache folded from the log (`DeviceState.crls`), and the questions asked of it.

Rules:
- the cache holds, per issuer (its Name, and the key that verified the CRL) and scope (the
  issuing distribution point's URIs and `onlyContains...` restriction), the newest complete
  CRL fetched: a `CrlFetched` replaces the cached one unless it is older: a lower cRLNumber
  when both have one (RFC 5280 §5.2.3: "monotonically increasing" for a given scope and
  issuer), else an earlier thisUpdate (then the lower number on a tie); a CRL whose
  thisUpdate is after the fetch is refused before it gets here (engine.revocation.verify);
- a CRL stays cached past its nextUpdate (stale: `CachedCrl.fresh_at` says so, and whoever
  decides with it compares); only a newer CRL or `clear crypto ca crl` (`CrlCacheCleared`)
  replaces it;
- `crl_for(state, cert, issuer)` is the cached CRL that covers `cert`: the CRL's issuer is
  the certificate's issuer, it was verified with `issuer`'s key, and its scope covers the
  certificate (RFC 5280 §5.2.5, §6.3.3 (b)).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.keyformats import Encoding, PublicFormat
from engine.revocation.model import CachedCrl

if TYPE_CHECKING:  # the state imports this module: a `show` never loads cryptography.x509
    from cryptography import x509

    from engine.state import DeviceState

CURL_TIMEOUT_KEY = "crypto ca crl curl-timeout"
DEFAULT_CURL_TIMEOUT = 5  # seconds: the reference's default for `crypto ca crl curl-timeout`

CacheKey = tuple[bytes, str, tuple[str, ...], str]  # issuer, verified_with, idp_uris, only


@dataclass(frozen=True, slots=True)
class CrlCache:
    """The newest complete CRL per issuer and scope (a few per CA: a tuple, searched), and
    how many fetches ended with a CRL and with none."""

    crls: tuple[CachedCrl, ...] = ()
    fetches: int = 0  # fetches that ended with a CRL (`CrlFetched`)
    failures: int = 0  # fetches that ended with none (`CrlFetchFailed`)

    def entries(self) -> list[CachedCrl]:
        """Every cached CRL, by issuer then scope (the order `show crypto ca crls` uses)."""
        return sorted(self.crls, key=lambda c: (c.issuer_text, c.idp_uris, c.only))

    def with_crl(self, crl: CachedCrl) -> CrlCache:
        key = key_of(crl)
        old = next((c for c in self.crls if key_of(c) == key), None)
        fetches = self.fetches + 1
        if old is not None and _older(crl, old):
            return CrlCache(self.crls, fetches, self.failures)
        kept = tuple(c for c in self.crls if c is not old)
        return CrlCache((*kept, crl), fetches, self.failures)

    def failed(self) -> CrlCache:
        return CrlCache(self.crls, self.fetches, self.failures + 1)

    def cleared(self) -> CrlCache:
        return CrlCache((), self.fetches, self.failures)


def key_of(crl: CachedCrl) -> CacheKey:
    return crl.issuer, crl.verified_with, crl.idp_uris, crl.only


def _older(new: CachedCrl, old: CachedCrl) -> bool:
    if new.number is not None and old.number is not None:
        return new.number_value < old.number_value
    if new.this_update != old.this_update:
        return new.this_update < old.this_update
    return new.number_value < old.number_value


def spki_sha256(cert: x509.Certificate) -> str:
    """Hex SHA-256 of a certificate's SubjectPublicKeyInfo: which key verified a CRL."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def cdp_uris(cert: x509.Certificate) -> tuple[str, ...]:
    """The URIs of the certificate's CRL distribution points' fullNames, in order."""
    from cryptography import x509  # loaded already: `cert` is one

    try:
        cdps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.value for dp in cdps for name in (dp.full_name or ())
                 if isinstance(name, x509.UniformResourceIdentifier))


def is_ca(cert: x509.Certificate) -> bool:
    from cryptography import x509  # loaded already: `cert` is one

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def covers(crl: CachedCrl, cert: x509.Certificate) -> bool:
    """RFC 5280 §6.3.3 (b)(2): an IDP naming distribution points covers a certificate whose
    CRL distribution points name one of them; `onlyContainsUserCerts` / `onlyContainsCACerts`
    cover only end-entity / CA certificates."""
    if crl.only == "user" and is_ca(cert):
        return False
    if crl.only == "ca" and not is_ca(cert):
        return False
    return not crl.idp_uris or bool(set(crl.idp_uris) & set(cdp_uris(cert)))


def crl_for(state: DeviceState, cert: x509.Certificate,
            issuer: x509.Certificate) -> CachedCrl | None:
    """The cached complete CRL that covers `cert`, verified with `issuer`'s key: the newest
    when several scopes cover it (a scoped CRL before a full one on a tie). Fresh or not:
    the caller compares `next_update` with its time."""
    issuer_der = cert.issuer.public_bytes()
    key = spki_sha256(issuer)
    found = [c for c in state.crls.crls
             if c.issuer == issuer_der and c.verified_with == key and covers(c, cert)]
    if not found:
        return None
    return max(found, key=lambda c: (c.this_update, c.number_value, bool(c.idp_uris)))


def crl_timeout(state: DeviceState) -> int:
    """`crypto ca crl curl-timeout <5-50>`: seconds a whole CRL fetch may take (default 5)."""
    line = state.config.line((CURL_TIMEOUT_KEY,))
    return int(line.rsplit(" ", 1)[1]) if line else DEFAULT_CURL_TIMEOUT
