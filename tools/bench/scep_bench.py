"""SCEP enrollment throughput: trustledger's built-in CA vs micromdm's scepserver, same run.

    python tools/bench/scep_bench.py [--enrollments 300] [--concurrency 8] [--keys 16]

Both servers run as separate processes on 127.0.0.1 with an RSA-2048 CA and a static
challenge: ours as `python -m engine.ca.cli serve [--workers N]` (default: `ca serve`'s own
default, one worker process per CPU but one, i.e. one process on 2 CPUs; `--workers 1` is the
single-process server), micromdm's through
/work/shared/peers/scep-server.sh (scepserver 2.1.0 inside a network namespace behind two socat
relays; `-allowrenew 0`). By default ours is put behind the same two-relay path (TCP -> unix
socket -> TCP) so both pay the same transport; `--direct` measures ours without it.

What is measured, and what is not. Both servers are treated exactly alike:

- Not timed: key generation (a pool of `--keys` RSA-2048 keys and self-signed signer
  certificates), the PKCS#10 requests, the PKCSReq pkiMessages (AES-128-CBC + SHA-256, a
  unique CN, transactionID and senderNonce each) and the whole HTTP requests: all built
  before the clock starts; a warm-up of `--warmup` enrollments per round.
- Timed (the window): one thread keeps `--concurrency` HTTP/1.1 keep-alive connections under
  a selector and sends the next pre-built request on each as its answer arrives, and checks
  each answer cheaply as it comes (HTTP 200; its transactionID, its recipientNonce = our
  senderNonce and pkiStatus SUCCESS found in the CertRep's bytes, `cheap_check`: a few µs).
  It costs ~0.05-0.1 ms of CPU per enrollment, printed as "client"; the load generator shares
  the two cores with the servers, so that is what it takes from them.
- After the window, every answer (not a sample: it costs the window nothing) is verified in
  full (`verify_answers`: the CA's signature, transactionID, recipientNonce, decryption, a
  certificate for the request's key). An answer that does not verify, answers another
  request, or whose cheap check and full check disagree is "wrong" and fails the run, for
  either server; a FAILURE CertRep that verifies is a refusal, not a wrong answer (scepserver
  2.1.0 refuses a few under concurrency: its serial counter races). Any enrollment of ours
  that is not issued fails the run.
- The row compares certificates issued per second (verified SUCCESS), ours / scepserver, in
  the same rounds; rounds alternate between the servers and the median round of each is
  reported. Server CPU per enrollment: utime + stime over the window of the server's
  processes from /proc (ours: `ca serve`, i.e. the decider, and its workers; micromdm's: the
  scepserver process); the socat relays apart, as "relays". On a shared machine the rate
  moves with the neighbours' load (printed at the end); CPU per enrollment is the steadier
  figure, and 1000 / CPU ms is what one fully available core would issue. Context switches
  per enrollment: those of every thread of the server's processes over the window
  (`tree_switches`, read before the connections close: a server that gives each connection
  a thread of its own, as `ca serve` did at 4067a16 under --compare, loses a thread's
  counters when it ends), a count of the hand-offs (thread wake-ups, GIL and lock waits, syncs)
  an enrollment costs.
- Not measured: TLS (SCEP runs over plain HTTP), client-side CMS work, key generation,
  connection set-up (connections are kept alive), and for micromdm its network namespace's
  own cost beyond the two relays both servers pay.

    --compare TREE   also serve from another checkout (e.g. `git archive` of the commit
                     before a change), in the same rounds: before/after from one run
    --pool           also serve with the design `ca serve --workers` was compared with: one
                     process serving HTTP and owning the CA, a ProcessPoolExecutor running
                     the pure responder (parse/verify/decrypt, CertRep) (`serve_pool` below)
    --also-workers N also serve with `ca serve --workers N` in the same rounds ("workers N";
                     1: one process, HTTP on an asyncio thread and PKIOperations in a thread
                     pool, whose RSA operations release the GIL; N >= 2: a deciding process
                     and N worker processes)
    --steps          also say where an enrollment's CPU goes: each step of the in-process
                     path timed alone (thread CPU, `steps` below), and what the server spends
                     besides (HTTP, the channel, the decider's loop: its CPU per enrollment
                     minus the in-process total)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from engine.scep import (  # noqa: E402
    ContentCipher,
    Credential,
    DigestAlgorithm,
    PkiStatus,
    RequestParameters,
    build_csr,
    build_pkcs_req,
    build_self_signed_certificate,
    new_nonce,
    parse_ca_certificates,
    parse_cert_rep,
)
from engine.scep.errors import ScepError  # noqa: E402

PEERS = Path(os.environ.get("TRUSTLEDGER_PEERS", "/work/shared/peers"))
CHALLENGE = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # not listening yet
            if get(port, "/scep?operation=GetCACaps")[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not come up")


def get(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    finally:
        conn.close()


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float, float] | None:
    """(comm, ppid, CPU seconds used, CPU seconds of its reaped children) of `pid` from
    /proc, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK,
            (int(fields[13]) + int(fields[14])) / _TICK)


