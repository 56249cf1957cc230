"""`InProcessTransport`: the device's SCEP transport port (engine/scep_client.py
`ScepTransport`) wired straight to SCEP applications in this process, without sockets.

    network = InProcessTransport()
    network.attach("http://ca.invalid", frontend)    # engine/ca/server.py serve_in_process
    engine.ports.scep = network                      # the device now reaches that CA

A request goes through the same routes and limits as over HTTP (engine/adapters/scep_server.py
`ScepSite`: paths, operations, the GET message parameter, 4xx for what HTTP refuses) and comes
back as the same `HttpReply` the httpx transport gives, so a test over this transport tests
the device and the CA, not a stand-in. The query string is built and percent-encoded as httpx
does. What is left out is only the wire: framing, keep-alive, deadlines (nothing blocks).
A URL nobody attached is unreachable (`TransportError`), as a CA that is down, unless a
`fallback` transport is given (a device that also talks to real peers): then it goes there.
"""

from __future__ import annotations

import threading
from collections.abc import Coroutine, Mapping
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import structlog

from engine.adapters.scep_server import (
    HttpError,
    InThreads,
    Request,
    Response,
    ScepApplication,
    ScepSite,
)
from engine.scep_client import HttpReply, ScepTransport, TransportError

log = structlog.get_logger("trustledger.scep_inprocess")
_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends (every await in it is on an `InThreads` without
    an executor), in any thread, whether or not that thread runs an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    coro.close()
    raise RuntimeError("an in-process SCEP request waited for something")


def _origin(url: str) -> str:
    """scheme://host:port of `url`, lower-case, with the scheme's default port filled in."""
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"{u.scheme.lower()}://{(u.hostname or '').lower()}:{port}"


class InProcessTransport:
    """A `ScepTransport` to the SCEP applications attached to it, by URL origin."""

    def __init__(self, *, fallback: ScepTransport | None = None,
                 peer: str = "in-process") -> None:
        self.peer = peer
        self.fallback = fallback
        self._lock = threading.Lock()
        self._sites: dict[str, ScepSite | None] = {}  # None: detached, unreachable

    def attach(self, base_url: str, app: ScepApplication) -> None:
        """Serve `app` at `base_url`'s origin (replacing whatever was there)."""
        with self._lock:
            self._sites[_origin(base_url)] = ScepSite(InThreads(app, None))

    def detach(self, base_url: str) -> None:
        """`base_url` is unreachable from now on (never handed to the fallback)."""
        with self._lock:
            self._sites[_origin(base_url)] = None

    def serves(self, url: str) -> bool:
        """Whether an application is attached at `url`'s origin now."""
        with self._lock:
            return self._sites.get(_origin(url)) is not None

    def get(self, url: str, params: Mapping[str, str]) -> HttpReply:
        return self._request("GET", url, params, b"")

    def post(self, url: str, params: Mapping[str, str], body: bytes) -> HttpReply:
        return self._request("POST", url, params, body)

    def _request(self, method: str, url: str, params: Mapping[str, str],
                 body: bytes) -> HttpReply:
        origin = _origin(url)
        with self._lock:
            known = origin in self._sites
            site = self._sites.get(origin)
        if not known and self.fallback is not None:
            return (self.fallback.get(url, params) if method == "GET"
                    else self.fallback.post(url, params, body))
        if site is None:
            raise TransportError(f"[Errno 111] Connection refused: nothing serves {origin}")
        u = urlsplit(url)
        query = "&".join(q for q in (u.query, urlencode(dict(params), quote_via=quote)) if q)
        target = (u.path or "/") + (f"?{query}" if query else "")
        headers = {"content-length": str(len(body))} if method == "POST" else {}
        request = Request(method, target, headers, body, self.peer)
        try:
            response: Response = _run(site.respond(request))
        except HttpError as e:
            response = site.error(e.status, e.message)
        except Exception:  # a bug, answered as the HTTP server answers it
            log.exception("in-process scep request failed", path=u.path)
            response = site.error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        ctype = response.content_type.split(";")[0].strip().lower()
        return HttpReply(int(response.status), ctype, response.body)
