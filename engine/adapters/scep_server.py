"""The SCEP HTTP server: a thin stdlib adapter (`http.server.ThreadingHTTPServer`) over an
application object that speaks bytes.

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

import binascii
import hmac
import json
import socket
import sys
import threading
from base64 import b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import structlog

log = structlog.get_logger("trustledger.scep_server")

SCEP_PATHS = frozenset({"/scep", "/cgi-bin/pkiclient.exe"})
CRL_PATH = "/crl/ca.crl"
MAX_MESSAGE = 64 * 1024
"""Largest PKIOperation message accepted (after base64 decoding for GET)."""
MAX_ADMIN_BODY = 16 * 1024
REQUEST_TIMEOUT = 30.0  # seconds a connection may sit idle mid-request


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
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
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
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path == CRL_PATH and self.command in ("GET", "HEAD"):
            return HTTPStatus.OK, "application/pkix-crl", self.app.crl()
        if path not in SCEP_PATHS:
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        query = _query(url.query)
        operation = unquote(query.get("operation", ""))
        if operation == "GetCACaps":
            return HTTPStatus.OK, "text/plain", self.app.get_ca_caps()
        if operation == "GetCACert":
            ctype, body = self.app.get_ca_cert()
            return HTTPStatus.OK, ctype, body
        if operation == "PKIOperation":
            if self.command == "POST":
                message = self._read_body(MAX_MESSAGE)
            elif "message" in query:
                message = decode_message_param(query["message"])
            else:
                raise HttpError(HTTPStatus.BAD_REQUEST, "PKIOperation needs a message")
            if len(message) > MAX_MESSAGE:
                raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "message larger than 64 KiB")
            if not message:
                raise HttpError(HTTPStatus.BAD_REQUEST, "empty message")
            return (HTTPStatus.OK, "application/x-pki-message",
                    self.app.pki_operation(message, self.client_address[0]))
        if not operation:
            raise HttpError(HTTPStatus.BAD_REQUEST, "missing operation")
        raise HttpError(HTTPStatus.BAD_REQUEST, f"unsupported operation {operation[:40]!r}")


class _AdminHandler(_Handler):
    admin_app: AdminApplication
    token: str

    def _route(self) -> tuple[HTTPStatus, str, bytes]:
        path = urlsplit(self.path).path
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
        if not admin_token:
            raise ValueError("an admin endpoint needs a token")
        ah = type("AdminHandler", (_AdminHandler,), {"app": app, "admin_app": admin,
                                                      "token": admin_token})
        try:
            servers.append(_Server(("127.0.0.1", 0), ah))
        except OSError:
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
    threads = []
    for srv in servers:
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             name=f"scep-http-{srv.server_address[1]}", daemon=True)
        t.start()
        threads.append(t)
    return RunningServer(base_url, admin_url, tuple(servers), tuple(threads))
