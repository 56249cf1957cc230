"""The CA's HTTP edge: one HTTP/1.1 server on h11 and asyncio, for every way the CA is served.

    running = start(app, host, port, admin=AdminEndpoint(ca), admin_token=token)  # own thread
    server = AsyncServer(app); server.adopt(sock)     # a `ca serve --workers N` worker's loop

Theory of operation. h11 does the HTTP/1.1 framing (request line, headers, Content-Length,
keep-alive, pipelining, 100-continue); `_Http` adds the CA's rules on top, without I/O, and
turns requests into calls on an application that speaks bytes; `_Connection` moves the bytes
between an asyncio transport and `_Http`. A connection answers one request at a time, in
order: pipelined requests wait in h11's buffer (reading pauses once more than one request's
worth waits). `start` runs the loop in a background thread and the application's blocking
calls (signing, appending to the log) in a thread pool, so requests on different connections
overlap and their log appends share commits, while an idle or slow connection costs the loop
a few objects, never a thread; a worker process runs `AsyncServer` on its own loop and
awaits the decider's answers.

Routes (RFC 8894 §4.1: `GET|POST <path>?operation=OPERATION[&message=MESSAGE]`):

    /scep, /cgi-bin/pkiclient.exe   GetCACaps, GetCACert, GetNextCACert (400 until a rollover),
                                    PKIOperation (GET base64 or POST DER)
    /crl/ca.crl                     the CA's current CRL (DER, application/pkix-crl)

and, on a second listener bound to 127.0.0.1 only, the admin endpoint (`POST /admin/<action>`,
JSON in and out, `Authorization: Bearer <token>`), which lets other processes act on a CA whose
log this server holds open.

Limits and refusals (never a 500 for bad input): request line + headers over 64 KiB get 414
(no line end at all) or 431; bodies over 64 KiB (16 KiB for the admin endpoint) 413; a POST
without Content-Length, or a chunked one, 411; an invalid or repeated Content-Length 400
(RFC 9112 §6.3: invalid framing, "MUST respond with a 400 ... and then close the
connection"); methods other than GET, POST and HEAD 501; malformed base64 or an unknown
operation 400; what the application cannot answer (`Unanswerable`) 400, 413 or 503. Framing
errors close the connection after the answer, so an unread body is never parsed as a request.
A request must arrive whole within REQUEST_TIMEOUT seconds of its first byte, and an idle
connection is closed after as long. The application answers PKIOperation failures it can
attribute to a transaction with a CertRep FAILURE (HTTP 200) itself. A 500 means a bug here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

import h11
import structlog

from engine.scep.errors import ScepError
from engine.scep.wire import PKI_MESSAGE_CONTENT_TYPE, Unanswerable, decode_message_param

log = structlog.get_logger("trustledger.scep_server")

SCEP_PATHS = frozenset({"/scep", "/cgi-bin/pkiclient.exe"})
CRL_PATH = "/crl/ca.crl"
MAX_MESSAGE = 64 * 1024
"""Largest PKIOperation message accepted (after base64 decoding for GET)."""
MAX_ADMIN_BODY = 16 * 1024
MAX_HEAD = 64 * 1024
"""Largest request line + headers accepted."""
REQUEST_TIMEOUT = 30.0  # seconds for a whole request to arrive, and for an idle connection
BACKLOG = 128
BLOCKING_THREADS = 32  # application calls in progress at once under `start`

_T = TypeVar("_T")


class HttpError(Exception):
    """A request refused at the HTTP level (4xx/5xx) by this adapter or the admin endpoint."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_STATUS_OF_UNANSWERABLE = {
    Unanswerable.Kind.MALFORMED: HTTPStatus.BAD_REQUEST,
    Unanswerable.Kind.TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    Unanswerable.Kind.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    Unanswerable.Kind.NOT_OFFERED: HTTPStatus.BAD_REQUEST,  # as an operation it does not know
}


