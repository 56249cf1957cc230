"""SCEP enrollment throughput: trustledger's built-in CA vs micromdm's scepserver, same run.

    python tools/bench/scep_bench.py [--enrollments 300] [--concurrency 8] [--keys 16]

Both servers run as separate processes on 127.0.0.1 with an RSA-2048 CA and a static
challenge: ours as `python -m engine.ca.cli serve --workers N` (default: one worker per CPU,
as `ca serve` itself; `--workers 1` is the single-process server), micromdm's through
/work/shared/peers/scep-server.sh (scepserver 2.1.0 inside a network namespace behind two socat
relays; `-allowrenew 0`). By default ours is put behind the same two-relay path (TCP -> unix
socket -> TCP) so both pay the same transport; `--direct` measures ours without it.

Before timing, each server's pkiMessages are built (PKCSReq, AES-128-CBC + SHA-256, a unique
CN and transactionID each; keys from a small pre-generated pool), so key generation and client
CMS work are not timed. `--concurrency` threads each keep one HTTP/1.1 connection and POST
PKIOperations from a shared queue; rounds alternate between the servers and the median
round of each is reported. Every CertRep is verified after the timed window
(parse_cert_rep: signature, nonces, decryption); a run with any non-SUCCESS is reported as
failed. Prints enrollments/s for each server and the ratio ours/scepserver.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, CPU seconds used) of `pid` from /proc, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(root: int, only: str | None = None) -> float:
    """CPU seconds used so far by `root` and its descendants (only those whose command
    name is `only`, if given)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats and (only is None or stats[pid][0] == only):
            total += stats[pid][2]
        todo += children.get(pid, [])
    return total


@dataclass
class Server:
    """A server under test: where it listens and whose CPU is its own."""

    name: str
    port: int
    pid: int
    only: str | None = None  # count only processes of this name under `pid`

    def cpu(self) -> float:
        return tree_cpu(self.pid, self.only)


@dataclass
class Prepared:
    der: bytes
    params: RequestParameters


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


def drive(port: int, messages: list[Prepared], concurrency: int,
          ) -> tuple[float, list[float], list[bytes | None]]:
    """POST every message; returns (seconds, latencies, answers by index)."""
    work: queue.Queue[int] = queue.Queue()
    for i in range(len(messages)):
        work.put(i)
    answers: list[bytes | None] = [None] * len(messages)
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            for attempt in range(2):
                try:
                    conn.request("POST", "/scep?operation=PKIOperation", body=messages[i].der,
                                 headers={"Content-Type": "application/x-pki-message"})
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()  # the relay or server closed an idle connection: reconnect
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    if attempt:
                        raise
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                answers[i] = data if resp.status == 200 else None
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, answers


def successes(messages: list[Prepared], answers: list[bytes | None],
              ca_signer: x509.Certificate) -> int:
    ok = 0
    for msg, answer in zip(messages, answers, strict=True):
        if answer is None:
            continue
        rep = parse_cert_rep(answer, signers=[ca_signer],
                             transaction_id=msg.params.transaction_id,
                             sender_nonce=msg.params.sender_nonce, recipient=msg.params.signer)
        if rep.status is PkiStatus.SUCCESS and rep.certificate_for(
                msg.params.signer.private_key.public_key()) is not None:  # type: ignore[arg-type]
            ok += 1
    return ok


@dataclass
class Result:
    name: str
    rate: float
    p50_ms: float
    p95_ms: float
    ok: int
    total: int
    cpu_ms: float  # server CPU per enrollment


def measure(server: Server, keys: list[rsa.RSAPrivateKey],
            signer_certs: list[x509.Certificate], args: argparse.Namespace) -> Result:
    name, port = server.name, server.port
    warm, _ = prepare(port, keys, args.warmup, f"{name}w", signer_certs)
    msgs, signer = prepare(port, keys, args.enrollments, name, signer_certs)
    drive(port, warm, args.concurrency)
    cpu0 = server.cpu()
    seconds, lat, answers = drive(port, msgs, args.concurrency)
    cpu = server.cpu() - cpu0
    ok = successes(msgs, answers, signer)
    lat.sort()
    return Result(name, len(msgs) / seconds, statistics.median(lat) * 1000,
                  lat[int(len(lat) * 0.95) - 1] * 1000, ok, len(msgs),
                  cpu * 1000 / len(msgs))