def _tree(root: int, only: str | None) -> dict[int, tuple[str, int, float, float]]:
    """`_stat` of `root` and each of its descendants (only those whose command name is
    `only`, if given)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats and (only is None or stats[pid][0] == only):
            found[pid] = stats[pid]
        todo += children.get(pid, [])
    return found


def tree_cpu(root: int, only: str | None = None, *, reaped: bool = False) -> float:
    """CPU seconds used so far by `root` and its descendants (only those whose command
    name is `only`, if given), with what their reaped children used if `reaped` (socat's
    per-connection forks end when their connection does)."""
    return sum(st[2] + (st[3] if reaped else 0.0) for st in _tree(root, only).values())


def tree_switches(root: int, only: str | None = None) -> int:
    """Context switches (voluntary and not) so far of every thread of `root` and its
    descendants: each time one of them stopped running, to wait (a lock, the GIL, a queue,
    a condition, the disk, the network) or because the scheduler took the CPU."""
    total = 0
    for pid in _tree(root, only):
        with contextlib.suppress(OSError):  # a thread or process that has just ended
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError), \
                        open(f"/proc/{pid}/task/{task}/status") as f:
                    total += sum(int(line.split()[1]) for line in f
                                 if "ctxt_switches:" in line)
    return total


@dataclass
class Server:
    """A server under test: where it listens and whose CPU is its own."""

    name: str
    port: int
    pid: int
    only: str | None = None  # count only processes of this name under `pid`
    relays: tuple[int, ...] = ()  # the process trees holding its socat relays

    def cpu(self) -> float:
        return tree_cpu(self.pid, self.only)

    def switches(self) -> int:
        return tree_switches(self.pid, self.only)

    def root_cpu(self) -> float:
        """CPU seconds of the root process alone (ours: the decider, without its workers)."""
        st = _stat(self.pid)
        return st[2] if st is not None else 0.0

    def relay_cpu(self) -> float:
        return sum(tree_cpu(pid, "socat", reaped=True) for pid in self.relays)


@dataclass
class Prepared:
    der: bytes
    params: RequestParameters

    @property
    def expected(self) -> tuple[bytes, ...]:
        """What the load generator looks for in the answer's bytes inside the timed window
        (`cheap_check`): our transactionID as the PrintableString attribute value, our
        senderNonce as the recipientNonce OCTET STRING, pkiStatus SUCCESS ("0")."""
        tid = self.params.transaction_id.encode("ascii")
        nonce = self.params.sender_nonce
        return (b"\x13" + bytes([len(tid)]) + tid, b"\x04" + bytes([len(nonce)]) + nonce,
                _PKI_STATUS_SUCCESS)


# pkiStatus (2.16.840.1.113733.1.9.3) SET { PrintableString "0" }: SUCCESS
_PKI_STATUS_SUCCESS = bytes.fromhex("060a6086480186f845010903" "3103130130")


def cheap_check(body: bytes, expected: tuple[bytes, ...]) -> bool:
    """True if `body` carries every pattern of `expected` (a few µs: `bytes.find`). A CertRep
    keeps these attributes outside its encryption, so a reply to another request, or a
    FAILURE, fails here; that it is signed by the CA and decrypts to a certificate for our key
    is checked after the window (`verify_answers`)."""
    return all(pattern in body for pattern in expected)


def prepare(port: int, keys: list[rsa.RSAPrivateKey], count: int, label: str,
            signer_certs: list[x509.Certificate]) -> tuple[list[Prepared], x509.Certificate]:
    status, ctype, body = get(port, "/scep?operation=GetCACert")
    assert status == 200, status
    cas = parse_ca_certificates(ctype, body)
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        key = keys[i % len(keys)]
        cn = f"bench-{label}-{run}-{i}.example.com"
        csr = build_csr(key, x509.Name.from_rfc4514_string(f"CN={cn},O=Example"),
                        challenge_password=CHALLENGE)
        params = RequestParameters(
            signer=Credential(signer_certs[i % len(keys)], key), recipient=cas.recipient,
            transaction_id=f"BENCH{run}{i:06d}".upper(), sender_nonce=new_nonce(os.urandom),
            cipher=ContentCipher.AES_128_CBC, digest=DigestAlgorithm.SHA256)
        out.append(Prepared(build_pkcs_req(params, csr, random_bytes=os.urandom), params))
    return out, cas.signer


def _request_bytes(port: int, body: bytes) -> bytes:
    """The whole HTTP/1.1 request for one PKIOperation POST, built before the clock starts."""
    return (f"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-pki-message\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _Client:
    """One keep-alive connection of the load generator: send a pre-built request, read the
    response (status line, Content-Length, body) with as little Python as possible."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = self._connect()
        self.index = -1
        self.buf = b""
        self.t0 = 0.0
        self.retried = False

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return sock

    def reconnect(self) -> None:
        self.sock.close()
        self.sock = self._connect()
        self.buf = b""

    def response(self) -> tuple[int, bytes] | None:
        """(status, body) once the buffer holds a whole response, else None. Bodies come with
        a Content-Length or chunked (Go's net/http chunks what it did not buffer)."""
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = self.buf[:head_end].lower() + b"\r\n"
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            end = head_end + 4 + int(head[at + 17:head.index(b"\r\n", at + 2)])
            if len(self.buf) < end:
                return None
            body = self.buf[head_end + 4:end]
        elif b"\r\ntransfer-encoding: chunked\r\n" in head:
            chunks, end = _chunked(self.buf, head_end + 4)
            if chunks is None:
                return None
            body = chunks
        else:
            raise RuntimeError(f"a response without a length: {head[:200]!r}")
        self.buf = self.buf[end:]
        return int(head[9:12]), body