class ScepApplication(Protocol):
    """The SCEP service in this process; its calls may block (they run in a thread pool)."""

    def get_ca_caps(self) -> bytes: ...

    def get_ca_cert(self) -> tuple[str, bytes]:
        """(content type, body): application/x-x509-ca-cert or application/x-x509-ca-ra-cert."""
        ...

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        """(application/x-x509-next-ca-cert, body); Unanswerable(NOT_OFFERED) before a
        rollover made a next CA certificate."""
        ...

    def pki_operation(self, message: bytes, peer: str) -> bytes:
        """A CertRep (DER) for a pkiMessage; raises Unanswerable for what is not one."""
        ...

    def crl(self) -> bytes: ...


class AsyncScepApplication(Protocol):
    """Like `ScepApplication`, but a PKIOperation answer is awaited (it may come from another
    process); the other calls must not block."""

    def get_ca_caps(self) -> bytes: ...

    def get_ca_cert(self) -> tuple[str, bytes]: ...

    def get_next_ca_cert(self) -> tuple[str, bytes]: ...

    async def crl(self) -> bytes:
        """The current CRL (DER); it may wait for the CRL to be re-issued."""
        ...

    async def pki_operation(self, message: bytes, peer: str) -> bytes: ...


class AdminApplication(Protocol):
    def admin(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Perform `action`; raises HttpError (4xx) for a refused one."""
        ...


# -- routing ------------------------------------------------------------------------------------


class Operation(enum.Enum):
    CA_CAPS = "GetCACaps"
    CA_CERT = "GetCACert"
    NEXT_CA_CERT = "GetNextCACert"
    CRL = "crl"  # GET CRL_PATH
    PKI_OPERATION = "PKIOperation"


@dataclass(frozen=True, slots=True)
class Route:
    """What a request asks for; `message` is the decoded GET PKIOperation message (a POST's
    is its body)."""

    operation: Operation
    message: bytes | None = None


def message_from_query(raw: str) -> bytes:
    """The `message` query value of a GET PKIOperation, as DER.

    Clients differ: some percent-encode the base64 (`%2B`), some send `+` raw (which must not
    become a space), some use the URL-safe alphabet or drop the padding. The percent-decoding
    is this layer's; the base64 is the core's (`engine.scep.wire.decode_message_param`)."""
    text = unquote(raw).replace(" ", "+").strip()
    if len(text) > (MAX_MESSAGE * 4) // 3 + 4:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "message is larger than 64 KiB")
    try:
        return decode_message_param(text)
    except ScepError as e:
        raise HttpError(HTTPStatus.BAD_REQUEST, e.detail) from None


def split_target(target: str) -> SplitResult:
    """`target` split into path and query; HttpError(400) for one urlsplit cannot read (an
    unclosed `[` in what it takes for a host: `http://[::1/scep`, `//[/scep`)."""
    try:
        return urlsplit(target)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request target") from None


def route(command: str, target: str) -> Route:
    """The operation a `command` (GET/POST/HEAD) on `target` (path?query) asks for; HttpError
    (404, 400, 413) for anything else."""
    url = split_target(target)
    path = url.path.rstrip("/") or "/"
    if path == CRL_PATH and command in ("GET", "HEAD"):
        return Route(Operation.CRL)
    if path not in SCEP_PATHS:
        raise HttpError(HTTPStatus.NOT_FOUND, "not found")
    query = _query(url.query)
    operation = unquote(query.get("operation", ""))
    if operation == "GetCACaps":
        return Route(Operation.CA_CAPS)
    if operation == "GetCACert":
        return Route(Operation.CA_CERT)
    if operation == "GetNextCACert":
        return Route(Operation.NEXT_CA_CERT)
    if operation == "PKIOperation":
        if command == "POST":
            return Route(Operation.PKI_OPERATION)
        if "message" in query:
            return Route(Operation.PKI_OPERATION, message_from_query(query["message"]))
        raise HttpError(HTTPStatus.BAD_REQUEST, "PKIOperation needs a message")
    if not operation:
        raise HttpError(HTTPStatus.BAD_REQUEST, "missing operation")
    raise HttpError(HTTPStatus.BAD_REQUEST, f"unsupported operation {operation[:40]!r}")


def check_message(message: bytes) -> bytes:
    """A PKIOperation message within bounds (RFC 8894 §4.1 carries it in the body or query)."""
    if len(message) > MAX_MESSAGE:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "message larger than 64 KiB")
    if not message:
        raise HttpError(HTTPStatus.BAD_REQUEST, "empty message")
    return message


def _query(raw: str) -> dict[str, str]:
    """Split a query string without turning `+` into spaces (see message_from_query)."""
    out: dict[str, str] = {}
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        out.setdefault(unquote(name).lower(), value)
    return out


# -- sites: what a listener serves --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    peer: str


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    content_type: str
    body: bytes


class Site(Protocol):
    body_limit: int

    async def respond(self, request: Request) -> Response:
        """The answer to `request`; raises HttpError to refuse it."""
        ...

    def error(self, status: HTTPStatus, message: str) -> Response: ...


def _text_error(status: HTTPStatus, message: str) -> Response:
    return Response(status, "text/plain; charset=utf-8", (message + "\n").encode())


class ScepSite:
    """The SCEP routes over an `AsyncScepApplication`."""

    body_limit = MAX_MESSAGE

    def __init__(self, app: AsyncScepApplication) -> None:
        self.app = app

    def error(self, status: HTTPStatus, message: str) -> Response:
        return _text_error(status, message)

    async def respond(self, request: Request) -> Response:
        r = route(request.method, request.target)
        if r.operation is Operation.PKI_OPERATION:
            message = check_message(r.message if r.message is not None else request.body)
            try:
                answer = await self.app.pki_operation(message, request.peer)
            except Unanswerable as e:
                raise HttpError(_STATUS_OF_UNANSWERABLE[e.kind], e.message) from None
            return Response(HTTPStatus.OK, PKI_MESSAGE_CONTENT_TYPE, answer)
        try:
            if r.operation is Operation.CRL:
                return Response(HTTPStatus.OK, "application/pkix-crl", await self.app.crl())
            if r.operation is Operation.CA_CAPS:
                return Response(HTTPStatus.OK, "text/plain", self.app.get_ca_caps())
            if r.operation is Operation.NEXT_CA_CERT:
                ctype, body = self.app.get_next_ca_cert()
                return Response(HTTPStatus.OK, ctype, body)
            ctype, body = self.app.get_ca_cert()
        except Unanswerable as e:
            raise HttpError(_STATUS_OF_UNANSWERABLE[e.kind], e.message) from None
        return Response(HTTPStatus.OK, ctype, body)


class InThreads:
    """An `AsyncScepApplication` over a blocking `ScepApplication`: PKIOperations and CRL
    downloads (which may re-issue the CRL) run in `executor`; with none (the in-process
    transport, engine/adapters/scep_inprocess.py) they run at once and nothing is awaited."""

    def __init__(self, app: ScepApplication, executor: ThreadPoolExecutor | None) -> None:
        self._app = app
        self._executor = executor

    def get_ca_caps(self) -> bytes:
        return self._app.get_ca_caps()

    def get_ca_cert(self) -> tuple[str, bytes]:
        return self._app.get_ca_cert()

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        return self._app.get_next_ca_cert()

    async def crl(self) -> bytes:
        return await self._call(self._app.crl)

    async def pki_operation(self, message: bytes, peer: str) -> bytes:
        return await self._call(self._app.pki_operation, message, peer)

    async def _call(self, fn: Callable[..., bytes], *args: Any) -> bytes:
        if self._executor is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


class AdminSite:
    """`POST /admin/<action>` with the bearer token; JSON answers, errors included."""

    body_limit = MAX_ADMIN_BODY

    def __init__(self, app: AdminApplication, token: str, executor: ThreadPoolExecutor) -> None:
        if not token:
            raise ValueError("an admin endpoint needs a token")
        self.app = app
        self.token = token
        self._executor = executor

    def error(self, status: HTTPStatus, message: str) -> Response:
        body = json.dumps({"error": message, "status": int(status)}).encode()
        return Response(status, "application/json", body)

    async def respond(self, request: Request) -> Response:
        path = split_target(request.target).path
        if request.method != "POST" or not path.startswith("/admin/"):
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise HttpError(HTTPStatus.FORBIDDEN, "bad admin token")
        try:
            args = json.loads(request.body or b"{}")
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        if not isinstance(args, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not a JSON object")
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self.app.admin,
                                            path.removeprefix("/admin/"), args)
        return Response(HTTPStatus.OK, "application/json", json.dumps(result).encode())


# -- one connection -----------------------------------------------------------------------------


class _DateCache:
    """The Date header value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = formatdate(second, usegmt=True).encode("ascii")
        return self._text


_DATE = _DateCache()
_CONTENT_LENGTH_LINE = re.compile(rb"\ncontent-length[ \t]*:", re.IGNORECASE)
_HEAD_END = re.compile(rb"\n\r?\n")
_METHODS = frozenset({b"GET", b"POST", b"HEAD"})


class _Refusal(Exception):
    """A request answered with `status` and then the connection is closed."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _framing_refusal(e: h11.RemoteProtocolError, unread: bytes) -> _Refusal:
    """The answer to a request head h11 refused (`unread`: what it had not consumed)."""
    text = str(e)
    if "Content-Length" in text:
        return _Refusal(HTTPStatus.BAD_REQUEST, "repeated Content-Length" if "conflicting"
                        in text else "bad Content-Length")
    if e.error_status_hint == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
        return _oversized_head(unread)
    status = HTTPStatus(e.error_status_hint) if e.error_status_hint >= 400 \
        else HTTPStatus.BAD_REQUEST
    return _Refusal(status, f"bad request: {text[:80]}")


def _oversized_head(unread: bytes) -> _Refusal:
    if b"\n" not in unread[:MAX_HEAD]:
        return _Refusal(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
    return _Refusal(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head larger than 64 KiB")


def _check_head(event: h11.Request, raw_head: bytes, site: Site) -> None:
    """The CA's rules on a parsed request head; _Refusal (answer, then close) if it breaks one."""
    if event.method not in _METHODS:
        raise _Refusal(HTTPStatus.NOT_IMPLEMENTED,
                       f"unsupported method {event.method[:20].decode('latin-1')!r}")
    if len(_CONTENT_LENGTH_LINE.findall(raw_head)) > 1:
        # h11 merges equal repeated fields (RFC 9110 allows either); we refuse them, so that
        # no intermediary and we ever disagree on which one counts.
        raise _Refusal(HTTPStatus.BAD_REQUEST, "repeated Content-Length")
    length: int | None = None
    for name, value in event.headers:
        if name == b"transfer-encoding":
            raise _Refusal(HTTPStatus.LENGTH_REQUIRED,
                           "chunked bodies are not accepted; send Content-Length")
        if name == b"content-length":
            length = int(value)
    if length is None and event.method == b"POST":
        raise _Refusal(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
    if length is not None and length > site.body_limit:
        raise _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                       f"body of {length} bytes is larger than {site.body_limit}")


@dataclass(frozen=True, slots=True)
class _NeedData:
    """Read more: write `interim` first (a 100 Continue, or b""); `partial` says part of a
    request has arrived (acknowledge it at once: `_ack_now`)."""

    interim: bytes
    partial: bool


@dataclass(frozen=True, slots=True)
class _Close:
    """Write `out` (a refusal, or b"") and close the connection."""

    out: bytes


class _Http:
    """One connection's HTTP/1.1 without I/O: h11 plus the CA's rules (module docstring).
    Its driver feeds it bytes (`receive`), asks for the next step (`next_step`: a Request to
    answer, _NeedData or _Close) and frames the answer (`answer`); `_Connection` drives it
    from an asyncio transport."""

    def __init__(self, site: Site, peer: str) -> None:
        self.site = site
        self.peer = peer
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._request: h11.Request | None = None
        self._body = bytearray()

    def receive(self, data: bytes) -> None:
        """Bytes from the peer; b"" once it closed its side."""
        self._h11.receive_data(data)

    def next_step(self) -> Request | _NeedData | _Close:
        """Take events from h11 until a request is complete, more data is needed, or the
        connection must close."""
        while True:
            idle = self._h11.their_state is h11.IDLE
            unread = self._h11.trailing_data[0] if idle else b""
            head_end = _HEAD_END.search(unread) if idle else None
            if idle and (head_end.end() if head_end else len(unread)) > MAX_HEAD:
                return self._refuse(_oversized_head(unread))
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as e:
                return self._refuse(_framing_refusal(e, unread or self._h11.trailing_data[0]))
            if event is h11.NEED_DATA:
                interim = b""
                if self._h11.they_are_waiting_for_100_continue:
                    interim = self._h11.send(h11.InformationalResponse(status_code=100,
                                                                       headers=[])) or b""
                return _NeedData(interim, bool(self._h11.trailing_data[0]))
            if event is h11.PAUSED:
                if self._h11.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
                    self._h11.start_next_cycle()
                    continue
                return _Close(b"")  # they closed, or we must: nothing more to read
            if isinstance(event, h11.Request):
                try:
                    _check_head(event, unread[:head_end.end()] if head_end else unread,
                                self.site)
                except _Refusal as refusal:
                    return self._refuse(refusal, head=event.method == b"HEAD")
                self._request = event
                self._body.clear()
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return self._complete()
            elif isinstance(event, h11.ConnectionClosed):
                return _Close(b"")

    def _complete(self) -> Request:
        event = self._request
        assert event is not None
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in event.headers}
        return Request(event.method.decode("ascii"), event.target.decode("latin-1"),
                       headers, bytes(self._body), self.peer)

    def _refuse(self, refusal: _Refusal, *, head: bool = False) -> _Close:
        out, _ = self.answer(self.site.error(refusal.status, refusal.message), head=head,
                             keep_alive=False)
        return _Close(out)

    def answer(self, response: Response, *, head: bool, keep_alive: bool) -> tuple[bytes, bool]:
        """(the bytes of `response`, whether to close the connection once they are written)."""
        headers = [(b"Server", b"trustledger-scep"), (b"Date", _DATE.now()),
                   (b"Content-Type", response.content_type.encode("latin-1")),
                   (b"Content-Length", str(len(response.body)).encode("ascii"))]
        if not keep_alive:
            headers.append((b"Connection", b"close"))
        try:
            out = self._h11.send(h11.Response(status_code=int(response.status),
                                              headers=headers,
                                              reason=response.status.phrase.encode()))
            if response.body and not head:
                out = (out or b"") + (self._h11.send(h11.Data(data=response.body)) or b"")
            out = (out or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:  # e.g. a refusal while we were mid-answer: just close
            return b"", True
        return out, self._h11.our_state is not h11.DONE  # MUST_CLOSE: no keep-alive


async def _respond(site: Site, request: Request) -> tuple[Response, bool]:
    """(the answer to `request`, keep the connection alive); a bug is answered 500."""
    try:
        return await site.respond(request), True
    except HttpError as e:
        return site.error(e.status, e.message), True
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug: answer 500, keep serving, log it with its traceback
        log.exception("http request failed", path=request.target.split("?")[0])
        return site.error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"), False


def _ack_now(sock: socket.socket | None) -> None:
    """Acknowledge what arrived of an incomplete request at once. A sender with Nagle's
    algorithm on (socat, many relays) holds the rest of the request until that ACK, and
    the receiver's delayed ACK would make it wait up to 40 ms (Linux: TCP_QUICKACK sends
    a pending ACK now)."""
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if sock is not None and quickack is not None and sock.family != socket.AF_UNIX:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection on an asyncio loop (see the module docstring)."""

    def __init__(self, site: Site, connections: set[_Connection],
                 on_closed: Callable[[], None] | None = None) -> None:
        self._site = site
        self._connections = connections
        self._on_closed = on_closed
        self._http = _Http(site, "")
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # the request being answered
        self._waiting = 0  # bytes received while busy
        self._paused = False

    # -- asyncio's callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._http.peer = str(peer[0]) if isinstance(peer, tuple) else "local"
        self._connections.add(self)
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        if self._on_closed is not None:
            self._on_closed()

    def data_received(self, data: bytes) -> None:
        self._http.receive(data)
        if self.busy:
            self._waiting += len(data)
            if self._waiting > MAX_HEAD + MAX_MESSAGE and self._transport is not None:
                self._transport.pause_reading()  # a pipelining client waits for our answers
                self._paused = True
            return
        self._advance()

    def eof_received(self) -> bool:
        self._http.receive(b"")
        if not self.busy:
            self._advance()
        return True  # keep our half open until the answer in progress is written

    # -- state --

    @property
    def busy(self) -> bool:
        return self._task is not None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(REQUEST_TIMEOUT, self.close)

    def _advance(self) -> None:
        """Answer the next complete request, or wait for more data, or close."""
        if self._transport is None or self.busy:
            return
        step = self._http.next_step()
        if isinstance(step, _NeedData):
            self._write(step.interim)
            if step.partial:
                _ack_now(self._transport.get_extra_info("socket"))
            if self._paused:
                self._paused = False
                self._transport.resume_reading()
        elif isinstance(step, _Close):
            self._write(step.out)
            self.close()
        else:
            if self._timer is not None:
                self._timer.cancel()
            self._waiting = 0
            self._task = asyncio.ensure_future(self._answer(step))

    async def _answer(self, request: Request) -> None:
        response, keep = await _respond(self._site, request)
        self._task = None
        if self._transport is None or self._transport.is_closing():
            return
        out, close = self._http.answer(response, head=request.method == "HEAD",
                                       keep_alive=keep)
        self._write(out)
        if close:
            self.close()
            return
        self._arm_timer()
        self._advance()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and data:
            self._transport.write(data)


# -- servers ------------------------------------------------------------------------------------


class AsyncServer:
    """Serves, on the running loop, connections accepted elsewhere and handed over (`adopt`;
    the worker processes of engine/ca/workers.py). `on_closed` runs whenever one closes."""

    def __init__(self, app: AsyncScepApplication,
                 on_closed: Callable[[], None] | None = None) -> None:
        self._site = ScepSite(app)
        self._on_closed = on_closed
        self._connections: set[_Connection] = set()
        self._starting: set[asyncio.Task[tuple[asyncio.Transport, _Connection]]] = set()
        self._loop = asyncio.get_running_loop()

    def adopt(self, conn: socket.socket) -> None:
        """Serve an accepted connection."""
        conn.setblocking(False)
        task = asyncio.create_task(self._loop.connect_accepted_socket(
            lambda: _Connection(self._site, self._connections, self._on_closed), sock=conn))
        self._starting.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[tuple[asyncio.Transport, _Connection]]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("connection lost before it was served", error=str(task.exception()))
            if self._on_closed is not None:
                self._on_closed()

    async def drained(self, timeout: float) -> None:
        """Return once no connection is in the middle of a request (or after `timeout`)."""
        deadline = self._loop.time() + timeout
        while any(c.busy for c in self._connections) and self._loop.time() < deadline:
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Close every connection."""
        for conn in list(self._connections):
            conn.close()


class _LoopThread:
    """An asyncio loop in a daemon thread, serving listening sockets with sites."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix=f"{name}-app")
        self._connections: set[_Connection] = set()
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self, listeners: list[tuple[socket.socket, Site]]) -> None:
        self._thread.start()
        for sock, site in listeners:
            self._servers.append(self.call(self._serve(sock, site)))

    async def _serve(self, sock: socket.socket, site: Site) -> asyncio.Server:
        return await self.loop.create_server(
            lambda: _Connection(site, self._connections), sock=sock, backlog=BACKLOG)

    def call(self, coro: Awaitable[_T]) -> _T:
        async def run() -> _T:
            return await coro
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stop(self) -> None:
        async def shut() -> None:
            for srv in self._servers:
                srv.close()
            for conn in list(self._connections):
                conn.close()
            for srv in self._servers:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(srv.wait_closed(), 5)
        if self._thread.is_alive():
            with contextlib.suppress(TimeoutError, RuntimeError):
                self.call(shut())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        self._finish_calls(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()

    def _finish_calls(self, timeout: float) -> None:
        """Drop the queued blocking calls and wait (`timeout` at most) for those in progress:
        whoever closes the application next (`ca serve` closes the CA) must not close it
        under an enrollment being recorded. Their answers are not written: the connections
        are closed."""
        waiter = threading.Thread(target=self.executor.shutdown,
                                  kwargs={"wait": True, "cancel_futures": True},
                                  name=f"{self._thread.name}-stop", daemon=True)
        waiter.start()
        waiter.join(timeout)


@dataclass
class RunningServer:
    """A SCEP server (and its admin endpoint) running on a loop in a background thread."""

    url: str  # base URL, http://HOST:PORT
    admin_url: str | None
    port: int
    _loop: _LoopThread

    def stop(self) -> None:
        self._loop.stop()


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - display only
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def listen(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening TCP socket on host:port (0 = ephemeral) and its base URL."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    return sock, _url(host, int(sock.getsockname()[1]))


def start(app: ScepApplication | None, host: str = "127.0.0.1", port: int = 0, *,
          admin: AdminApplication | None = None, admin_token: str = "",
          before_serving: Callable[[str], None] | None = None) -> RunningServer:
    """Bind and serve `app` on host:port (and `admin` on 127.0.0.1, an ephemeral port) from a
    loop in a daemon thread. `before_serving(base_url)` runs once the port is bound and before
    any request is served. With `app` None only the admin endpoint is served: `url` and
    `admin_url` are then both its URL."""
    runner = _LoopThread("scep-http")
    sockets: list[socket.socket] = []
    try:
        listeners: list[tuple[socket.socket, Site]] = []
        if app is not None:
            sock, base_url = listen(host, port)
            sockets.append(sock)
            listeners.append((sock, ScepSite(InThreads(app, runner.executor))))
        admin_url = None
        if admin is not None:
            site = AdminSite(admin, admin_token, runner.executor)
            sock, admin_url = listen("127.0.0.1", 0)
            sockets.append(sock)
            listeners.append((sock, site))
        if app is None:
            assert admin_url is not None, "nothing to serve"
            base_url = admin_url
        if before_serving is not None:
            before_serving(base_url)
        runner.start(listeners)
    except BaseException:
        for sock in sockets:
            sock.close()
        runner.stop()
        raise
    return RunningServer(base_url, admin_url, int(sockets[0].getsockname()[1]), runner)


def start_site(make_site: Callable[[ThreadPoolExecutor], Site], host: str = "127.0.0.1",
               port: int = 0, *, name: str = "http") -> RunningServer:
    """Serve one site of another service (the audit witness) on this HTTP stack, from a loop
    in a daemon thread; `make_site(executor)` gets the pool its blocking calls run in."""
    runner = _LoopThread(name)
    sock, base_url = listen(host, port)
    try:
        runner.start([(sock, make_site(runner.executor))])
    except BaseException:
        sock.close()
        runner.stop()
        raise
    return RunningServer(base_url, None, int(sock.getsockname()[1]), runner)
