"""What the cells share: a per-cell workspace that owns every process it starts, our CA and
micromdm's scepserver behind recording proxies, `openssl verify`, and the checks of what our CA
answered.

Processes are started in their own session (`start_new_session`) and stopped when the
workspace closes: SIGTERM, then SIGKILL to that process group if the leader has not gone
within a few seconds (only while it is alive and unreaped, so the group id is surely ours).
scep-server.sh's supervisor gets SIGTERM first and time to stop its relays and netns (a KILL
would leave them behind).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from asn1crypto import cms, pem
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tools.interop.proxy import FAIL_INFO_TEXT, RecordingProxy, Signed

REPO = Path(__file__).resolve().parents[2]
CHALLENGE = "interop-secret"


class Failed(Exception):
    """Our side did something RFC 8894 (or the operator) would not accept."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PeerFault(Exception):
    """The peer is at fault (its bug named), and our side was checked to answer correctly."""

    def __init__(self, detail: str, bug: str) -> None:
        super().__init__(f"{detail} [peer bug: {bug}]")
        self.detail = detail
        self.bug = bug


def expect(condition: object, detail: str) -> None:
    if not condition:
        raise Failed(detail)


def peers_dir() -> Path:
    """../shared/peers beside the checkout (CI puts a read-only copy there), or
    $TRUSTLEDGER_PEERS."""
    env = os.environ.get("TRUSTLEDGER_PEERS")
    where = Path(env) if env else REPO.parent / "shared" / "peers"
    if not (where / "scep-server.sh").is_file():
        raise RuntimeError(f"peer scripts not found in {where} (set TRUSTLEDGER_PEERS)")
    return where


def need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        raise RuntimeError(f"not installed: {' '.join(missing)} (run tools/install-peers.sh)")


def last_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


# -- the workspace ---------------------------------------------------------------------------


