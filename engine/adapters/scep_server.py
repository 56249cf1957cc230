"""The SCEP HTTP server: thin adapters over an application object that speaks bytes.

Two of them share the routing below: `start` runs a stdlib `ThreadingHTTPServer` (one process,
a thread per connection; the in-process default), `AsyncServer` a lean HTTP/1.1 server on an
asyncio loop for connections accepted elsewhere (the worker processes of `ca serve --workers
N`, whose PKIOperation answers are awaited from the process that owns the CA log).

Routes (RFC 8894 §4.1: `GET|POST <path>?operation=OPERATION[&message=MESSAGE]`):

    /scep, /cgi-bin/pkiclient.exe   GetCACaps, GetCACert, PKIOperation (GET base64 or POST DER)
    /crl/ca.crl                     the CA's current CRL (DER, application/pkix-crl)

and, on a second listener bound to 127.0.0.1 only, the admin endpoint (`POST /admin/<action>`,
JSON in and out, `Authorization: Bearer <token>`), which lets other processes act on a CA whose
log this server holds open.

Bad input never gets a 500: bodies over 64 KiB get 413, a POST without Content-Length 411,
malformed base64 or an unknown operation 400, anything the application refuses as
`HttpError` its status. The application answers PKIOperation failures it can attribute to a
transaction with a CertRep FAILURE (HTTP 200) itself. A 500 means a bug in this program.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import enum
import hmac
import json
import re
import socket
import sys
import threading
import time
from base64 import b64decode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import SplitResult, unquote, urlsplit

import structlog

log = structlog.get_logger("trustledger.scep_server")

SCEP_PATHS = frozenset({"/scep", "/cgi-bin/pkiclient.exe"})
CRL_PATH = "/crl/ca.crl"
MAX_MESSAGE = 64 * 1024
"""Largest PKIOperation message accepted (after base64 decoding for GET)."""
MAX_ADMIN_BODY = 16 * 1024
REQUEST_TIMEOUT = 30.0  # seconds a connection may sit idle mid-request
PKI_MESSAGE = "application/x-pki-message"


class HttpError(Exception):
    """A request the application refuses at the HTTP level (4xx)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ScepApplication(Protocol):
    def get_ca_caps(self) -> bytes: ...

    def get_ca_cert(self) -> tuple[str, bytes]:
        """(content type, body): application/x-x509-ca-cert or application/x-x509-ca-ra-cert."""
        ...

    def pki_operation(self, message: bytes, peer: str) -> bytes:
        """A CertRep (DER) for a pkiMessage; raises HttpError for what is not one."""
        ...

    def crl(self) -> bytes: ...


