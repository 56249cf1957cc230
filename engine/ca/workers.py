"""The decider's side of `ca serve --workers N`: start, feed and supervise worker processes.

Theory of operation. One process, the decider, owns the CA: it holds the log's write lock and
is the only one that decides, evolves, appends (group commit) and signs certificates and CRLs.
It starts N workers (engine/ca/worker.py), each inheriting the ends of two AF_UNIX socket
pairs: the channel (engine/ca/channel.py) and the handoff. Workers serve HTTP and do the SCEP
crypto that needs no CA state; for the rest they send a query (engine/ca/queries.py) and the
decider answers it with `queries.answer`, exactly what the in-process server runs. The decider
serves each channel with a reader thread that hands queries to a thread pool, so concurrent
enrollments from all workers meet in `BuiltinCA` and share fdatasyncs as they do in one
process.

Connections: the decider owns the listening socket; a thread accepts and hands each connection
(its file descriptor, SCM_RIGHTS over the handoff pair) to the worker with the fewest open
connections (workers report each close on their channel). Workers sharing the listening socket
would each take whatever burst of connections they happen to wake for: SCEP clients keep their
connection for many requests, and we measured a 70/30 split of eight clients over two workers,
leaving one core half idle.

Supervision: a worker that exits while the pool runs is replaced (after a pause that grows
while replacements keep dying young). A worker whose channel closes stops at once, so if the
decider dies, nothing serves without the writer. `stop()` sends SIGTERM to every worker, waits
for them (SIGKILL after `STOP_TIMEOUT`) and reaps them.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization

import engine
from engine.ca.channel import Channel, ChannelClosed
from engine.ca.decide import Policy
from engine.ca.errors import CAError
from engine.ca.queries import BadFrame, answer, decode_query, encode_answer
from engine.ca.service import BuiltinCA
from engine.errors import Reason

log = structlog.get_logger("trustledger.ca.workers")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
SUPERVISE_INTERVAL = 0.1
DECIDER_THREADS = 16
HANDOFF_TIMEOUT = 10.0  # how long an accepted connection may wait for a worker to take it
_PACKAGE_ROOT = str(Path(engine.__file__).resolve().parents[1])


@dataclass
class _Worker:
    slot: int
    process: subprocess.Popen[bytes]
    channel: Channel
    handoff: socket.socket  # SOCK_SEQPACKET: one connection's descriptor per message
    started: float
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None
    connections: int = 0  # handed over and not yet reported closed

    def close(self) -> None:
        self.channel.close()
        self.handoff.close()


class WorkerPool:
    """N worker processes serving `ca` on `listen`; see the module docstring."""

    def __init__(self, ca: BuiltinCA, policy: Policy, listen: socket.socket, count: int, *,
                 strict: bool, signing_time_tolerance: timedelta) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.ca = ca
        self.policy = policy
        self.listen = listen
        self.count = count
        self._init = {
            "t": "init",
            "ca": ca.ca_certificate.public_bytes(serialization.Encoding.DER),
            "ra_signing": ca.state.ra_signing_certificate,
            "ra_encryption": ca.state.ra_encryption_certificate,
            "strict": strict, "tolerance": signing_time_tolerance.total_seconds()}
        self._executor = ThreadPoolExecutor(DECIDER_THREADS, thread_name_prefix="ca-decider")
        self._lock = threading.Lock()
        self._workers: dict[int, _Worker] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._acceptor: threading.Thread | None = None
        self._wakeup = socket.socketpair()  # wakes the acceptor at stop()
        self.restarts = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker and wait until each serves; CAError if one cannot start."""
        try:
            for slot in range(self.count):
                self._workers[slot] = self._spawn(slot)
            for worker in self._workers.values():
                self._await_ready(worker)
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="ca-supervisor",
                                            daemon=True)
        self._supervisor.start()
        self._acceptor = threading.Thread(target=self._accept, name="ca-acceptor", daemon=True)
        self._acceptor.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers.values()]

    def stop(self) -> None:
        """Stop the workers (SIGTERM, then SIGKILL after STOP_TIMEOUT) and reap them."""
        self._stopping.set()
        self._wakeup[1].send(b"x")
        for thread in (self._acceptor, self._supervisor):
            if thread is not None:
                thread.join(timeout=STOP_TIMEOUT)
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for w in workers:
            try:
                w.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("ca worker did not stop; killing it", pid=w.process.pid)
                w.process.kill()
                w.process.wait()
            w.close()
            if w.reader is not None:
                w.reader.join(timeout=STOP_TIMEOUT)
        self._executor.shutdown(wait=True, cancel_futures=True)
        for s in self._wakeup:
            s.close()

    # -- workers ------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        give, take = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.ca.worker", str(self.ca.root),
                 "--channel-fd", str(theirs.fileno()), "--handoff-fd", str(take.fileno())],
                pass_fds=(theirs.fileno(), take.fileno()), env=env, stdin=subprocess.DEVNULL)
        except OSError:
            ours.close()
            give.close()
            raise
        finally:
            theirs.close()
            take.close()
        give.settimeout(1.0)  # a worker that stops taking connections is skipped, not waited on
        worker = _Worker(slot, process, Channel(ours), give, time.monotonic())
        with contextlib.suppress(ChannelClosed):  # it died at once: _await_ready or the
            worker.channel.send(self._init)          # supervisor sees that
        worker.reader = threading.Thread(target=self._read, args=(worker,),
                                         name=f"ca-channel-{process.pid}", daemon=True)
        worker.reader.start()
        log.info("ca worker started", slot=slot, pid=process.pid)
        return worker

    def _await_ready(self, worker: _Worker) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not worker.ready.wait(0.05):
            status = worker.process.poll()
            if status is not None:
                raise CAError(Reason.NOT_ALLOWED, f"a worker process failed to start (exit "
                                                  f"status {status}); see its message above")
            if time.monotonic() > deadline:
                raise CAError(Reason.NOT_ALLOWED, f"a worker process did not start within "
                                                  f"{START_TIMEOUT:.0f} s")

    def _read(self, worker: _Worker) -> None:
        """Serve one worker's channel until it closes."""
        while True:
            try:
                message = worker.channel.receive()
            except ChannelClosed:
                return
            except BadFrame as e:
                log.error("ca worker sent garbage; dropping it", pid=worker.process.pid,
                          error=str(e))
                worker.process.kill()  # the supervisor replaces it
                return
            kind = message["t"]
            if kind == "ask":
                try:
                    self._executor.submit(self._answer, worker, message)
                except RuntimeError:  # shutting down
                    return
            elif kind == "closed":
                with self._lock:
                    worker.connections = max(0, worker.connections - 1)
            elif kind == "ready":
                worker.ready.set()
            else:
                log.error("ca worker sent an unexpected frame", pid=worker.process.pid,
                          kind=kind[:20])

    def _answer(self, worker: _Worker, message: dict[str, Any]) -> None:
        ident = message.get("id")
        try:
            reply: dict[str, Any] = {"t": "answer", "id": ident, "a": encode_answer(
                answer(self.ca, self.policy, decode_query(message.get("q"))))}
        except BadFrame as e:
            log.error("ca worker sent a bad query", pid=worker.process.pid, error=str(e))
            reply = {"t": "error", "id": ident, "message": "bad query"}
        except Exception:  # a bug (or the log refused the append): the worker answers 500
            log.exception("ca query failed", pid=worker.process.pid)
            reply = {"t": "error", "id": ident, "message": "internal error"}
        with contextlib.suppress(ChannelClosed):  # the worker is gone; its client sees the
            worker.channel.send(reply)               # connection close

    # -- supervision --------------------------------------------------------------------------

    def _supervise(self) -> None:
        failures: dict[int, int] = {}  # consecutive short-lived workers per slot
        while not self._stopping.wait(SUPERVISE_INTERVAL):
            with self._lock:
                dead = [w for w in self._workers.values() if w.process.poll() is not None]
            for w in dead:
                lived = time.monotonic() - w.started
                failures[w.slot] = failures.get(w.slot, 0) + 1 if lived < 2.0 else 0
                log.warning("ca worker exited; replacing it", pid=w.process.pid,
                            status=w.process.returncode, lived_s=round(lived, 2))
                w.close()
                pause = min(5.0, 0.1 * 2 ** failures[w.slot]) if failures[w.slot] else 0.0
                if self._stopping.wait(pause):
                    return
                try:
                    replacement = self._spawn(w.slot)
                except OSError as e:
                    log.error("cannot start a ca worker", error=str(e))
                    continue  # the dead one stays in its slot: retried next round
                with self._lock:
                    if self._stopping.is_set():
                        replacement.process.terminate()
                        replacement.process.wait()
                        replacement.close()
                        return
                    self._workers[w.slot] = replacement
                    self.restarts += 1

    # -- connections --------------------------------------------------------------------------

    def _accept(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.listen, selectors.EVENT_READ)
            sel.register(self._wakeup[0], selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not any(key.fileobj is self.listen for key, _ in sel.select()):
                    continue
                try:
                    conn, _ = self.listen.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                except OSError as e:  # e.g. EMFILE: the client will retry
                    log.warning("accept failed", error=str(e))
                    self._stopping.wait(0.05)
                    continue
                with conn:
                    self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        """Give `conn` to the ready worker with the fewest connections (waiting up to
        HANDOFF_TIMEOUT while none is ready, e.g. all being replaced); else drop it."""
        deadline = time.monotonic() + HANDOFF_TIMEOUT
        while not self._stopping.is_set():
            with self._lock:
                candidates = sorted((w for w in self._workers.values()
                                     if w.ready.is_set() and w.process.poll() is None),
                                    key=lambda w: w.connections)
            for w in candidates:
                try:
                    socket.send_fds(w.handoff, [b"c"], [conn.fileno()])
                except OSError:  # gone, or not taking connections: try the next one
                    continue
                with self._lock:
                    w.connections += 1
                return
            if time.monotonic() > deadline:
                log.warning("no worker took a connection; closing it")
                return
            self._stopping.wait(0.05)
