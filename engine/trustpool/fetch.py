"""Fetching a CA bundle: the `FetchBundle` effect, the port that performs it, and the real
adapter (http, https, file).

The handler stays pure: it yields `FetchBundle(url, anchors)` and gets the bytes back (or a
`BundleRefused` thrown in at its `yield`, naming the cause); what it then decides is recorded.

`HttpBundleFetcher`:
- `http://` and `https://` through httpx with a total deadline for the whole fetch, redirects
  included (engine.adapters.http_deadline: a server trickling bytes is cut off at it), no
  proxies from the environment, at most MAX_REDIRECTS redirects (a loop is named as such),
  only 200 accepted, the body cut off past MAX_BUNDLE bytes.
- `https://` verifies the server against the device's own trust: the trustpool's usable
  certificates and the trustpoints' CA certificates (`anchors`), with the host name checked.
- `file:` (`file:///abs/path` or `file:/abs/path`) reads a local regular file (never a FIFO
  or a device: a timer must not block on one), same size limit. A
  redirect to `file:` is refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from cryptography.x509 import load_der_x509_certificate

from engine.effects import Effect, performs
from engine.grammar import well_formed_authority
from engine.keyformats import Encoding
from engine.runtime import Ports
from engine.trustpool.bundle import MAX_BUNDLE, BundleRefused
from engine.trustpool.pool import quiet

if TYPE_CHECKING:
    import ssl

    import httpx  # imported when a download starts: a `show` never loads it

DEADLINE = 60.0  # seconds for a whole fetch, redirects included
TIMEOUT = 10.0  # seconds for any one socket operation
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchBundle(Effect):
    """Download the bundle at `url`; https trusts `anchors` (DER) only."""

    url: str
    anchors: tuple[bytes, ...]


class BundleFetcher(Protocol):
    def fetch(self, url: str, anchors: tuple[bytes, ...]) -> bytes:
        """The bundle's bytes, or BundleRefused naming why not."""
        ...


@performs(FetchBundle)
def _fetch(ports: Ports, eff: FetchBundle) -> bytes:
    if ports.bundles is None:
        ports.bundles = HttpBundleFetcher()
    return ports.bundles.fetch(eff.url, eff.anchors)


class HttpBundleFetcher:
    def __init__(self, deadline: float = DEADLINE, timeout: float = TIMEOUT) -> None:
        self.deadline_s = deadline
        self.timeout = timeout

    def fetch(self, url: str, anchors: tuple[bytes, ...]) -> bytes:
        try:
            scheme = urlsplit(well_formed_authority(url)).scheme.lower()
        except ValueError:
            raise BundleRefused(f"cannot fetch {url}: invalid url") from None
        if scheme == "file":
            return _read_file(url)
        if scheme not in ("http", "https"):
            raise BundleRefused(f"the url scheme {scheme or '(none)'!r} is not supported "
                                "(http, https or file)")
        return self._download(url, anchors)

    def _download(self, url: str, anchors: tuple[bytes, ...]) -> bytes:
        import httpx

        from engine.adapters.http_deadline import Deadline, deadline_client

        deadline = Deadline(self.deadline_s)
        with deadline_client(deadline, self.timeout, _trusting(anchors)) as client, \
                deadline.exchange():
            seen = [url]
            try:
                while True:
                    status, location, body = _get(client, url)
                    if status in (301, 302, 303, 307, 308) and location:
                        url = _redirect(url, location, seen)
                        continue
                    if status != 200:
                        raise BundleRefused(f"the server answered HTTP {status} for {url}")
                    return body
            except (httpx.HTTPError, httpx.InvalidURL) as e:
                if deadline.expired():
                    raise BundleRefused(f"no complete answer within the {self.deadline_s:g} s "
                                        "deadline of the fetch") from e
                raise BundleRefused(f"cannot fetch {url}: {_why(e)}") from e


def _get(client: httpx.Client, url: str) -> tuple[int, str, bytes]:
    with client.stream("GET", url) as resp:
        if resp.is_redirect or resp.status_code != 200:
            return resp.status_code, resp.headers.get("location", ""), b""
        body = bytearray()
        for chunk in resp.iter_bytes():
            body += chunk
            if len(body) > MAX_BUNDLE:
                raise BundleRefused(f"the bundle is larger than {MAX_BUNDLE // (1024 * 1024)} "
                                    "MB")
        return 200, "", bytes(body)


def _redirect(url: str, location: str, seen: list[str]) -> str:
    target = urljoin(url, location)
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        raise BundleRefused(f"the server redirected to {target}, which is not http or https")
    if target in seen:
        raise BundleRefused(f"redirect loop: {' -> '.join([*seen, target])}")
    if len(seen) > MAX_REDIRECTS:
        raise BundleRefused(f"more than {MAX_REDIRECTS} redirects (last to {target})")
    seen.append(target)
    return target


def _why(e: Exception) -> str:
    from engine.scep_client import http_failure  # (the peer's bytes never shown as a repr)

    text = http_failure(e)
    if "CERTIFICATE_VERIFY_FAILED" in text and "Hostname mismatch" in text:
        return "the server's certificate does not name the host of the url"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return ("the server's certificate does not verify against the trustpool and the "
                "trustpoints' CA certificates")
    return text


def _trusting(anchors: tuple[bytes, ...]) -> ssl.SSLContext:
    """TLS that trusts exactly `anchors` (no system store), host names checked. An http
    download needs it too: a redirect may lead to https."""
    import ssl  # only a download needs it (3 ms a start-up would pay)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with quiet():  # old roots make cryptography warn: the bundle's business, not the operator's
        pem = "".join(load_der_x509_certificate(d).public_bytes(Encoding.PEM).decode()
                      for d in anchors)
    if pem:
        ctx.load_verify_locations(cadata=pem)
    return ctx


def _read_file(url: str) -> bytes:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise BundleRefused(f"file url {url} names a host; only local paths are read")
    path = Path(unquote(parts.path))
    try:
        # Not blocking on open: a FIFO (or a device) named by a `cabundle url` would hang the
        # update timer, and the engine with it, for ever. Only a regular file is read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise BundleRefused(f"cannot read {path}: not a regular file")
            data = f.read(MAX_BUNDLE + 1)
    except OSError as e:
        raise BundleRefused(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > MAX_BUNDLE:
        raise BundleRefused(f"the bundle is larger than {MAX_BUNDLE // (1024 * 1024)} MB")
    return data