class Workspace:
    """One cell's temporary directory and processes (a context manager that stops them)."""

    def __init__(self, root: Path, *, keep: bool = False) -> None:
        self.root = root
        self.keep = keep
        self._stack = ExitStack()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._stack.close()
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def path(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    # -- processes ---------------------------------------------------------------------------

    def run(self, args: list[str], *, timeout: float = 60, env: dict[str, str] | None = None,
            cwd: Path | None = None, stdin: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run to completion (its whole process group is killed on timeout)."""
        proc = subprocess.Popen(args, stdin=subprocess.PIPE if stdin is not None else
                                subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise TimeoutError(f"{Path(args[0]).name} did not finish within {timeout:g} s"
                               ) from None
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def start(self, args: list[str], log: Path, *, env: dict[str, str] | None = None,
              grace: float = 10, stdout: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a background process (output to `log`; standard output alone to `stdout` if
        given), stopped when the workspace closes."""
        err = log.open("ab")
        out = stdout.open("wb") if stdout is not None else None
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out or err,
                                stderr=err if out else subprocess.STDOUT, env=env,
                                start_new_session=True)
        err.close()
        if out is not None:
            out.close()
        self._stack.callback(_stop, proc, grace)
        return proc

    def trustledger(self, *args: str | Path, timeout: float = 60,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`trustledger ARGS` from this checkout."""
        return self.run([sys.executable, "-m", "engine.cli", *map(str, args)],
                        timeout=timeout, env={**os.environ, **_pythonpath(), **(env or {})})

    def proxy(self, upstream: str, *, get_only: bool = False,
              caps: tuple[str, ...] | None = None) -> RecordingProxy:
        p = RecordingProxy(upstream, get_only=get_only, caps=caps)
        self._stack.callback(p.close)
        return p

    # -- servers -----------------------------------------------------------------------------

    def our_ca(self, *, ra: bool = False, approval: str = "auto", strict: bool = False,
               challenge: str | None = CHALLENGE, name: str = "ca", rollover: bool = False,
               ) -> OurCA:
        """`trustledger ca init` (+ `ca rollover`: a next CA certificate, DIR/ca-2.pem, offered
        by GetNextCACert) + `ca serve` on a free loopback port, behind a proxy."""
        root = self.root / name
        subject = f"CN=Interop {'RA ' if ra else ''}CA,O=Example"
        done = self.trustledger("ca", "init", root, "--subject", subject,
                                *(["--ra"] if ra else []))
        expect(done.returncode == 0, f"ca init failed: {last_lines(done.stderr)}")
        if rollover:
            done = self.trustledger("ca", "rollover", root)
            expect(done.returncode == 0, f"ca rollover failed: {last_lines(done.stderr)}")
        log = self.root / f"{name}-serve.log"
        env = {**os.environ, **_pythonpath()}
        if challenge is not None:
            env["TRUSTLEDGER_CA_CHALLENGE"] = challenge
        proc = self.start([sys.executable, "-m", "engine.cli", "ca", "serve", str(root),
                           "--port", "0", "--workers", "1", "--approval", approval,
                           *(["--strict"] if strict else [])], log, env=env)
        url = _wait_for_banner(proc, log)
        return OurCA(self, root, url, self.proxy(url))

    def scepserver(self, *, challenge: str = CHALLENGE, flags: tuple[str, ...] = (),
                   get_only: bool = False, caps: tuple[str, ...] | None = None) -> PeerCA:
        """micromdm's scepserver (../shared/peers/scep-server.sh) on a free port, behind a
        proxy (`get_only`: its caps without POSTPKIOperation; `caps`: the proxy answers
        GetCACaps with these keywords instead)."""
        need("scepserver", "socat", "unshare")
        work = self.path("mdm")
        for attempt in range(3):  # the free port may be taken by someone else meanwhile
            port = free_port()
            proc = self.start([str(peers_dir() / "scep-server.sh"), "run", str(work),
                               str(port), challenge, "--", *flags],
                              self.root / "scep-server.out", grace=15)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while not _answers(f"{url}/scep"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                return PeerCA(work, self.proxy(url, get_only=get_only, caps=caps))
            if proc.poll() is None or attempt == 2:
                break
        log = work / "scepserver.log"
        raise RuntimeError("micromdm scepserver did not start: " + last_lines(
            log.read_text(errors="replace") if log.exists() else "", 3))


@dataclass
class OurCA:
    ws: Workspace
    dir: Path
    direct: str  # http://127.0.0.1:PORT of `ca serve` itself (the CDP points here)
    proxy: RecordingProxy

    @property
    def scep_url(self) -> str:
        return f"{self.proxy.url}/scep"

    @property
    def ca_pem(self) -> Path:
        return self.dir / "ca.pem"

    def next_ca_pem(self) -> bytes:
        """GetNextCACert through the proxy (RFC 8894 §4.7: a SignedData, signed by the current
        CA, over a certificates-only SignedData with the next CA certificate): that one
        certificate, PEM (the signature is not checked here). Read with asn1crypto,
        not engine/scep."""
        with urllib.request.urlopen(f"{self.scep_url}?operation=GetNextCACert",
                                    timeout=30) as answer:
            kind, body = answer.headers.get("Content-Type", ""), answer.read()
        expect(kind == "application/x-x509-next-ca-cert",
               f"GetNextCACert answered Content-Type {kind!r}")
        signed = cms.ContentInfo.load(body)["content"]  # its certificates: the signer's
        inner = cms.ContentInfo.load(signed["encap_content_info"]["content"].native)
        certs = inner["content"]["certificates"]  # §3.4 degenerate certificates-only
        expect(len(certs) == 1, f"GetNextCACert carried {len(certs)} certificates, expected 1")
        return pem.armor("CERTIFICATE", certs[0].chosen.dump())

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`trustledger ca COMMAND DIR ARGS` (through the running server's admin endpoint)."""
        command, *rest = args
        done = self.ws.trustledger("ca", command, self.dir, *rest)
        expect(done.returncode == 0, f"ca {command} failed: {last_lines(done.stderr)}")
        return done

    def pending(self, subject_part: str, timeout: float = 30) -> str:
        """The transaction ID of the pending request whose subject contains `subject_part`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            refused = [r for r in self.proxy.replies() if r.pki_status == "FAILURE"]
            if refused:
                raise Failed(f"our CA answered FAILURE {refused[0].fail_info} instead of "
                             f"PENDING ({self.proxy.summary()})")
            for line in self.admin("requests").stdout.splitlines():
                if subject_part in line and " pending " in line:
                    # logged before it is answered: let the answer reach the proxy's record
                    expect(self.proxy.settle(max(0.0, deadline - time.monotonic())),
                           f"the proxy is still relaying a request ({self.proxy.summary()})")
                    return line.split()[0]
            time.sleep(0.2)
        raise Failed(f"no pending request for {subject_part} after {timeout:g} s "
                     f"({self.proxy.summary()})")

    def answered(self, status: str, fail_info: str = "") -> Signed:
        """Check our CA's answers: no HTTP 5xx at all, and the last CertRep has `status` (and
        `fail_info`); a failure text, if any, under RFC 8894's id-scep-failInfoText."""
        for x in self.proxy.server_errors():
            raise Failed(f"our CA answered HTTP {x.status} to {x.method} {x.operation} "
                         f"({self.proxy.summary()})")
        replies = self.proxy.replies()
        expect(replies, f"our CA sent no CertRep ({self.proxy.summary()})")
        last = replies[-1]
        got = last.pki_status + (f" {last.fail_info}" if last.fail_info else "")
        want = status + (f" {fail_info}" if fail_info else "")
        expect(got == want, f"our CA answered {got or last.error}, expected {want} "
                            f"({self.proxy.summary()})")
        if last.fail_info_text:
            expect(last.text_oid == FAIL_INFO_TEXT,
                   f"our CA answered {got} as it should, but sent its failure text under "
                   f"{last.text_oid}; RFC 8894 §3.2.1.4 defines id-scep-failInfoText as "
                   f"{FAIL_INFO_TEXT}")
        return last

    def message_types(self) -> list[str]:
        return [x.request.message_type for x in self.proxy.operations() if x.request]


@dataclass
class PeerCA:
    work: Path  # scep-server.sh's DIR: depot/ca.pem, depot/index.txt, scepserver.log
    proxy: RecordingProxy

    @property
    def scep_url(self) -> str:
        return f"{self.proxy.url}/scep"

    @property
    def ca_pem(self) -> Path:
        return self.work / "depot" / "ca.pem"

    def log_errors(self) -> list[str]:
        """What scepserver logged as why it refused (`err="..."` of "failed to sign CSR")."""
        text = (self.work / "scepserver.log").read_text(errors="replace")
        return re.findall(r'msg="failed to sign CSR" err="([^"]*)"', text)


# -- certificates ----------------------------------------------------------------------------


def openssl_verify(ws: Workspace, ca_pem: Path, cert: Path | bytes) -> str:
    """`openssl verify -CAfile CA CERT` must say OK; returns a short note for the detail."""
    if isinstance(cert, bytes):
        path = ws.root / f"issued-{len(list(ws.root.glob('issued-*')))}.pem"
        path.write_bytes(x509.load_der_x509_certificate(cert).public_bytes(
            serialization.Encoding.PEM))
        cert = path
    expect(cert.is_file() and cert.stat().st_size > 0, f"no certificate written to {cert.name}")
    done = ws.run(["openssl", "verify", "-CAfile", str(ca_pem), str(cert)])
    expect(done.returncode == 0 and done.stdout.strip().endswith(": OK"),
           f"openssl verify -CAfile failed: {last_lines(done.stdout + done.stderr)}")
    return "openssl verify OK"


def expect_dns_name(cert: Path, name: str) -> str:
    """The certificate carries the subjectAltName dNSName the peer asked for."""
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    try:
        names = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    expect(name in dns, f"the certificate's subjectAltName has DNS {dns}, requested {name}")
    return f"SAN DNS:{name}"


def subject_of(cert: Path | bytes) -> str:
    data = cert.read_bytes() if isinstance(cert, Path) else cert
    c = (x509.load_pem_x509_certificate(data) if data.startswith(b"-----")
         else x509.load_der_x509_certificate(data))
    return c.subject.rfc4514_string()


# -- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pythonpath() -> dict[str, str]:
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(REPO) + (os.pathsep + old if old else "")}


def _answers(scep_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{scep_url}?operation=GetCACaps", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait_for_banner(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> str:
    """The URL `ca serve` printed, once its banner (ending with the `approval:` line) is out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        m = re.search(r"listening on (http://\S+)", text)
        if m and re.search(r"^\s*approval:", text, re.MULTILINE):
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"ca serve did not start: {last_lines(log.read_text(errors='replace'), 3)}")


def _kill_group(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(proc)  # the leader is alive (not reaped): its group id is still ours
            proc.wait()