class AdminApplication(Protocol):
    def admin(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Perform `action`; raises HttpError (4xx) for a refused one."""
        ...


def decode_message_param(raw: str) -> bytes:
    """The `message` query value of a GET PKIOperation, as DER.

    Clients differ: some percent-encode the base64 (`%2B`), some send `+` raw (which must not
    become a space), some use the URL-safe alphabet or drop the padding. All are accepted."""
    text = unquote(raw).replace(" ", "+").strip()
    text = text.replace("-", "+").replace("_", "/").replace("\n", "").replace("\r", "")
    text += "=" * (-len(text) % 4)
    if len(text) > (MAX_MESSAGE * 4) // 3 + 4:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "message is larger than 64 KiB")
    try:
        return b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(HTTPStatus.BAD_REQUEST, "message is not valid base64") from None


class Operation(enum.Enum):
    CA_CAPS = "GetCACaps"
    CA_CERT = "GetCACert"
    CRL = "crl"  # GET CRL_PATH
    PKI_OPERATION = "PKIOperation"


@dataclass(frozen=True, slots=True)
class Route:
    """What a request asks for; `message` is the decoded GET PKIOperation message (a POST's
    is its body, read by the adapter)."""

    operation: Operation
    message: bytes | None = None


def split_target(target: str) -> SplitResult:
    """`target` split into path and query; HttpError(400) for one urlsplit cannot read (an
    unclosed `[` in what it takes for a host: `http://[::1/scep`, `//[/scep`)."""
    try:
        return urlsplit(target)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request target") from None


_CONTENT_LENGTH = re.compile(r"[0-9]+")


def content_length(values: Sequence[str]) -> int | None:
    """The body length the Content-Length header field(s) `values` give (None if absent).

    RFC 9112 §6.3: a request "with an invalid Content-Length header field" has invalid framing
    and "the server MUST respond with a 400 (Bad Request) status code and then close the
    connection". Valid is ASCII digits only (not `+4`, `1_0` or `²`, which Python's int()
    reads); repeated fields are refused too, even equal ones (the RFC allows that), so the
    two servers never disagree on which one counts."""
    if not values:
        return None
    if len(values) > 1:
        raise HttpError(HTTPStatus.BAD_REQUEST, "repeated Content-Length")
    text = values[0].strip()
    if not _CONTENT_LENGTH.fullmatch(text):
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
    return int(text)


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
    if operation == "PKIOperation":
        if command == "POST":
            return Route(Operation.PKI_OPERATION)
        if "message" in query:
            return Route(Operation.PKI_OPERATION, decode_message_param(query["message"]))
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
    """Split a query string without turning `+` into spaces (see decode_message_param)."""
    out: dict[str, str] = {}
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        out.setdefault(unquote(name).lower(), value)
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT
    # Headers and body leave in one write (buffered wfile, flushed after each request): a relay
    # in between (socat) with Nagle on would otherwise hold the body until the peer's delayed
    # ACK of the headers, 40 ms per request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "trustledger-scep"
    sys_version = ""
    app: ScepApplication  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http", peer=self.client_address[0], line=format % args)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, "text/plain; charset=utf-8", (message + "\n").encode())

    def _read_body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted; "
                                                        "send Content-Length")
        try:
            length = content_length(self.headers.get_all("Content-Length") or [])
        except HttpError:
            self.close_connection = True
            raise
        if length is None:
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if length > limit:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"body of {length} bytes is larger than {limit}")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise HttpError(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        return body

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            status, ctype, body = self._route()
        except HttpError as e:
            self._error(e.status, e.message)
            return
        except Exception:  # a bug: answer 500, keep serving, log it with its traceback
            log.exception("scep request failed", path=self.path.split("?")[0])
            self.close_connection = True
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            return
        self._send(status, ctype, body)

    def _route(self) -> tuple[HTTPStatus, str, bytes]:
        r = route(self.command, self.path)
        if r.operation is Operation.CRL:
            return HTTPStatus.OK, "application/pkix-crl", self.app.crl()
        if r.operation is Operation.CA_CAPS:
            return HTTPStatus.OK, "text/plain", self.app.get_ca_caps()
        if r.operation is Operation.CA_CERT:
            ctype, body = self.app.get_ca_cert()
            return HTTPStatus.OK, ctype, body
        message = r.message if r.message is not None else self._read_body(MAX_MESSAGE)
        return (HTTPStatus.OK, PKI_MESSAGE,
                self.app.pki_operation(check_message(message), self.client_address[0]))


class _AdminHandler(_Handler):
    admin_app: AdminApplication
    token: str

    def _route(self) -> tuple[HTTPStatus, str, bytes]:
        path = split_target(self.path).path
        if self.command != "POST" or not path.startswith("/admin/"):
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        presented = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise HttpError(HTTPStatus.FORBIDDEN, "bad admin token")
        body = self._read_body(MAX_ADMIN_BODY)
        try:
            args = json.loads(body or b"{}")
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        if not isinstance(args, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not a JSON object")
        result = self.admin_app.admin(path.removeprefix("/admin/"), args)
        return HTTPStatus.OK, "application/json", json.dumps(result).encode()

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = json.dumps({"error": message, "status": int(status)}).encode()
        self._send(status, "application/json", body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A peer that hangs up mid-answer is routine; anything else is logged, not printed."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("peer went away", peer=client_address[0], error=str(exc))
        else:
            log.error("http connection failed", peer=client_address[0], exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


@dataclass
class RunningServer:
    """A SCEP server running in a background thread."""

    url: str  # base URL, http://HOST:PORT
    admin_url: str | None
    _servers: tuple[_Server, ...]
    _threads: tuple[threading.Thread, ...]

    @property
    def port(self) -> int:
        return int(self._servers[0].server_address[1])

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
        for srv in self._servers:
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - display only
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def start(app: ScepApplication, host: str = "127.0.0.1", port: int = 0, *,
          admin: AdminApplication | None = None, admin_token: str = "",
          before_serving: Callable[[str], None] | None = None) -> RunningServer:
    """Bind and serve `app` (and `admin` on 127.0.0.1, an ephemeral port) in daemon threads.
    `before_serving(base_url)` runs once the port is bound and before any request is served."""
    handler = type("ScepHandler", (_Handler,), {"app": app})
    family_server: type[_Server] = _Server
    if ":" in host:
        family_server = _Server6
    servers: list[_Server] = [family_server((host, port), handler)]
    admin_url = None
    if admin is not None:
        try:
            servers.append(_admin_server(admin, admin_token))
        except (OSError, ValueError):
            servers[0].server_close()
            raise
        admin_url = _url("127.0.0.1", servers[1].server_address[1])
    bound = servers[0].server_address
    base_url = _url(host, int(bound[1]))
    if before_serving is not None:
        try:
            before_serving(base_url)
        except BaseException:
            for srv in servers:
                srv.server_close()
            raise
    return _run(base_url, admin_url, servers)


def start_admin(admin: AdminApplication, admin_token: str) -> RunningServer:
    """Serve only the admin endpoint (127.0.0.1, an ephemeral port) in a daemon thread; its
    `url` and `admin_url` are both the endpoint's URL."""
    srv = _admin_server(admin, admin_token)
    url = _url("127.0.0.1", srv.server_address[1])
    return _run(url, url, [srv])


