"""The decider's side of `ca serve --workers N`: start, feed and supervise worker processes.

Theory of operation. One process, the decider, owns the CA: it holds the log's write lock and
is the only one that decides, evolves, appends and signs certificates and CRLs. It starts N
workers (engine/ca/worker.py), each inheriting the ends of two AF_UNIX socket pairs: the
channel (engine/ca/channel.py) and the handoff. Workers serve HTTP and do the SCEP crypto that
needs no CA state; for the rest they send a query (engine/ca/queries.py) and the decider
answers it with `queries.answer`, exactly what the in-process server runs.

The decider loop: one thread reads every channel under a selector. Whatever queries have
arrived when it wakes form a batch; it answers them one after another inside
`BuiltinCA.deferred_appends` (appends without waiting) and hands the batch to the replier
thread, which waits until the batch is durable (one fdatasync, shared by every batch
appended meanwhile: group commit) and only then sends the answers. The fdatasync runs without
the log's lock (events/groupcommit.py), so the decider decides the next batch while the disk
works instead of waiting for it. One thread does all the CA's SCEP work, so no thread waits
for the GIL behind another to learn that a query came.

Connections: the decider owns the listening socket; a thread accepts and hands each connection
(its file descriptor, SCM_RIGHTS over the handoff pair) to the worker with the fewest open
connections (workers report each close on their channel). Workers sharing the listening socket
would each take whatever burst of connections they happen to wake for: SCEP clients keep their
connection for many requests, and we measured a 70/30 split of eight clients over two workers,
leaving one core half idle.

Trust: the workers are not a security boundary. They run as the same user as the decider and
read DIR/ca.key (or the RA keys) themselves, so a compromised worker holds the CA key; the
split is for throughput and for keeping one writer of the log, not for privilege separation.
What the decider does not take on a worker's word: it decodes every frame as data (msgpack,
typed fields, `queries.decode_query`; a worker sending garbage is killed) and runs the same
pure rules as the one-process server on what a query carries (`decide_enrollment`: challenge
digest, one-time challenges, renewal signer current, unrevoked, same subject and
subjectAltNames and not renewed before, transactionID reuse, issuability; `_poll`: only the
requester's key or renewal signer may poll). What it does take on trust: that the worker
verified the pkiMessage and PKCS#10 signatures, decrypted the request, checked signingTime and
strict-mode algorithms, and that the signer certificate and challenge digest in a query are
the ones the peer sent. Run the CA under a dedicated user and keep DIR 0700.

Supervision: a worker that exits while the pool runs is replaced (after a pause that grows
while replacements keep dying young). A worker whose channel closes stops at once, so if the
decider dies, nothing serves without the writer. `stop()` stops accepting, sends SIGTERM to
every worker (each finishes the requests it holds, which the decider still answers), waits for
them (SIGKILL after `STOP_TIMEOUT`) and reaps them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization

import engine
from engine.ca.channel import UNAVAILABLE, Channel, ChannelClosed
from engine.ca.decide import Policy
from engine.ca.errors import CAError, CAUnavailable
from engine.ca.queries import BadFrame, answer, decode_query, encode_answer
from engine.ca.service import BuiltinCA
from engine.errors import Reason
from engine.ports import EngineClock

log = structlog.get_logger("trustledger.ca.workers")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 8.0  # > the workers' own drain time
SUPERVISE_INTERVAL = 0.1
HANDOFF_TIMEOUT = 10.0  # how long an accepted connection may wait for a worker to take it
_PACKAGE_ROOT = str(Path(engine.__file__).resolve().parents[1])


@dataclass(eq=False)
class _Worker:
    slot: int
    process: subprocess.Popen[bytes]
    channel: Channel
    handoff: socket.socket  # SOCK_SEQPACKET: one connection's descriptor per message
    started: float
    ready: threading.Event = field(default_factory=threading.Event)
    connections: int = 0  # handed over and not yet reported closed (under the pool's lock)
    handed: int = 0  # connections handed over in all
    retired: bool = False  # no longer in its slot: the decider loop closes its channel


_Replies = list[tuple[_Worker, dict[str, Any]]]
_Batch = tuple[int, _Replies, _Replies]  # (seq to wait for, the asks, their replies)


class _Wakeup:
    """A socket pair whose read end a selector watches; `wake` makes it readable."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already pending: enough
            self._writer.send(b"!")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):  # empty now: every wake-up byte read
            for _ in iter(lambda: self.reader.recv(4096), b""):
                continue

    def close(self) -> None:
        self.reader.close()
        self._writer.close()


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
            # `ca rollover`: the later CA certificates and their key files, oldest first
            "next_ca": [[g.certificate, g.key_file] for g in ca.state.generations[1:]],
            "strict": strict, "tolerance": signing_time_tolerance.total_seconds(),
            # `ca serve --clock`: the workers' clock (signingTime checks) is the CA's.
            "clock_offset_us": ca.clock.offset_us if isinstance(ca.clock, EngineClock) else 0}
        self._lock = threading.Lock()  # _workers, their connection counts and handoffs
        self._workers: dict[int, _Worker] = {}
        self._stopping = threading.Event()  # no new connections, no replacements
        self._deciding = threading.Event()  # cleared to end the decider loop
        self._decider_wakeup = _Wakeup()
        # batches decided and appended, waiting to be durable before their replies go out
        self._replies: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._acceptor_wakeup = _Wakeup()
        self._threads: dict[str, threading.Thread] = {}
        self.restarts = 0
        self.failed = threading.Event()  # set if the decider loop died (then nothing serves)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker and wait until each serves; CAError if one cannot start."""
        self._deciding.set()
        self._start_thread("decider", self._decide)
        try:
            with self._lock:
                for slot in range(self.count):
                    self._workers[slot] = self._spawn(slot)
            self._decider_wakeup.wake()
            for worker in list(self._workers.values()):
                self._await_ready(worker)
        except BaseException:
            self.stop()
            raise
        self._start_thread("supervisor", self._supervise)
        self._start_thread("acceptor", self._accept)

    def _start_thread(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=f"ca-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    def pids(self) -> list[int]:
        """The workers' process IDs, by slot."""
        with self._lock:
            return [self._workers[slot].process.pid for slot in sorted(self._workers)]

    def connections_handed(self) -> list[int]:
        """How many connections each current worker was given, by slot."""
        with self._lock:
            return [self._workers[slot].handed for slot in sorted(self._workers)]

    def stop(self) -> None:
        """Stop accepting, stop the workers (SIGTERM, SIGKILL after STOP_TIMEOUT), reap them,
        then end the decider loop."""
        self._stopping.set()
        self._acceptor_wakeup.wake()
        for name in ("acceptor", "supervisor"):
            if name in self._threads:
                self._threads[name].join(timeout=STOP_TIMEOUT)
        with self._lock:
            workers = list(self._workers.values())
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
        with self._lock:
            for w in self._workers.values():
                self._retire(w)
            self._workers.clear()
        self._deciding.clear()
        self._decider_wakeup.wake()
        if "decider" in self._threads:
            self._threads["decider"].join(timeout=STOP_TIMEOUT)
        self._decider_wakeup.close()
        self._acceptor_wakeup.close()

    # -- workers ------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> _Worker:
        """Start a worker for `slot` (call under the lock; wake the decider loop after)."""
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
        log.info("ca worker started", slot=slot, pid=process.pid)
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Take `worker` out of service (under the lock): no more connections; the decider
        loop closes its channel."""
        worker.retired = True
        worker.handoff.close()
        self._decider_wakeup.wake()

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

    # -- the decider loop ---------------------------------------------------------------------

    def _decide(self) -> None:
        registered: dict[_Worker, None] = {}
        replier = threading.Thread(target=self._reply, name="ca-replier", daemon=True)
        replier.start()
        with selectors.DefaultSelector() as sel:
            sel.register(self._decider_wakeup.reader, selectors.EVENT_READ)
            try:
                while self._deciding.is_set():
                    self._sync_registrations(sel, registered)
                    asks: list[tuple[_Worker, dict[str, Any]]] = []
                    for key, _ in sel.select():
                        if key.data is None:
                            self._decider_wakeup.drain()
                            continue
                        asks += self._read(key.data, sel, registered)
                    if asks:
                        self._answer_batch(asks)
            except Exception:  # a bug: without this loop nobody answers; stop serving
                log.exception("ca decider loop failed; stopping the workers")
                self._stopping.set()
                self.failed.set()
            finally:
                self._replies.put(None)  # the replier sends what it holds, then ends
                replier.join()
                for w in list(registered):
                    sel.unregister(w.channel)
                    w.channel.close()

    def _sync_registrations(self, sel: selectors.BaseSelector,
                            registered: dict[_Worker, None]) -> None:
        with self._lock:
            current = set(self._workers.values())
        for w in [w for w in registered if w.retired or w not in current]:
            sel.unregister(w.channel)
            w.channel.close()
            del registered[w]
        for w in current:
            if w not in registered and not w.retired and not w.channel.closed:
                sel.register(w.channel, selectors.EVENT_READ, w)
                registered[w] = None

    def _read(self, worker: _Worker, sel: selectors.BaseSelector,
              registered: dict[_Worker, None]) -> list[tuple[_Worker, dict[str, Any]]]:
        try:
            frames = worker.channel.read_frames()
        except (ChannelClosed, BadFrame) as e:
            if isinstance(e, BadFrame):
                log.error("ca worker sent garbage; stopping it", pid=worker.process.pid,
                          error=str(e))
                worker.process.kill()  # the supervisor replaces it
            sel.unregister(worker.channel)
            worker.channel.close()
            del registered[worker]
            return []
        asks = []
        for frame in frames:
            kind = frame["t"]
            if kind == "ask":
                asks.append((worker, frame))
            elif kind == "closed":
                with self._lock:
                    worker.connections = max(0, worker.connections - 1)
            elif kind == "ready":
                worker.ready.set()
            else:
                log.error("ca worker sent an unexpected frame", pid=worker.process.pid,
                          kind=kind[:20])
        return asks

    def _answer_batch(self, asks: list[tuple[_Worker, dict[str, Any]]]) -> None:
        """Answer `asks` in order and hand the replies to the replier, which sends them once
        what they appended is durable; meanwhile this thread decides the next batch."""
        seq = 0
        try:
            with self.ca.deferred_appends() as appended:
                replies = [(w, self._answer(w, frame)) for w, frame in asks]
            seq = appended.seq
        except CAUnavailable as e:  # the log could not be made durable: nothing was promised
            log.error("ca batch failed: the log cannot be made durable", queries=len(asks),
                      error=str(e.cause))
            replies = [(w, _unavailable(frame)) for w, frame in asks]
        except Exception:  # a bug
            log.exception("ca batch failed", queries=len(asks))
            replies = [(w, {"t": "error", "id": frame.get("id"), "message": "internal error"})
                       for w, frame in asks]
        self._replies.put((seq, asks, replies))

    def _reply(self) -> None:
        """The replier thread: for each batch in order, wait until it is durable (one
        fdatasync shared by every batch appended meanwhile: group commit), then send its
        replies; if it cannot be made durable, nothing was promised: answer unavailable."""
        while (item := self._replies.get()) is not None:
            seq, asks, replies = item
            try:
                self.ca.wait_durable(seq)
            except CAUnavailable as e:
                log.error("ca batch failed: the log cannot be made durable",
                          queries=len(asks), error=str(e.cause))
                replies = [(w, _unavailable(frame)) for w, frame in asks]
            except Exception:  # a bug
                log.exception("ca batch failed", queries=len(asks))
                replies = [(w, {"t": "error", "id": frame.get("id"),
                                "message": "internal error"}) for w, frame in asks]
            for w, reply in replies:
                with contextlib.suppress(ChannelClosed):  # the worker is gone; its client
                    w.channel.send(reply)                    # sees the connection close

    def _answer(self, worker: _Worker, frame: dict[str, Any]) -> dict[str, Any]:
        ident = frame.get("id")
        try:
            query = decode_query(frame.get("q"))
        except BadFrame as e:
            log.error("ca worker sent a bad query", pid=worker.process.pid, error=str(e))
            return {"t": "error", "id": ident, "message": "bad query"}
        try:
            return {"t": "answer", "id": ident,
                    "a": encode_answer(answer(self.ca, self.policy, query))}
        except CAUnavailable:
            return _unavailable(frame)
        except Exception:  # a bug: the worker answers 500
            log.exception("ca query failed", pid=worker.process.pid)
            return {"t": "error", "id": ident, "message": "internal error"}

    # -- supervision --------------------------------------------------------------------------

    def _supervise(self) -> None:
        failures: dict[int, int] = {}  # consecutive short-lived workers per slot
        while not self._stopping.wait(SUPERVISE_INTERVAL):
            with self._lock:
                dead = [w for w in self._workers.values() if w.process.poll() is not None]
                for w in dead:
                    self._retire(w)
            for w in dead:
                lived = time.monotonic() - w.started
                failures[w.slot] = failures.get(w.slot, 0) + 1 if lived < 2.0 else 0
                log.warning("ca worker exited; replacing it", pid=w.process.pid,
                            status=w.process.returncode, lived_s=round(lived, 2))
                pause = min(5.0, 0.1 * 2 ** failures[w.slot]) if failures[w.slot] else 0.0
                if self._stopping.wait(pause):
                    return
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self._workers[w.slot] = self._spawn(w.slot)
                    except OSError as e:  # the retired one stays in its slot: retried later
                        log.error("cannot start a ca worker", error=str(e))
                        continue
                    self.restarts += 1
                self._decider_wakeup.wake()

    # -- connections --------------------------------------------------------------------------

    def _accept(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.listen, selectors.EVENT_READ)
            sel.register(self._acceptor_wakeup.reader, selectors.EVENT_READ)
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
                                     if w.ready.is_set() and not w.retired),
                                    key=lambda w: w.connections)
                for w in candidates:
                    try:
                        socket.send_fds(w.handoff, [b"c"], [conn.fileno()])
                    except OSError:  # gone, or not taking connections: try the next one
                        continue
                    w.connections += 1
                    w.handed += 1
                    return
            if time.monotonic() > deadline:
                log.warning("no worker took a connection; closing it")
                return
            self._stopping.wait(0.05)


def _unavailable(frame: dict[str, Any]) -> dict[str, Any]:
    """The reply to a query while the log cannot be made durable (the worker answers 503)."""
    return {"t": "error", "id": frame.get("id"), "status": UNAVAILABLE,
            "message": "the CA's log cannot be made durable"}
