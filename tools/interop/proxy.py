"""A recording HTTP proxy on loopback, put between a SCEP peer and a SCEP server.

Every cell talks to the server under test through one of these, so the cell can check what
the server really answered, independently of how the peer reports it: the HTTP status (never a
5xx), and for PKIOperation the CertRep's pkiStatus, failInfo, failInfoText and the SignerInfo's
signature algorithm, read from the signed attributes (which are not encrypted). It also sees the
request's messageType (PKCSReq, RenewalReq, CertPoll, ...).

`get_only=True` makes the server look like a CA without POSTPKIOperation (micromdm's scepserver
cannot be configured so): that line, and SCEPStandard (which implies it), are dropped from the
GetCACaps answer and a POST PKIOperation is refused with 405, so a client that POSTs anyway fails
visibly. `caps=(...)` makes it answer GetCACaps with only those keywords (a CA that offers one
cipher and one digest, say), whatever the server advertises.

The decoding here is deliberately independent of engine/scep: a bug there must not hide itself.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

from asn1crypto import cms

# RFC 8894 §3.2.1.2-3.2.1.4: the signed attributes of a pkiMessage.
MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
PKI_STATUS = "2.16.840.1.113733.1.9.3"
FAIL_INFO = "2.16.840.1.113733.1.9.4"
FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"  # id-scep-failInfoText (RFC 8894 §3.2.1.4)
VERISIGN_FAIL_INFO_TEXT = "2.16.840.1.113733.1.9.24"  # not in any RFC

MESSAGE_TYPES = {"3": "CertRep", "17": "RenewalReq", "19": "PKCSReq", "20": "CertPoll",
                 "21": "GetCert", "22": "GetCRL"}
PKI_STATUSES = {"0": "SUCCESS", "2": "FAILURE", "3": "PENDING"}
# RFC 8894 §3.5.2: "SCEPStandard" implies "AES", "POSTPKIOperation" and "SHA-256", so a CA
# without POST must not advertise it either.
GET_ONLY_DROPS = (b"POSTPKIOperation", b"SCEPStandard")
FAIL_INFOS = {"0": "badAlg", "1": "badMessageCheck", "2": "badRequest", "3": "badTime",
              "4": "badCertId"}


@dataclass(frozen=True)
class Signed:
    """What a pkiMessage's (first) SignerInfo says in clear."""

    message_type: str = ""  # "PKCSReq", "CertRep", ... ("" when unreadable)
    pki_status: str = ""  # CertRep only
    fail_info: str = ""
    fail_info_text: str = ""
    text_oid: str = ""  # the OID the failure text came under
    signature_oid: str = ""  # SignerInfo.signatureAlgorithm, dotted
    digest: str = ""  # SignerInfo.digestAlgorithm ("sha256", ...)
    cipher: str = ""  # the pkcsPKIEnvelope's content cipher ("aes128_cbc", "tripledes_3key",
    #                   ...; "" when there is none, as in PENDING and FAILURE)
    error: str = ""  # why it could not be read


def read_pki_message(der: bytes) -> Signed:
    try:
        info = cms.ContentInfo.load(der)
        signer = info["content"]["signer_infos"][0]
        attrs = {a["type"].dotted: a["values"] for a in signer["signed_attrs"]}
        sig_oid = signer["signature_algorithm"]["algorithm"].dotted
        digest = str(signer["digest_algorithm"]["algorithm"].native)
        cipher = _envelope_cipher(info["content"]["encap_content_info"]["content"].native)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        return Signed(error=f"not a SignedData pkiMessage ({e})")

    def text(oid: str) -> str:
        values = attrs.get(oid)
        if values is None:
            return ""
        value = values[0]
        parsed = getattr(value, "parsed", None) or value
        return str(parsed.native) if hasattr(parsed, "native") else str(parsed)

    failure_text, text_oid = "", ""
    for oid in (FAIL_INFO_TEXT, VERISIGN_FAIL_INFO_TEXT):
        if text(oid):
            failure_text, text_oid = text(oid), oid
            break
    mt = text(MESSAGE_TYPE)
    return Signed(message_type=MESSAGE_TYPES.get(mt, mt),
                  pki_status=PKI_STATUSES.get(text(PKI_STATUS), text(PKI_STATUS)),
                  fail_info=FAIL_INFOS.get(text(FAIL_INFO), text(FAIL_INFO)),
                  fail_info_text=failure_text, text_oid=text_oid, signature_oid=sig_oid,
                  digest=digest, cipher=cipher)


def _envelope_cipher(content: bytes | None) -> str:
    """The content cipher of the EnvelopedData a pkiMessage signs ("" for none)."""
    if not content:
        return ""
    enveloped = cms.ContentInfo.load(content)["content"]
    algorithm = enveloped["encrypted_content_info"]["content_encryption_algorithm"]
    return str(algorithm["algorithm"].native)