def _median(results: list[Result]) -> Result:
    """The round with the median throughput (its other figures come with it)."""
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


def start_ours(work: Path, port: int, relay_port: int | None, workers: int, *,
               repo: Path = REPO, label: str = "ours",
               serve: list[str] | None = None) -> list[subprocess.Popen[bytes]]:
    """`ca init` + `ca serve` of the tree at `repo` (`serve`: another command serving the
    CA directory, given as its last two arguments DIR PORT)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    ca = work / label
    subprocess.run([sys.executable, "-m", "engine.ca.cli", "init", str(ca), "--subject",
                    "CN=Bench CA,O=Example"], check=True, env=env, stdout=subprocess.DEVNULL,
                   cwd=repo)
    command = ([*serve, str(ca), str(port)] if serve is not None else
               [sys.executable, "-m", "engine.ca.cli", "serve", str(ca), "--port", str(port),
                "--challenge", CHALLENGE, "--workers", str(workers)])
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enrollments", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keys", type=int, default=16, help="size of the client key pool")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds per server; the median round is reported")
    parser.add_argument("--direct", action="store_true",
                        help="no socat relays in front of our server")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="our worker processes (default: one per CPU; 1 = one process)")
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
        ours_port, theirs_port = free_port(), free_port()
        relay_port = None if args.direct else free_port()
        ours = start_ours(work, ours_port, relay_port, args.workers)
        theirs = subprocess.run([str(PEERS / "scep-server.sh"), "start", str(work / "micromdm"),
                                 str(theirs_port), CHALLENGE, "--", "-allowrenew", "0"],
                                capture_output=True, text=True, check=True).stdout.split()[-1]
        try:
            ours_url_port = relay_port or ours_port
            wait_ready(ours_url_port)
            wait_ready(theirs_port)
            rounds: dict[str, list[Result]] = {"trustledger": [], "scepserver": []}
            for _ in range(args.rounds):  # alternate, so load from elsewhere hits both
                rounds["trustledger"].append(
                    measure("trustledger", ours_url_port, keys, signer_certs, args))
                rounds["scepserver"].append(
                    measure("scepserver", theirs_port, keys, signer_certs, args))
            results = [_median(rounds["trustledger"]), _median(rounds["scepserver"])]
            for name, rs in rounds.items():
                print(f"{name:<12} rounds (answers/s): "
                      + ", ".join(f"{r.rate:.1f}" for r in rs))
            paired = [o.rate / t.rate for o, t in zip(rounds["trustledger"],
                                                      rounds["scepserver"], strict=True)]
            print("ratio per round (trustledger/scepserver, answers/s): "
                  + ", ".join(f"{x:.2f}" for x in paired)
                  + f"; median {statistics.median(paired):.2f}")
        finally:
            subprocess.run(["kill", theirs], check=False)
            for p in ours:
                p.terminate()
            for p in ours:
                p.wait(timeout=10)

    path = "direct" if args.direct else "via 2 socat relays (as scepserver)"
    print(f"\nSCEP PKCSReq enrollments, RSA-2048 CA, AES-128/SHA-256, {args.enrollments} "
          f"enrollments x {args.rounds} rounds (median shown), {args.concurrency} concurrent "
          f"clients, {os.cpu_count()} CPUs, trustledger --workers {args.workers}")
    print(f"{'server':<14}{'answers/s':>10}{'issued/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'SUCCESS':>10}")
    for r in results:
        print(f"{r.name:<14}{r.rate:>10.1f}{r.rate * r.ok / r.total:>10.1f}{r.p50_ms:>9.1f}"
              f"{r.p95_ms:>9.1f}{f'{r.ok}/{r.total}':>10}")
    ours, theirs = results
    print(f"\nratio trustledger/scepserver: {ours.rate / theirs.rate:.2f} in answers/s, "
          f"{(ours.rate * ours.ok / ours.total) / (theirs.rate * theirs.ok / theirs.total):.2f}"
          f" in certificates issued/s  (trustledger {path})")
    if theirs.ok != theirs.total:
        print("note: scepserver 2.1.0 refuses some concurrent requests (its file depot's serial "
              "counter races: 'could not convert  to serial number' in its log)")
    if ours.ok != ours.total:
        print("FAILED: not every trustledger enrollment succeeded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
