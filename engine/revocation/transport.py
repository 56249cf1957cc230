"""Getting a CRL's bytes: the `FetchCRL` effect, the `CrlFetcher` port that performs it, and
the real adapter (http, ldap), plus `StoreCrl`, which makes the bytes durable in the blob
store before the event naming them is appended.

One URI per effect: `http://...` (httpx, a TOTAL deadline of `timeout_s` for the whole fetch,
redirects included, so a server that trickles its answer is cut off at it; only 200 taken;
at most MAX_CRL bytes), `ldap://host[:port]/dn...` (engine.revocation.ldap, the same total
deadline; the entry's CRL values, newest first, which the caller verifies in turn:
engine.revocation.verify `newest_verified`), or `scep:<trustpoint>`, a SCEP GetCRL to the
trustpoint's CA through the SCEP transport (engine.scep_client.get_crl) with the request the
effect carries. Whatever goes wrong is a `CrlUnavailable` naming the cause, thrown into the
handler at its `yield`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urljoin, urlsplit

from engine.effects import Effect, performs
from engine.errors import PeerError, PeerReason, TrustledgerError
from engine.revocation.ldap import (
    CrlValues,
    LdapReadError,
    LdapUrlError,
    parse_ldap_url,
    read_crl,
)
from engine.runtime import Ports

if TYPE_CHECKING:
    import httpx

    from engine.scep_client import CrlQuery

MAX_CRL = 64 << 20  # bytes: a larger answer is not taken
MAX_REDIRECTS = 3


class CrlUnavailable(PeerError):
    """No CRL from this source; `text` says why (no `%`)."""

    def __init__(self, text: str, reason: PeerReason = PeerReason.UNREACHABLE) -> None:
        super().__init__(reason, text)


@dataclass(frozen=True)
class FetchCRL(Effect):
    """The bytes at `uri` within `timeout_s` seconds in all (`scep:<trustpoint>`: a GetCRL
    with `scep`); an ldap:// entry's values are answered as `CrlValues`."""

    uri: str
    timeout_s: float
    scep: CrlQuery | None = None


@dataclass(frozen=True)
class StoreCrl(Effect):
    """Store a verified CRL's DER in the blob store (durably); the answer is its SHA-256."""

    der: bytes


class CrlFetcher(Protocol):
    def fetch(self, uri: str, timeout_s: float) -> bytes | CrlValues:
        """The bytes at an http:// `uri`, the CRL values of an ldap:// one, or
        CrlUnavailable naming why not."""
        ...


@performs(FetchCRL)
def _fetch(ports: Ports, eff: FetchCRL) -> bytes | CrlValues:
    if eff.uri.startswith("scep:"):
        if eff.scep is None:
            raise CrlUnavailable(f"{eff.uri}: the trustpoint cannot ask its CA (no "
                                 "enrollment url, CA certificate or router certificate)")
        from engine.scep_client import get_crl

        try:
            return get_crl(ports, eff.scep, eff.timeout_s)
        except CrlUnavailable:
            raise
        except TrustledgerError as e:
            raise CrlUnavailable(e.text.rstrip("."), PeerReason.BAD_ANSWER) from e
    if ports.crls is None:
        ports.crls = NetworkCrlFetcher()
    return ports.crls.fetch(eff.uri, eff.timeout_s)


@performs(StoreCrl)
def _store(ports: Ports, eff: StoreCrl) -> str:
    if ports.crl_blobs is None:
        from engine.revocation.store import MemoryCrlBlobs

        ports.crl_blobs = MemoryCrlBlobs()
    return ports.crl_blobs.put(eff.der)


class NetworkCrlFetcher:
    """http:// through httpx, ldap:// through ldap3; each under one total deadline."""

    def fetch(self, uri: str, timeout_s: float) -> bytes | CrlValues:
        scheme = uri.partition(":")[0].lower()
        if scheme == "ldap":
            try:
                return read_crl(parse_ldap_url(uri), timeout_s)
            except LdapUrlError as e:
                raise CrlUnavailable(str(e), PeerReason.BAD_ANSWER) from None
            except LdapReadError as e:
                raise CrlUnavailable(str(e)) from None
        if scheme == "http":
            return _http(uri, timeout_s)
        raise CrlUnavailable(f"the url scheme {scheme or '(none)'!r} is not supported "
                             "(http, ldap)", PeerReason.BAD_ANSWER)


def _http(uri: str, timeout_s: float) -> bytes:
    import httpx

    from engine.adapters.http_deadline import Deadline, deadline_client

    deadline = Deadline(timeout_s)
    with deadline_client(deadline, timeout_s) as client, deadline.exchange():
        try:
            for _ in range(MAX_REDIRECTS + 1):
                status, location, body = _get(client, uri)
                if status in (301, 302, 303, 307, 308) and location:
                    uri = urljoin(uri, location)
                    if urlsplit(uri).scheme.lower() != "http":
                        raise CrlUnavailable(f"redirected to {uri}, which is not http",
                                             PeerReason.BAD_ANSWER)
                    continue
                if status != 200:
                    raise CrlUnavailable(f"the server answered HTTP {status}",
                                         PeerReason.BAD_ANSWER)
                return body
            raise CrlUnavailable(f"more than {MAX_REDIRECTS} redirects", PeerReason.BAD_ANSWER)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as e:
            if deadline.expired() or isinstance(e, httpx.TimeoutException):
                raise CrlUnavailable(f"no complete answer within the {timeout_s:g} s "
                                     "curl-timeout", PeerReason.TIMED_OUT) from None
            from engine.scep_client import http_failure  # (never a repr of the peer's bytes)

            raise CrlUnavailable(http_failure(e)) from None


def _get(client: httpx.Client, uri: str) -> tuple[int, str, bytes]:
    with client.stream("GET", uri) as resp:
        if resp.status_code != 200:
            return resp.status_code, resp.headers.get("location", ""), b""
        body = bytearray()
        for chunk in resp.iter_bytes():
            body += chunk
            if len(body) > MAX_CRL:
                raise CrlUnavailable(f"the answer is larger than {MAX_CRL >> 20} MiB",
                                     PeerReason.BAD_ANSWER)
        return 200, "", bytes(body)