@dataclass(frozen=True)
class Exchange:
    method: str
    operation: str
    status: int
    content_type: str
    request: Signed | None  # PKIOperation only
    reply: Signed | None  # PKIOperation with a 200 answer only
    body: bytes = b""  # the answer as sent (PKIOperation only)

    def line(self) -> str:
        what = f"{self.method} {self.operation} -> {self.status}"
        if self.request is not None:
            what += f" [{self.request.message_type or self.request.error}"
            if self.reply is not None:
                r = self.reply
                what += (f" -> {r.pki_status or r.error}"
                         + (f" {r.fail_info}" if r.fail_info else "") + "]")
            else:
                what += "]"
        return what


class RecordingProxy:
    """Forwards 127.0.0.1:port -> `upstream` (http://127.0.0.1:PORT), recording exchanges."""

    def __init__(self, upstream: str, *, get_only: bool = False,
                 caps: tuple[str, ...] | None = None) -> None:
        u = urlsplit(upstream)
        assert u.hostname in ("127.0.0.1", "::1") and u.port is not None, upstream
        self.upstream = (u.hostname, u.port)
        self.get_only = get_only
        self.caps = caps  # when set, the GetCACaps answer's keywords are only these
        self.exchanges: list[Exchange] = []
        self._lock = threading.Condition()
        self._in_flight = 0  # requests taken and not yet recorded
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- what the cells ask ----------------------------------------------------------------

    def operations(self) -> list[Exchange]:
        with self._lock:
            return [x for x in self.exchanges if x.operation == "PKIOperation"]

    def server_errors(self) -> list[Exchange]:
        with self._lock:
            return [x for x in self.exchanges if x.status >= 500]

    def replies(self) -> list[Signed]:
        return [x.reply for x in self.operations() if x.reply is not None]

    def settle(self, timeout: float) -> bool:
        """Wait (`timeout` at most) until every request taken so far is recorded. The server
        acts on a request (appends it to its log) before its answer comes back through here:
        what the server shows is not yet what the proxy recorded."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    def summary(self) -> str:
        """The PKIOperations seen, a repeated one counted: `POST PKIOperation -> 200 [CertPoll
        -> PENDING] x3`."""
        runs: list[list[object]] = []
        for line in (x.line() for x in self.operations()):
            if runs and runs[-1][0] == line:
                runs[-1][1] = int(str(runs[-1][1])) + 1
            else:
                runs.append([line, 1])
        return ("; ".join(f"{line}{f' x{n}' if n != 1 else ''}" for line, n in runs)
                or "no PKIOperation seen")

    # -- the forwarding ------------------------------------------------------------------------

    def _record(self, x: Exchange) -> None:
        with self._lock:
            self.exchanges.append(x)

    def _taken(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
            self._lock.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # the exchanges are recorded instead

            def do_GET(self) -> None:
                proxy._taken(1)
                try:
                    self._forward(b"")
                finally:
                    proxy._taken(-1)

            def do_POST(self) -> None:
                proxy._taken(1)
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    self._forward(self.rfile.read(length))
                finally:
                    proxy._taken(-1)

            def _forward(self, body: bytes) -> None:
                query = parse_qs(urlsplit(self.path).query)
                op = (query.get("operation") or [""])[0]
                if proxy.get_only and self.command == "POST" and op == "PKIOperation":
                    proxy._record(Exchange("POST", op, 405, "", None, None))
                    self._send(405, "text/plain", b"POSTPKIOperation is not advertised\n")
                    return
                request = None
                if op == "PKIOperation":
                    message = body or _get_message(self.path)
                    request = read_pki_message(message)
                status, ctype, answer = proxy._upstream(self.command, self.path, body,
                                                         self.headers.get("Content-Type"))
                if proxy.get_only and op == "GetCACaps" and status == 200:
                    answer = b"\n".join(c for c in answer.splitlines()
                                        if c.strip() not in GET_ONLY_DROPS)
                if proxy.caps is not None and op == "GetCACaps" and status == 200:
                    answer = "".join(f"{c}\n" for c in proxy.caps).encode()
                reply = (read_pki_message(answer) if op == "PKIOperation" and status == 200
                         else None)
                proxy._record(Exchange(self.command, op, status, ctype, request, reply,
                                       answer if op == "PKIOperation" else b""))
                self._send(status, ctype, answer)

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _upstream(self, method: str, path: str, body: bytes,
                  ctype: str | None) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {"Content-Type": ctype} if ctype else {}
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except OSError as e:
            return 502, "text/plain", f"proxy: upstream unreachable: {e}".encode()
        finally:
            conn.close()


def _get_message(path: str) -> bytes:
    """The DER of a GET PKIOperation's `message` parameter (percent-decoded base64)."""
    for part in urlsplit(path).query.split("&"):
        if part.startswith("message="):
            try:
                return base64.b64decode(unquote_to_bytes(part[len("message="):]))
            except (binascii.Error, ValueError):
                return b""
    return b""