def _admin_server(admin: AdminApplication, admin_token: str) -> _Server:
    if not admin_token:
        raise ValueError("an admin endpoint needs a token")
    ah = type("AdminHandler", (_AdminHandler,), {"admin_app": admin, "token": admin_token})
    return _Server(("127.0.0.1", 0), ah)


def _run(base_url: str, admin_url: str | None, servers: list[_Server]) -> RunningServer:
    threads = []
    for srv in servers:
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             name=f"scep-http-{srv.server_address[1]}", daemon=True)
        t.start()
        threads.append(t)
    return RunningServer(base_url, admin_url, tuple(servers), tuple(threads))


def listen(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening TCP socket on host:port (0 = ephemeral) and its base URL."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=_Server.request_queue_size)
    return sock, _url(host, int(sock.getsockname()[1]))


# -- the asyncio adapter (worker processes) ---------------------------------------------------


class AsyncScepApplication(Protocol):
    """Like `ScepApplication`, but a PKIOperation answer may wait for another process."""

    def get_ca_caps(self) -> bytes: ...

    def get_ca_cert(self) -> tuple[str, bytes]: ...

    def crl(self) -> bytes: ...

    async def pki_operation(self, message: bytes, peer: str) -> bytes: ...


MAX_HEAD = 64 * 1024
"""Largest request line + headers accepted (http.server's per-line limit)."""


@dataclass(frozen=True, slots=True)
class _Request:
    command: str
    target: str
    keep_alive: bool
    body: bytes


class _HeadError(Exception):
    """A request head we answer with `status` and then close the connection."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """(command, target, version, headers with lower-case names) of a request head."""
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].rstrip("\r").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _HeadError(HTTPStatus.BAD_REQUEST, "bad request line")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        line = raw.rstrip("\r")
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _HeadError(HTTPStatus.BAD_REQUEST, "malformed header line")
        key = name.lower()
        if key == "content-length" and key in headers:
            raise _HeadError(HTTPStatus.BAD_REQUEST, "repeated Content-Length")  # see below
        headers[key] = value.strip()
    return parts[0], parts[1], parts[2], headers


def _body_length(command: str, headers: Mapping[str, str]) -> int:
    if headers.get("transfer-encoding", "identity").lower() != "identity":
        raise _HeadError(HTTPStatus.LENGTH_REQUIRED,
                         "chunked bodies are not accepted; send Content-Length")
    text = headers.get("content-length")
    try:
        length = content_length([text] if text is not None else [])
    except HttpError as e:
        raise _HeadError(e.status, e.message) from None
    if length is None:
        if command == "POST":
            raise _HeadError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        return 0
    if length > MAX_MESSAGE:
        raise _HeadError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"body of {length} bytes is larger than {MAX_MESSAGE}")
    return length


class _DateCache:
    """The Date header value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = formatdate(second, usegmt=True)
        return self._text


_DATE = _DateCache()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: requests are answered one at a time, in order (pipelined ones
    wait in the buffer); keep-alive unless the client or an error says otherwise; idle for
    REQUEST_TIMEOUT seconds, it is closed."""

    def __init__(self, app: AsyncScepApplication, connections: set[_Connection],
                 on_closed: Callable[[], None] | None = None) -> None:
        self._app = app
        self._connections = connections
        self._on_closed = on_closed
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._closing = False
        self._continued = False
        self._peer = ""
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Future[bytes] | None = None  # the PKIOperation being answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) else "local"
        self._connections.add(self)
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._on_closed is not None:
            self._on_closed()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._arm_timer()
        if not self._busy:
            self._next()
        elif len(self._buffer) > MAX_HEAD + MAX_MESSAGE and self._transport is not None:
            self._transport.pause_reading()  # a pipelining client waits for our answers

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(REQUEST_TIMEOUT, self.close)

    @property
    def busy(self) -> bool:
        return self._busy

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _next(self) -> None:
        """Answer the next complete request in the buffer, if there is one."""
        while not self._busy and not self._closing:
            try:
                request = self._take_request()
            except _HeadError as e:
                self._respond(e.status, "text/plain; charset=utf-8",
                              (e.message + "\n").encode(), command="GET", keep_alive=False)
                return
            if request is None:
                if self._buffer:
                    self._ack_now()
                if self._transport is not None and len(self._buffer) <= MAX_HEAD:
                    self._transport.resume_reading()
                return
            self._dispatch(request)

    def _ack_now(self) -> None:
        """Acknowledge what arrived of an incomplete request at once. A sender with Nagle's
        algorithm on (socat, many relays) holds the rest of the request until that ACK, and
        the receiver's delayed ACK would make it wait up to 40 ms (Linux: TCP_QUICKACK sends
        a pending ACK now)."""
        sock = self._transport.get_extra_info("socket") if self._transport else None
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if sock is not None and quickack is not None and sock.family != socket.AF_UNIX:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    def _take_request(self) -> _Request | None:
        buf = self._buffer
        end = buf.find(b"\r\n\r\n")
        sep = 4
        bare = buf.find(b"\n\n")
        if bare != -1 and (end == -1 or bare < end):
            end, sep = bare, 2
        if end > MAX_HEAD or (end == -1 and len(buf) > MAX_HEAD):
            if buf.find(b"\n", 0, MAX_HEAD) == -1:
                raise _HeadError(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
            raise _HeadError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                             "request head larger than 64 KiB")
        if end == -1:
            return None
        command, target, version, headers = _parse_head(bytes(buf[:end]))
        if command not in ("GET", "POST", "HEAD"):
            raise _HeadError(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {command[:20]!r}")
        length = _body_length(command, headers)
        start = end + sep
        if len(buf) < start + length:
            if (length and not self._continued and version == "HTTP/1.1"
                    and headers.get("expect", "").lower() == "100-continue"
                    and self._transport is not None):
                self._continued = True
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        body = bytes(buf[start:start + length])
        del buf[:start + length]
        self._continued = False
        connection = headers.get("connection", "").lower()
        keep_alive = (connection != "close" if version == "HTTP/1.1"
                      else connection == "keep-alive")
        return _Request(command, target, keep_alive, body)

    def _dispatch(self, request: _Request) -> None:
        try:
            r = route(request.command, request.target)
            if r.operation is Operation.PKI_OPERATION:
                message = check_message(r.message if r.message is not None else request.body)
                self._busy = True
                self._task = asyncio.ensure_future(self._app.pki_operation(message, self._peer))
                self._task.add_done_callback(lambda t: self._answered(t, request))
                return
            if r.operation is Operation.CRL:
                ctype, body = "application/pkix-crl", self._app.crl()
            elif r.operation is Operation.CA_CAPS:
                ctype, body = "text/plain", self._app.get_ca_caps()
            else:
                ctype, body = self._app.get_ca_cert()
        except HttpError as e:
            self._respond(e.status, "text/plain; charset=utf-8", (e.message + "\n").encode(),
                          request.command, request.keep_alive)
            return
        except Exception:  # a bug: answer 500, keep serving, log it with its traceback
            log.exception("scep request failed", path=request.target.split("?")[0])
            self._respond(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
                          b"internal error\n", request.command, keep_alive=False)
            return
        self._respond(HTTPStatus.OK, ctype, body, request.command, request.keep_alive)

    def _answered(self, task: asyncio.Future[bytes], request: _Request) -> None:
        self._busy = False
        self._task = None
        if task.cancelled():
            self.close()
            return
        exc = task.exception()
        if exc is None:
            self._respond(HTTPStatus.OK, PKI_MESSAGE, task.result(), request.command,
                          request.keep_alive)
        elif isinstance(exc, HttpError):
            self._respond(exc.status, "text/plain; charset=utf-8", (exc.message + "\n").encode(),
                          request.command, request.keep_alive)
        else:
            log.error("scep request failed", path=request.target.split("?")[0],
                      exc_info=(type(exc), exc, exc.__traceback__))
            self._respond(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
                          b"internal error\n", request.command, keep_alive=False)
        self._next()

    def _respond(self, status: HTTPStatus, content_type: str, body: bytes, command: str,
                 keep_alive: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        head = (f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                f"Server: trustledger-scep\r\nDate: {_DATE.now()}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                + ("" if keep_alive else "Connection: close\r\n") + "\r\n").encode("latin-1")
        self._transport.write(head + body if command != "HEAD" else head)
        if not keep_alive:
            self._closing = True
            self._transport.close()


class AsyncServer:
    """Serves HTTP connections on the running asyncio loop that another process accepted and
    handed over (`adopt`; see engine/ca/workers.py for why). `on_closed` runs whenever one of
    them closes."""

    def __init__(self, app: AsyncScepApplication,
                 on_closed: Callable[[], None] | None = None) -> None:
        self._app = app
        self._on_closed = on_closed
        self._connections: set[_Connection] = set()
        self._starting: set[asyncio.Task[tuple[asyncio.Transport, _Connection]]] = set()
        self._loop = asyncio.get_running_loop()

    def adopt(self, conn: socket.socket) -> None:
        """Serve an accepted connection."""
        conn.setblocking(False)
        task = asyncio.create_task(self._loop.connect_accepted_socket(
            lambda: _Connection(self._app, self._connections, self._on_closed), sock=conn))
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
