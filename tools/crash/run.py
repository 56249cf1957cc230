"""Crash harness: SIGKILL `trustledger exec` and `trustledger ca serve` at random moments, reopen,
and check that nothing acknowledged was lost.

    python tools/crash/run.py --trials 1000 [--seed S] [--keep DIR] [-v]

One trial runs, at the same time and each in its own process group:

- the device: `trustledger exec` on a fresh data directory, a long script of rounds
  `configure / hostname hN / commit / end / crypto key generate rsa general-keys kN / 1024 /
  crypto key zeroize rsa kN-1 / yes`, killed (SIGKILL) at a random moment;
- the CA: `trustledger ca serve` (odd trials `--workers 1`, even ones `--workers 2`: the
  decider and two CMS worker processes, all killed) on a copy of a CA directory made once (the
  template), under the load of two micromdm `scepclient` loops (1024-bit keys, alternately
  through /cgi-bin/pkiclient.exe and /scep), killed at a random moment after it is ready.

What counts as acknowledged: a device command is acknowledged when the process printed the
echo of the next script line (the batch echoes a line only after the previous one returned,
i.e. after its events were appended and fdatasync'ed) and its own output says it succeeded (a
commit: the next prompt shows the new hostname; a key generation: `[OK]`; a zeroize: no `%`
line). A certificate is acknowledged when scepclient exited 0 with the certificate written.

Then both directories are reopened read-write (as the next `trustledger` run would, which
repairs a torn tail), and `trustledger log verify` must pass on both logs. A trial is
*unopenable* if a reopen or a verify fails; every acknowledged command or certificate missing
from the reopened log, and every serial issued twice, counts as *lost*. The kill moments come
from the seed (printed first); the processes' own timing does not, so a rerun with the same seed
kills at the same moments, not necessarily at the same instructions.

The last line is `N trials, L lost, U unopenable`; the exit status is 1 if L or U is not 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402

from engine.ca.service import BuiltinCA  # noqa: E402
from engine.cli import main as trustledger_main  # noqa: E402
from engine.engine import Engine  # noqa: E402
from events.filelog import FileEventLog  # noqa: E402

CHALLENGE = "crash-harness-secret"
ROUNDS = 200  # more than a process gets through before it is killed
DEVICE_KILL_WINDOW = (0.0, 0.8)  # seconds after the exec process printed its first prompt
CA_KILL_WINDOW = (0.0, 0.7)  # seconds after ca serve says it is ready
CLIENTS = 2
PROMPT = re.compile(r"^RP/0/RP0/CPU0:([^(#]+)(\([^)]*\))?#(.*)$")


@dataclass
class Report:
    lost: list[str] = field(default_factory=list)
    unopenable: list[str] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)
    repaired: int = 0

    def count(self, what: str, n: int = 1) -> None:
        self.acked[what] = self.acked.get(what, 0) + n


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def trustledger(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *map(str, args)]


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


# -- the device ----------------------------------------------------------------------------------


def device_script() -> str:
    lines = []
    for n in range(1, ROUNDS + 1):
        lines += ["configure", f"hostname h{n}", "commit", "end",
                  f"crypto key generate rsa general-keys k{n}", "1024"]
        if n > 1:  # "yes" answers a confirmation if zeroize asks one, else is refused
            lines += [f"crypto key zeroize rsa k{n - 1}", "yes"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Acked:
    hostnames: frozenset[str]
    generated: frozenset[str]
    zeroized: frozenset[str]


def device_acknowledged(stdout: str, finished: bool) -> Acked:
    """What the transcript proves was done: each command echo closed by a later echo."""
    echoes: list[tuple[str, str, list[str]]] = []  # (hostname in the prompt, line, output)
    for line in stdout.split("\n"):
        m = PROMPT.match(line)
        if m:
            echoes.append((m.group(1), m.group(3), []))
        elif echoes:
            echoes[-1][2].append(line)
    closed = echoes if finished else echoes[:-1]
    hostnames, generated, zeroized = set(), set(), set()
    typed_hostname = None
    for i, (_, line, out) in enumerate(closed):
        words = line.split()
        if words[:1] == ["hostname"]:
            typed_hostname = words[1]
        elif line == "commit" and typed_hostname and i + 1 < len(echoes):
            if echoes[i + 1][0] == typed_hostname:
                hostnames.add(typed_hostname)
        elif words[:4] == ["crypto", "key", "generate", "rsa"] and "[OK]" in out:
            generated.add(words[-1])
        elif words[:3] == ["crypto", "key", "zeroize"] and zeroize_done(out):
            zeroized.add(words[-1])
    return Acked(frozenset(hostnames), frozenset(generated), frozenset(zeroized))


def zeroize_done(out: list[str]) -> bool:
    """The zeroize warns (`% The RSA keys named ... will be removed.`), asks, and prints nothing
    when it is done: it was done if the question was answered yes and no `%` error followed."""
    for i, line in enumerate(out):
        if line.startswith("Do you really want") and line.rstrip().endswith("yes"):
            return not any(o.startswith("%") for o in out[i + 1:])
    return False


def check_device(data: Path, acked: Acked, report: Report, trial: int) -> None:
    try:
        with Engine.open(data) as eng:  # read-write, as the next run would: repairs a tail
            report.repaired += eng.recovered is not None
    except Exception as e:  # whatever it is, the device does not open
        report.unopenable.append(f"trial {trial}: device does not open: "
                                 f"{type(e).__name__}: {e}")
        return
    if not verified(data, "device", report, trial):
        return
    hostnames, generated, zeroized = set(), set(), set()
    with FileEventLog.open(data / "log", readonly=True) as log:
        for r in log.read():
            if r.type == "ConfigurationCommitted":
                hostnames.update(c[2].split()[1] for c in r.payload["changes"]
                                 if tuple(c[0]) == ("hostname",) and c[2])
            elif r.type == "KeyPairGenerated":
                generated.add(r.payload["label"])
            elif r.type == "KeyPairZeroized":
                zeroized.add(r.payload["label"])
    for what, want, have in (("commit of hostname", acked.hostnames, hostnames),
                             ("key generation", acked.generated, generated),
                             ("zeroize", acked.zeroized, zeroized)):
        report.count(what, len(want))
        report.lost += [f"trial {trial}: device lost the acknowledged {what} {x}"
                        for x in sorted(want - have)]


def verified(root: Path, who: str, report: Report, trial: int) -> bool:
    """`trustledger log verify ROOT` (the CLI's own code, in this process) passes."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = trustledger_main(["log", "verify", str(root)])
    if status != 0:
        report.unopenable.append(f"trial {trial}: {who} log verify failed ({status}): "
                                 + out.getvalue().strip().replace("\n", " | "))
    return status == 0


# -- the CA --------------------------------------------------------------------------------------


@dataclass
class Load:
    """scepclient loops against a running CA; `issued` holds the serials scepclient received."""

    url: str
    work: Path
    tag: str
    stop: threading.Event = field(default_factory=threading.Event)
    issued: list[int] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for c in range(CLIENTS):
            t = threading.Thread(target=self._loop, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _loop(self, client: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            d = self.work / f"c{client}-{n}"
            d.mkdir()
            path = "/scep" if n % 2 else "/cgi-bin/pkiclient.exe"
            try:
                done = subprocess.run(
                    ["scepclient", "-server-url", self.url + path, "-challenge", CHALLENGE,
                     "-private-key", str(d / "key.pem"), "-certificate", str(d / "cert.pem"),
                     "-cn", f"{self.tag}-c{client}-{n}", "-keySize", "1024"],
                    capture_output=True, timeout=20, check=False)
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0 and (d / "cert.pem").exists():
                cert = x509.load_pem_x509_certificate((d / "cert.pem").read_bytes())
                self.issued.append(cert.serial_number)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def start_ca(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str | None]:
    proc = subprocess.Popen(trustledger("ca", "serve", root, "--port", "0", "--workers",
                                        str(workers), "--challenge", CHALLENGE),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(),
                            cwd=REPO, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for raw in proc.stdout or ():
            lines.put(raw.decode("utf-8", "replace"))

    threading.Thread(target=pump, daemon=True).start()
    url = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        m = re.search(r"listening on (http://\S+)", line)
        url = m.group(1) if m else url
        if url and line.lstrip().startswith("approval:"):
            return proc, url
    return proc, None


def check_ca(root: Path, issued: list[int], report: Report, trial: int) -> None:
    try:
        with BuiltinCA.open(root) as ca:  # read-write: repairs a torn tail
            have = {int(c.serial, 16) for c in ca.certificates()}
    except Exception as e:  # whatever it is, the CA does not open
        report.unopenable.append(f"trial {trial}: CA does not open: {type(e).__name__}: {e}")
        return
    if not verified(root, "CA", report, trial):
        return
    serials: list[str] = []
    with FileEventLog.open(root / "log", readonly=True) as log:
        serials = [r.payload["serial"] for r in log.read() if r.type == "CertificateIssued"]
    report.count("certificate", len(issued))
    report.lost += [f"trial {trial}: CA lost the acknowledged certificate serial {s:x}"
                    for s in issued if s not in have]
    report.lost += [f"trial {trial}: CA issued serial {s} more than once"
                    for s in sorted({s for s in serials if serials.count(s) > 1})]


# -- one trial -----------------------------------------------------------------------------------


class Transcript:
    """The device's stdout as it comes; `started` is set at its first prompt."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.chunks: list[bytes] = []
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self.thread.start()

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            self.chunks.append(chunk)
            self.started.set()
        self.started.set()

    def text(self) -> str:
        self.thread.join(timeout=30)
        return b"".join(self.chunks).decode("utf-8", "replace")


def trial(n: int, seed: int, work: Path, template: Path, report: Report,
          verbose: bool) -> None:
    rng = random.Random(f"{seed}:{n}")
    device_kill = rng.uniform(*DEVICE_KILL_WINDOW)
    ca_kill = rng.uniform(*CA_KILL_WINDOW)
    here = work / f"t{n}"
    here.mkdir()
    script = here / "script.txt"
    script.write_text(device_script())
    ca_root = here / "ca"
    shutil.copytree(template, ca_root)
    dev = subprocess.Popen(trustledger("exec", "--data", here / "device", "-f", script,
                                       "--continue"),
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env(),
                           cwd=REPO, start_new_session=True)
    transcript = Transcript(dev)
    workers = 1 if n % 2 else 2  # one process, or a decider and two CMS workers
    ca, url = start_ca(ca_root, workers)
    load = None
    if url is None:
        report.unopenable.append(f"trial {n}: ca serve did not start")
    else:
        (here / "load").mkdir()
        load = Load(url, here / "load", f"t{n}")
        load.start()
    ca_at = time.monotonic() + ca_kill
    transcript.started.wait(timeout=30)
    dev_at = time.monotonic() + device_kill
    for at, proc in sorted([(dev_at, dev), (ca_at, ca)], key=lambda k: k[0]):
        time.sleep(max(0.0, at - time.monotonic()))
        kill_group(proc)
    ca.wait()
    dev.wait()
    if load is not None:
        load.finish()
    acked = device_acknowledged(transcript.text(), dev.returncode == 0)
    check_device(here / "device", acked, report, n)
    if load is not None:
        check_ca(ca_root, load.issued, report, n)
    if verbose:
        print(f"trial {n}: device killed {device_kill:.2f}s after its first prompt "
              f"({len(acked.hostnames)} commits acknowledged), CA ({workers} worker(s)) "
              f"{ca_kill:.2f}s after ready "
              f"({len(load.issued) if load else 0} certificates)", flush=True)


@contextlib.contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="trustledger-crash-") as d:
        yield Path(d)


def make_template(work: Path) -> Path:
    template = work / "ca-template"
    done = subprocess.run(trustledger("ca", "init", template, "--key", "rsa:2048"),
                          capture_output=True, env=env(), cwd=REPO, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ca init failed: {done.stderr.decode(errors='replace')}")
    return template


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=None, help="default: from the clock")
    p.add_argument("--keep", type=Path, default=None,
                   help="keep the trials' directories here (default: a temporary directory)")
    p.add_argument("--keep-failed", action="store_true",
                   help="with --keep: keep only the directories of failed trials")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if shutil.which("scepclient") is None:
        print("scepclient (Debian package scep) is not installed: tools/install-peers.sh",
              file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(time.time())
    print(f"seed {seed} (repeat: python tools/crash/run.py --trials {args.trials} "
          f"--seed {seed})", flush=True)
    report = Report()
    with workdir(args.keep) as work:
        template = make_template(work)
        for n in range(1, args.trials + 1):
            before = len(report.lost) + len(report.unopenable)
            trial(n, seed, work, template, report, args.verbose)
            for line in (report.lost + report.unopenable)[before:]:
                print(line, flush=True)
            if not args.keep or (args.keep_failed
                                 and len(report.lost) + len(report.unopenable) == before):
                shutil.rmtree(work / f"t{n}", ignore_errors=True)
    acked = ", ".join(f"{v} {k}" for k, v in report.acked.items())
    print(f"acknowledged: {acked}; torn device tails repaired on reopen: "
          f"{report.repaired}")
    lost = len(report.lost)
    unopenable = len({line.split(":")[0] for line in report.unopenable})
    print(f"{args.trials} trials, {lost} lost, {unopenable} unopenable")
    return 1 if lost or unopenable else 0


if __name__ == "__main__":
    raise SystemExit(main())
