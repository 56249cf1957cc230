"""Run `python -m engine.ca.cli` as the operator would: init, serve (a subprocess on a free
loopback port), and the other commands."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str | Path, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "engine.ca.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
                          check=False, input=stdin)
    if check and done.returncode != 0:
        raise AssertionError(f"ca {args} failed ({done.returncode}): {done.stderr}")
    return done


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[str]
    banner: str  # what `ca serve` printed up to its last banner line

    @property
    def scep_url(self) -> str:
        return self.url + "/scep"


@contextmanager
def served(root: Path, *args: str) -> Iterator[Served]:
    """`ca serve ROOT --port 0 ARGS` until the block ends (SIGTERM, then wait)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "engine.ca.cli", "serve", str(root),
                             "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            start_new_session=True)
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    # Drain the server's output for its whole life (a full pipe would block it).
    def pump() -> None:
        for ln in proc.stdout or ():
            lines.put(ln)

    drain = threading.Thread(target=pump, daemon=True)
    drain.start()
    deadline = time.monotonic() + 30
    url = None
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1)
        if url is not None and line.lstrip().startswith("approval:"):
            break
    if url is None:
        proc.kill()
        proc.wait()
        raise AssertionError("ca serve did not start:\n" + "".join(seen))
    try:
        yield Served(url, proc, "".join(seen))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        drain.join(timeout=5)