def _chunked(buf: bytes, at: int) -> tuple[bytes | None, int]:
    """(body, end) of a chunked body starting at `at`, (None, 0) if not all of it is in."""
    parts = []
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None, 0
        size = int(buf[at:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)  # no trailers: "0\r\n\r\n"
            return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else (None, 0)
        if len(buf) < start + size + 2:
            return None, 0
        parts.append(buf[start:start + size])
        at = start + size + 2


def drive(port: int, messages: list[Prepared], concurrency: int,
          at_end: Any = None) -> tuple[float, list[float], list[bytes | None], float, int]:
    """POST every message over `concurrency` keep-alive connections from one thread (a
    selector over non-blocking sockets, requests pre-built: the load generator shares the
    machine's cores with the servers, so it must cost them as little as possible); check
    each answer cheaply as it arrives (HTTP 200 and `cheap_check`). Returns (seconds,
    latencies, answers by index, the generator's own CPU seconds, answers that passed the
    cheap check). `at_end()` runs once the last answer is in, before the connections close
    (a thread that serves one connection ends with it, and its counters with it)."""
    requests = [_request_bytes(port, m.der) for m in messages]
    expected = [m.expected for m in messages]
    passed = 0
    answers: list[bytes | None] = [None] * len(messages)
    latencies: list[float] = []
    clients = [_Client(port) for _ in range(min(concurrency, len(messages)))]
    sel = selectors.DefaultSelector()
    todo = iter(range(len(messages)))
    perf = time.perf_counter

    def send_next(c: _Client) -> bool:
        i = next(todo, None)
        if i is None:
            return False
        c.index, c.t0, c.retried = i, perf(), False
        _blocking_send(c.sock, requests[i])
        return True

    cpu0, t0 = time.process_time(), perf()
    active = 0
    for c in clients:
        if send_next(c):
            sel.register(c.sock, selectors.EVENT_READ, c)
            active += 1
    while active:
        for key, _ in sel.select(timeout=60):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:  # the relay or server closed an idle connection: resend once
                if c.retried:
                    raise RuntimeError(f"connection closed twice on request {c.index}")
                sel.unregister(c.sock)
                c.reconnect()
                c.retried = True
                _blocking_send(c.sock, requests[c.index])
                sel.register(c.sock, selectors.EVENT_READ, c)
                continue
            c.buf += data
            got = c.response()
            if got is None:
                continue
            status, body = got
            latencies.append(perf() - c.t0)
            answers[c.index] = body if status == 200 else None
            passed += status == 200 and cheap_check(body, expected[c.index])
            if not send_next(c):
                sel.unregister(c.sock)
                active -= 1
    seconds, cpu = perf() - t0, time.process_time() - cpu0
    if at_end is not None:
        at_end()
    for c in clients:
        c.sock.close()
    sel.close()
    return seconds, latencies, answers, cpu, passed


def _blocking_send(sock: socket.socket, data: bytes) -> None:
    """Send all of `data` on a non-blocking socket (a request is a few KiB: it usually fits
    the socket buffer; wait for room otherwise)."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            selectors.select.select([], [sock], [], 60)


def verify_answers(messages: list[Prepared], answers: list[bytes | None],
                   ca_signer: x509.Certificate) -> tuple[int, int]:
    """(issued, wrong) after the timed window, for every answer (not a sample: this costs
    the timed window nothing): `parse_cert_rep` verifies the CA's signature, the
    transactionID and the recipientNonce, and decrypts the certificate. Issued: SUCCESS with
    a certificate for the request's key. Wrong: an answer that does not verify or does not
    answer its request, or a SUCCESS without our certificate. A FAILURE that verifies is
    neither (a refusal is an answer)."""
    issued = wrong = 0
    for msg, answer in zip(messages, answers, strict=True):
        if answer is None:
            continue
        try:
            rep = parse_cert_rep(answer, signers=[ca_signer],
                                 transaction_id=msg.params.transaction_id,
                                 sender_nonce=msg.params.sender_nonce,
                                 recipient=msg.params.signer)
        except ScepError:
            wrong += 1
            continue
        if rep.status is PkiStatus.SUCCESS and rep.certificate_for(
                msg.params.signer.private_key.public_key()) is not None:  # type: ignore[arg-type]
            issued += 1
        elif rep.status is PkiStatus.SUCCESS:
            wrong += 1
    return issued, wrong


@dataclass
class Result:
    name: str
    rate: float
    p50_ms: float
    p95_ms: float
    ok: int  # verified after the window: SUCCESS with our certificate
    total: int
    passed: int  # passed the cheap check inside the window
    wrong: int  # answers that do not verify, or cheap check and full check disagree
    cpu_ms: float  # server CPU per enrollment
    root_ms: float  # of which the root process (ours: the decider; scepserver: all of it)
    client_ms: float  # the load generator's CPU per enrollment
    relay_ms: float  # the two socat relays' CPU per enrollment (0 with --direct)
    switches: float  # the server's context switches per enrollment (`tree_switches`)

    @property
    def issued(self) -> float:
        """Certificates issued per second: what the row compares, for every server alike."""
        return self.rate * self.ok / self.total


def measure(server: Server, keys: list[rsa.RSAPrivateKey],
            signer_certs: list[x509.Certificate], args: argparse.Namespace) -> Result:
    name, port = server.name, server.port
    warm, _ = prepare(port, keys, args.warmup, f"{name}w", signer_certs)
    msgs, signer = prepare(port, keys, args.enrollments, name, signer_certs)
    drive(port, warm, args.concurrency)
    cpu0, root0, relay0 = server.cpu(), server.root_cpu(), server.relay_cpu()
    switches0 = server.switches()
    switched: list[int] = []
    seconds, lat, answers, client, passed = drive(
        port, msgs, args.concurrency, at_end=lambda: switched.append(server.switches()))
    cpu, relay = server.cpu() - cpu0, server.relay_cpu() - relay0
    switches = switched[0] - switches0
    root = server.root_cpu() - root0
    ok, wrong = verify_answers(msgs, answers, signer)
    lat.sort()
    n = len(msgs)
    return Result(name, n / seconds, statistics.median(lat) * 1000,
                  lat[int(n * 0.95) - 1] * 1000, ok, n, passed, wrong + abs(passed - ok),
                  cpu * 1000 / n, root * 1000 / n, client * 1000 / n, relay * 1000 / n,
                  switches / n)


def _median(results: list[Result]) -> Result:
    """The round with the median throughput (its other figures come with it)."""
    return sorted(results, key=lambda r: r.issued)[len(results) // 2]


def start_ours(work: Path, port: int, relay_port: int | None, workers: int | None, *,
               repo: Path = REPO, label: str = "ours",
               serve: list[str] | None = None) -> list[subprocess.Popen[bytes]]:
    """`ca init` + `ca serve` of the tree at `repo` (`serve`: another command serving the
    CA directory, given as its last two arguments DIR PORT; `workers` None: `ca serve`'s
    default)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    ca = work / label
    subprocess.run([sys.executable, "-m", "engine.ca.cli", "init", str(ca), "--subject",
                    "CN=Bench CA,O=Example"], check=True, env=env, stdout=subprocess.DEVNULL,
                   cwd=repo)
    command = ([*serve, str(ca), str(port)] if serve is not None else
               [sys.executable, "-m", "engine.ca.cli", "serve", str(ca), "--port", str(port),
                "--challenge", CHALLENGE,
                *(["--workers", str(workers)] if workers is not None else [])])
    procs = [subprocess.Popen(command, env=env, cwd=repo, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    if relay_port is not None:  # the same TCP -> unix -> TCP path scep-server.sh builds
        sock = work / f"{label}.sock"
        procs.append(subprocess.Popen(
            ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600",
             f"TCP:127.0.0.1:{port}"], stderr=subprocess.DEVNULL))
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.1)
        procs.append(subprocess.Popen(
            ["socat", f"TCP-LISTEN:{relay_port},bind=127.0.0.1,reuseaddr,fork",
             f"UNIX-CONNECT:{sock}"], stderr=subprocess.DEVNULL))
    return procs


# -- the alternative to `ca serve --workers N`: one HTTP process + a ProcessPoolExecutor -------


_POOL: dict[str, Any] = {}  # a pool process's "responder" (set by _pool_init)


def _pool_init(root: str, init: dict[str, Any]) -> None:
    """Pool process set-up: a pure responder with the CA's keys, as a worker builds it."""
    from engine.ca.service import CRL_FILE
    from engine.ca.worker import CRLFile, responder_from

    _POOL["responder"] = responder_from(Path(root), init, CRLFile(Path(root) / CRL_FILE))


@dataclass(frozen=True)
class _Pending:
    """What `finish` needs of a parsed request, in a form that crosses processes."""

    transaction_id: str
    recipient_nonce: bytes
    digest: str
    message_type: int | None
    cipher: str | None
    recipient: bytes | None  # the requester's certificate, DER
    peer: str
    enveloped_to: bytes | None  # which of our CA certificates the request was enveloped to

    @property
    def reply_to(self) -> object:
        from engine.scep import ContentCipher, DigestAlgorithm, MessageType, ReplyTo

        return ReplyTo(self.transaction_id, self.recipient_nonce, DigestAlgorithm[self.digest],
                       None if self.message_type is None else MessageType(self.message_type),
                       None if self.cipher is None else ContentCipher[self.cipher],
                       None if self.recipient is None
                       else x509.load_der_x509_certificate(self.recipient))


def _pool_begin(message: bytes, peer: str) -> tuple[str, object, object]:
    """In a pool process: parse, verify, decrypt; ("done", CertRep, None) or ("ask", the
    request's reply context, the encoded query)."""
    from cryptography.hazmat.primitives import serialization

    from engine.ca.queries import encode_query
    from engine.ca.scep_frontend import Ask

    step = _POOL["responder"].begin(message, peer)
    if not isinstance(step, Ask):
        return "done", step, None
    r = step.request.reply_to
    pending = _Pending(r.transaction_id, r.recipient_nonce, r.digest.name,
                       None if r.message_type is None else int(r.message_type),
                       None if r.cipher is None else r.cipher.name,
                       None if r.recipient is None
                       else r.recipient.public_bytes(serialization.Encoding.DER), peer,
                       None if step.request.recipient is None
                       else step.request.recipient.public_bytes(serialization.Encoding.DER))
    return "ask", pending, encode_query(step.query)


def _pool_finish(pending: _Pending, answer: dict[str, object]) -> bytes:
    """In a pool process: the CertRep for the CA's answer."""
    from engine.ca.queries import decode_answer
    from engine.ca.scep_frontend import Ask

    responder = _POOL["responder"]
    signer = responder._signer_for(None if pending.enveloped_to is None
                                   else x509.load_der_x509_certificate(pending.enveloped_to))
    ask = Ask(pending, None, pending.peer, signer)  # type: ignore[arg-type]  # finish reads reply_to
    certrep: bytes = responder.finish(ask, decode_answer(answer))
    return certrep


def serve_pool(root: Path, port: int, processes: int) -> int:
    """`ca serve` rebuilt on a ProcessPoolExecutor: this process serves HTTP (h11) and owns
    the CA; the pool parses/decrypts requests and signs CertReps (run until SIGTERM)."""
    import asyncio
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from cryptography.hazmat.primitives import serialization

    from engine.adapters.scep_server import ScepSite, _Connection
    from engine.ca.decide import Approval, Policy
    from engine.ca.queries import answer, decode_query, encode_answer
    from engine.ca.scep_frontend import ScepResponder
    from engine.ca.service import CRL_PATH, BuiltinCA, challenge_digest

    ca = BuiltinCA.open(root)
    policy = Policy(Approval.AUTO, challenge_digest(CHALLENGE))
    ca.crl_url = f"http://127.0.0.1:{port}{CRL_PATH}"
    ca.issue_approved()
    ca.refresh_crl()
    ca.publish_crl()
    init = {"t": "init", "ca": ca.ca_certificate.public_bytes(serialization.Encoding.DER),
            "ra_signing": None, "ra_encryption": None, "strict": False, "tolerance": 86400.0}
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_pool_init, initargs=(str(root), init))
    deciders = ThreadPoolExecutor(32)
    local = ScepResponder.for_ca(ca)

    class PoolApp:
        def get_ca_caps(self) -> bytes:
            return local.get_ca_caps()

        def get_ca_cert(self) -> tuple[str, bytes]:
            return local.get_ca_cert()

        async def crl(self) -> bytes:
            return ca.current_crl().der

        async def pki_operation(self, message: bytes, peer: str) -> bytes:
            loop = asyncio.get_running_loop()
            kind, value, query = await loop.run_in_executor(pool, _pool_begin, message, peer)
            if kind == "done":
                assert isinstance(value, bytes)
                return value
            got = await loop.run_in_executor(deciders, answer, ca, policy, decode_query(query))
            return await loop.run_in_executor(pool, _pool_finish, value, encode_answer(got))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        site = ScepSite(PoolApp())
        connections: set[_Connection] = set()
        server = await loop.create_server(lambda: _Connection(site, connections),
                                          "127.0.0.1", port, backlog=128)
        await stop.wait()
        server.close()

    try:
        asyncio.run(run())
    finally:
        pool.shutdown()
        ca.close()
    return 0


