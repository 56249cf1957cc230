"""Regenerate the micromdm SCEP vectors in this directory (run once, by hand).

    python tests/vectors/scep/capture_micromdm.py

Starts micromdm's ``scepserver`` on loopback through ``/work/shared/peers/scep-server.sh``,
puts a tiny recording HTTP proxy (127.0.0.1, ephemeral port) in front of it, and runs
micromdm's ``scepclient`` through the proxy three times:

1. a fresh enrollment (PKCSReq, right challenge)          -> SUCCESS
2. the same identity again, now holding a certificate      -> RenewalReq -> SUCCESS
3. a fresh identity with a wrong challenge                 -> FAILURE badRequest

Every HTTP body that crossed the proxy is written next to this file under a name that says what
it is, together with the keys needed to open the envelopes (CA key, client keys) as unencrypted
PKCS#8 PEM and a ``micromdm.json`` manifest. Vectors are fixtures: the tests never rerun this.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("TRUSTLEDGER_PEERS", "/work/shared/peers"))
CHALLENGE = "secret123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.exchanges: list[dict[str, object]] = []
        self.lock = threading.Lock()


def make_handler(rec: Recorder) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self, method: str) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length else b""
            conn = http.client.HTTPConnection("127.0.0.1", rec.upstream_port, timeout=30)
            headers = {"Content-Type": self.headers.get("Content-Type", "")} if body else {}
            conn.request(method, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "")
            conn.close()
            with rec.lock:
                rec.exchanges.append({
                    "method": method, "path": self.path, "request": body,
                    "status": resp.status, "content_type": ctype, "response": data,
                })
            self.send_response(resp.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._relay("GET")

        def do_POST(self) -> None:
            self._relay("POST")

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def wait_ready(port: int) -> None:
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/scep?operation=GetCACaps")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("scepserver did not come up")


def run_client(proxy_port: int, keydir: Path, cn: str, challenge: str) -> int:
    keydir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["scepclient", "-server-url", f"http://127.0.0.1:{proxy_port}/scep",
         "-challenge", challenge, "-private-key", str(keydir / "client.key"),
         "-certificate", str(keydir / "client.pem"), "-cn", cn, "-organization", "Example",
         "-ou", "NET", "-country", "US", "-keySize", "2048"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    print(f"scepclient {cn} rc={proc.returncode}: {proc.stdout.strip()} {proc.stderr.strip()}")
    return proc.returncode


def pkcs8(path: Path, password: bytes | None) -> bytes:
    pem = path.read_bytes()
    if password is not None:  # cryptography refuses an empty PEM password; openssl does not
        pem = subprocess.run(
            ["openssl", "pkey", "-in", str(path), "-passin", "pass:" + password.decode()],
            capture_output=True, check=True,
        ).stdout
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pki_ops(rec: Recorder, since: int) -> list[dict[str, object]]:
    return [e for e in rec.exchanges[since:] if "PKIOperation" in str(e["path"])]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="scepcap."))
    scep_port, proxy_port = free_port(), free_port()
    server = subprocess.Popen(
        [str(PEERS / "scep-server.sh"), "run", str(work / "srv"), str(scep_port), CHALLENGE,
         "--", "-allowrenew", "0"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    rec = Recorder(scep_port)
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", proxy_port), make_handler(rec))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        wait_ready(scep_port)
        out: dict[str, bytes] = {}
        n = len(rec.exchanges)
        assert run_client(proxy_port, work / "c1", "router1.example.com", CHALLENGE) == 0
        caps = next(e for e in rec.exchanges[n:] if "GetCACaps" in str(e["path"]))
        cacert = next(e for e in rec.exchanges[n:] if "GetCACert" in str(e["path"]))
        out["getcacaps_micromdm.txt"] = bytes(caps["response"])  # type: ignore[arg-type]
        out["getcacert_micromdm.der"] = bytes(cacert["response"])  # type: ignore[arg-type]
        (op,) = pki_ops(rec, n)
        out["pkcsreq_des_sha1_micromdm.der"] = op["request"]  # type: ignore[assignment]
        out["certrep_success_micromdm.der"] = op["response"]  # type: ignore[assignment]
        shutil.copy(work / "c1" / "client.key", work / "c1.key")
        out["issued_router1_micromdm.pem"] = (work / "c1" / "client.pem").read_bytes()

        n = len(rec.exchanges)
        assert run_client(proxy_port, work / "c1", "router1.example.com", CHALLENGE) == 0
        (op,) = pki_ops(rec, n)
        out["renewalreq_des_sha1_micromdm.der"] = op["request"]  # type: ignore[assignment]
        out["certrep_renewal_success_micromdm.der"] = op["response"]  # type: ignore[assignment]

        n = len(rec.exchanges)
        assert run_client(proxy_port, work / "c2", "router2.example.com", "wrong-pw") != 0
        (op,) = pki_ops(rec, n)
        out["pkcsreq_wrong_challenge_micromdm.der"] = op["request"]  # type: ignore[assignment]
        out["certrep_failure_badrequest_micromdm.der"] = op["response"]  # type: ignore[assignment]

        for name, data in out.items():
            (HERE / name).write_bytes(data)
        depot = work / "srv" / "depot"
        (HERE / "micromdm_ca.pem").write_bytes((depot / "ca.pem").read_bytes())
        (HERE / "micromdm_ca.key.pem").write_bytes(pkcs8(depot / "ca.key", b""))
        (HERE / "micromdm_client1.key.pem").write_bytes(pkcs8(work / "c1.key", None))
        (HERE / "micromdm_client2.key.pem").write_bytes(pkcs8(work / "c2" / "client.key", None))
        manifest = {
            "peer": "micromdm scep 2.1.0 (Debian package scep), scepserver + scepclient",
            "challenge": CHALLENGE,
            "wrong_challenge": "wrong-pw",
            "client1_subject": "C=US, O=Example, OU=NET, CN=router1.example.com",
            "client2_subject": "C=US, O=Example, OU=NET, CN=router2.example.com",
            "files": sorted([*out, "micromdm_ca.pem", "micromdm_ca.key.pem",
                             "micromdm_client1.key.pem", "micromdm_client2.key.pem"]),
        }
        (HERE / "micromdm.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print("wrote", len(manifest["files"]), "files to", HERE)
    finally:
        proxy.shutdown()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