# -- where the CPU goes: each step of the in-process path, timed alone -------------------------


def _cpu_us(step: Any, items: list[Any]) -> float:
    """Thread CPU microseconds per call of `step` over `items` (waits are not counted)."""
    start = time.thread_time()
    for item in items:
        step(item)
    return (time.thread_time() - start) * 1e6 / len(items)


def steps(work: Path, keys: list[rsa.RSAPrivateKey], signer_certs: list[x509.Certificate],
          count: int) -> list[tuple[str, float]]:
    """(step, thread CPU microseconds per enrollment) of the path `ca serve` runs, in one
    process on a fresh CA: the worker's `begin` (parse, verify, decrypt, CSR checks, the
    query), the decider's answer (decide, sign the certificate, append; batches of 8 share a
    commit, as the decider's do), the worker's CertRep (envelope, sign)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from engine.ca.decide import Approval, Policy
    from engine.ca.queries import answer
    from engine.ca.scep_frontend import ScepFrontend
    from engine.ca.service import BuiltinCA, challenge_digest
    from engine.scep import attributes, cms, parse_csr

    BuiltinCA.init(work / "steps", subject="CN=Bench CA,O=Example").close()
    ca = BuiltinCA.open(work / "steps")
    try:
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        front = ScepFrontend(ca, Policy(Approval.AUTO, challenge_digest(CHALLENGE)))
        responder = front.responder
        cas = parse_ca_certificates(*front.get_ca_cert())
        msgs = [_message(keys, signer_certs, cas.recipient, f"steps-{i}", i)
                for i in range(count)]
        recipients = [Credential(*ca.decrypter())]
        out = _begin_steps(msgs, lambda m: _decode(cms, attributes, m),
                           lambda s: s.included_signer(), cms.verify_signed,
                           lambda s: cms.open_envelope(s.content, recipients)[0], parse_csr)
        rest, asks = _rest_of_begin(
            [_message(keys, signer_certs, cas.recipient, f"steps-b{i}", i)
             for i in range(2 * count)], responder, recipients)
        out.append(("policy, the query (begin - parse_request)", rest))
        batches = [asks[i:i + 8] for i in range(0, len(asks), 8)]
        answers: list[Any] = []

        def decide(batch: list[Any]) -> None:
            with ca.deferred_durability():
                answers.extend(answer(ca, front.policy, a.query) for a in batch)

        out.append(("decide, sign the certificate, append (8 per commit)",
                    _cpu_us(decide, batches) / 8))
        certs = [x509.load_der_x509_certificate(a.certificate) for a in answers]
        out.append(("CertRep envelope (RSA public op, AES)", _cpu_us(
            lambda x: cms.envelope(cms.certs_only([x[1]]),
                                   recipient=x[0].request.signer_certificate,
                                   cipher=x[0].request.cipher, random_bytes=os.urandom),
            list(zip(asks, certs, strict=True)))))
        finish = _cpu_us(lambda x: responder.finish(*x), list(zip(asks, answers, strict=True)))
        out.append(("CertRep signature (RSA private op) and the rest", finish - out[-1][1]))
        key = ca.signer()[1]
        out.append(("(reference) one RSA-2048 private op", _cpu_us(
            lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
            [os.urandom(700) for _ in range(count)])))
        return out
    finally:
        ca.close()


def _begin_steps(msgs: list[bytes], decode: Any, find: Any, verify: Any, decrypt: Any,
                 check_csr: Any) -> list[tuple[str, float]]:
    """Thread CPU per message of each step of reading a request, run one message after
    another as the server runs them (each step timed alone in a loop of its own would
    cost less: caches stay warm)."""
    clock = time.thread_time
    spent = [0.0] * 5
    for message in msgs:
        t0 = clock()
        signed = decode(message)
        t1 = clock()
        signer = find(signed)
        t2 = clock()
        verify(signed, signer)
        t3 = clock()
        body = decrypt(signed)
        t4 = clock()
        check_csr(body)
        t5 = clock()
        for i, (a, b) in enumerate(itertools.pairwise((t0, t1, t2, t3, t4, t5))):
            spent[i] += b - a
    labels = ["pkiMessage decode (SignedData, attributes)",
              "signer certificate (found, read completely)", "signature check (RSA public op)",
              "decrypt (RSA private op, AES)", "CSR checks (parse, proof of possession)"]
    return [(label, us * 1e6 / len(msgs)) for label, us in zip(labels, spent, strict=True)]


def _rest_of_begin(msgs: list[bytes], responder: Any, recipients: list[Credential],
                   ) -> tuple[float, list[Any]]:
    """What `begin` costs besides `parse_request` (thread CPU per message: the two run on
    alternate messages), and the Asks `begin` returned."""
    from engine.scep import parse_request

    clock = time.thread_time
    parse = begin = 0.0
    asks = []
    for i in range(0, len(msgs), 2):
        t0 = clock()
        parse_request(msgs[i], recipients=recipients)
        t1 = clock()
        asks.append(responder.begin(msgs[i + 1], "127.0.0.1"))
        t2 = clock()
        parse, begin = parse + t1 - t0, begin + t2 - t1
    return (begin - parse) * 2e6 / len(msgs), asks


def _decode(cms: Any, attributes: Any, message: bytes) -> Any:
    signed = cms.read_signed(message)
    attributes.read_common(signed)
    return signed


def _message(keys: list[rsa.RSAPrivateKey], signer_certs: list[x509.Certificate],
             recipient: x509.Certificate, label: str, i: int) -> bytes:
    key = keys[i % len(keys)]
    csr = build_csr(key, x509.Name.from_rfc4514_string(f"CN={label}.example.com,O=Example"),
                    challenge_password=CHALLENGE)
    params = RequestParameters(
        signer=Credential(signer_certs[i % len(keys)], key), recipient=recipient,
        transaction_id=f"STEPS{uuid.uuid4().hex}".upper(), sender_nonce=new_nonce(os.urandom),
        cipher=ContentCipher.AES_128_CBC, digest=DigestAlgorithm.SHA256)
    return build_pkcs_req(params, csr, random_bytes=os.urandom)


def report_steps(rows: list[tuple[str, float]], server_cpu_ms: float | None) -> None:
    print("\nwhere an enrollment's CPU goes (the in-process path step by step, "
          "thread CPU)")
    total = sum(us for label, us in rows if not label.startswith("("))
    for label, us in rows:
        print(f"  {label:<56}{us:>8.0f} us")
    print(f"  {'total in-process':<56}{total:>8.0f} us")
    if server_cpu_ms is not None:
        print(f"  {'HTTP, channel, decider loop (server CPU - in-process)':<56}"
              f"{server_cpu_ms * 1000 - total:>8.0f} us")


# -- the run ----------------------------------------------------------------------------------


def start_micromdm(work: Path, port: int) -> Server:
    pid = subprocess.run([str(PEERS / "scep-server.sh"), "start", str(work / "micromdm"),
                          str(port), CHALLENGE, "--", "-allowrenew", "0"],
                         capture_output=True, text=True, check=True).stdout.split()[-1]
    return Server("scepserver", port, int(pid), only="scepserver", relays=(int(pid),))


def main() -> int:
    if sys.argv[1:2] == ["--serve-pool"]:  # the pool variant, started by start_ours below
        return serve_pool(Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enrollments", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keys", type=int, default=16, help="size of the client key pool")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds per server; the median round is reported")
    parser.add_argument("--direct", action="store_true",
                        help="no socat relays in front of our server")
    parser.add_argument("--workers", type=int, default=None,
                        help="our worker processes (default: one per CPU; 1 = one process)")
    parser.add_argument("--compare", type=Path, metavar="TREE",
                        help="also serve from another checkout (e.g. the code before a change)")
    parser.add_argument("--pool", action="store_true",
                        help="also serve with a ProcessPoolExecutor instead of the workers")
    parser.add_argument("--also-workers", type=int, action="append", default=[], metavar="N",
                        help="also serve with `ca serve --workers N` (may be repeated)")
    parser.add_argument("--steps", action="store_true",
                        help="also time each step of an enrollment in-process")
    args = parser.parse_args()
    for tool in ("scepserver", "socat", "unshare"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (see {PEERS}/install.sh)", file=sys.stderr)
            return 2

    print(f"generating {args.keys} client keys (not timed) ...", flush=True)
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for _ in range(args.keys)]
    now = datetime.now(UTC)
    signer_certs = [build_self_signed_certificate(
        k, x509.Name.from_rfc4514_string(f"CN=bench-signer-{i}"),
        not_before=now - timedelta(hours=1), not_after=now + timedelta(days=1),
        serial_number=i + 1) for i, k in enumerate(keys)]

    with tempfile.TemporaryDirectory(prefix="scep-bench-") as tmp:
        work = Path(tmp)
        procs: list[subprocess.Popen[bytes]] = []
        servers: list[Server] = []
        theirs: Server | None = None
        step_rows: list[tuple[str, float]] | None = None
        try:
            variants: list[tuple[str, Path, list[str] | None]] = [("trustledger", REPO, None)]
            if args.compare is not None:
                variants.append(("before", args.compare.resolve(), None))
            if args.pool:
                variants.append(("pool", REPO, [sys.executable, str(Path(__file__).resolve()),
                                                "--serve-pool",
                                                str(args.workers or os.cpu_count() or 1)]))
            variants += [(f"workers {n}", REPO, None) for n in args.also_workers]
            for label, repo, serve in variants:
                port = free_port()
                relay = None if args.direct else free_port()
                workers = int(label.split()[1]) if label.startswith("workers ") \
                    else args.workers
                started = start_ours(work, port, relay, workers, repo=repo,
                                     label=label.replace(" ", "-"), serve=serve)
                procs += started
                servers.append(Server(label, relay or port, started[0].pid,
                                      relays=tuple(p.pid for p in started[1:])))
            theirs = start_micromdm(work, free_port())
            servers.append(theirs)
            for server in servers:
                wait_ready(server.port)
            rounds: dict[str, list[Result]] = {server.name: [] for server in servers}
            for _ in range(args.rounds):  # alternate, so load from elsewhere hits all
                for server in servers:
                    rounds[server.name].append(measure(server, keys, signer_certs, args))
            step_rows = steps(work, keys, signer_certs, args.enrollments) if args.steps \
                else None
        finally:
            if theirs is not None:
                subprocess.run(["kill", str(theirs.pid)], check=False)
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=10)
    status = report(rounds, args)
    if step_rows is not None:
        report_steps(step_rows, _median(rounds["trustledger"]).cpu_ms)
    return status


def report(rounds: dict[str, list[Result]], args: argparse.Namespace) -> int:
    for name, rs in rounds.items():
        print(f"{name:<12} rounds (issued/s): " + ", ".join(f"{r.issued:.1f}" for r in rs)
              + "; server CPU ms/enrollment: " + ", ".join(f"{r.cpu_ms:.2f}" for r in rs))
    results = {name: _median(rs) for name, rs in rounds.items()}
    paired = [o.issued / t.issued for o, t in zip(rounds["trustledger"], rounds["scepserver"],
                                                  strict=True)]
    print("ratio per round (trustledger/scepserver, issued/s): "
          + ", ".join(f"{x:.2f}" for x in paired)
          + f"; median {statistics.median(paired):.2f}")
    path = "direct" if args.direct else "via 2 socat relays (as scepserver)"
    print(f"\nSCEP PKCSReq enrollments, RSA-2048 CA, AES-128/SHA-256, {args.enrollments} "
          f"enrollments x {args.rounds} rounds (median shown), {args.concurrency} concurrent "
          f"clients, {os.cpu_count()} CPUs, trustledger "
          f"{'--workers ' + str(args.workers) if args.workers else 'default workers'}, {path}")
    print(f"{'server':<14}{'answers/s':>10}{'issued/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'CPU ms':>8}{'client':>8}{'relays':>8}{'SUCCESS':>10}{'wrong':>7}")
    for r in results.values():
        print(f"{r.name:<14}{r.rate:>10.1f}{r.issued:>10.1f}{r.p50_ms:>9.1f}"
              f"{r.p95_ms:>9.1f}{r.cpu_ms:>8.2f}{r.client_ms:>8.2f}{r.relay_ms:>8.2f}"
              f"{f'{r.ok}/{r.total}':>10}{r.wrong:>7}")
    print("(CPU ms per enrollment: the server's processes; the load generator (this "
          "process); the socat relays. SUCCESS: verified after the window; wrong: answers "
          "that do not verify or answer another request)")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ours, theirs = results["trustledger"], results["scepserver"]
    ratio = ours.issued / theirs.issued
    passed = ours.issued >= 1000 and ratio >= 2
    print(f"\n{'figure':<36}{'ours':>10}{'baseline':>10}{'ratio':>7}  {'target':<31}result")
    print(f"{'SCEP enrollments/s, ca serve':<36}{ours.issued:>10.1f}{theirs.issued:>10.1f}"
          f"{ratio:>7.2f}  {'>= 1,000/s and >= 2x micromdm':<31}"
          f"{'PASS' if passed else 'FAIL'}")
    print(f"{'  server CPU per enrollment (ms)':<36}{ours.cpu_ms:>10.2f}{theirs.cpu_ms:>10.2f}"
          f"{ours.cpu_ms / theirs.cpu_ms:>7.2f}")
    print(f"{'  issued per server CPU-second':<36}{1000 / ours.cpu_ms:>10.1f}"
          f"{1000 / theirs.cpu_ms:>10.1f}{theirs.cpu_ms / ours.cpu_ms:>7.2f}")
    print(f"{'  context switches per enrollment':<36}{ours.switches:>10.1f}"
          f"{theirs.switches:>10.1f}{ours.switches / max(theirs.switches, 0.1):>7.2f}")
    for name, r in results.items():  # where a server with workers spends its CPU
        if name != "scepserver" and r.cpu_ms - r.root_ms > 0.005:
            print(f"{'  ' + name + ': decider / workers (ms)':<36}{r.root_ms:>10.2f}"
                  f"{r.cpu_ms - r.root_ms:>10.2f}")
    for name, other in results.items():
        if name not in ("trustledger", "scepserver"):
            print(f"{'  trustledger vs ' + name:<36}{ours.issued:>10.1f}{other.issued:>10.1f}"
                  f"{ours.issued / other.issued:>7.2f}  (CPU ms {ours.cpu_ms:.2f} vs "
                  f"{other.cpu_ms:.2f})")
    if theirs.ok != theirs.total:
        print("note: scepserver 2.1.0 refuses some concurrent requests (its file depot's serial "
              "counter races: 'could not convert  to serial number' in its log)")
    status = 0
    for name, rs in rounds.items():
        if any(r.wrong for r in rs):
            print(f"FAILED: {name} gave {sum(r.wrong for r in rs)} wrong answers",
                  file=sys.stderr)
            status = 1
        if name != "scepserver" and any(r.ok != r.total for r in rs):
            print(f"FAILED: not every {name} enrollment succeeded", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
