"""A worker process of `ca serve --workers N`: HTTP and the CA-state-free crypto of SCEP.

    python -m engine.ca.worker DIR --channel-fd FD --handoff-fd FD    (started by the decider)

It serves the HTTP connections the decider accepted and handed over (their descriptors arrive
on the handoff socket; it reports each close on the channel). For each PKIOperation it does
the heavy work that needs no CA state: parse, decrypt and verify the pkiMessage, then build and
sign the CertRep (engine/ca/scep_frontend.py `ScepResponder`). What needs the state (enroll,
poll, GetCert) it asks the decider over its channel (engine/ca/channel.py), the one process
that owns the log. GetCACaps and GetCACert come from
what the decider sent at start; the CRL (download and SCEP GetCRL) from DIR/ca.crl, re-read
when the decider replaces it.

Keys: the worker reads the decryption/signing keys from DIR itself (DIR/ca.key, or the RA keys
in --ra mode; the same 0600 check as the CA), checks that they belong to the certificates the
decider sent, and never sends them anywhere.

Lifetime: SIGTERM stops it (after the requests in progress, at most `DRAIN_SECONDS`); SIGINT is
ignored (a terminal's Ctrl-C reaches the whole process group: the decider stops the workers);
when the channel or the handoff closes (the decider exited or crashed) it stops at once: no
serving without the writer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509

from engine import logsetup
from engine.adapters.scep_server import AsyncServer
from engine.ca.channel import MAX_FRAME, AsyncChannel, ChannelClosed, decode_payload
from engine.ca.errors import CAError, CAUnavailable
from engine.ca.keyfile import load_private_key
from engine.ca.queries import BadFrame
from engine.ca.scep_frontend import Ask, ScepResponder, unavailable
from engine.ca.service import CA_KEY, CRL_FILE, RA_ENCRYPTION_KEY, RA_SIGNING_KEY
from engine.ports import EngineClock, SystemClock, SystemRandomness
from engine.scep import Credential
from engine.scep.wire import Unanswerable

log = structlog.get_logger("trustledger.ca.worker")

DRAIN_SECONDS = 5.0
INIT_TIMEOUT = 30.0
EXIT_DECIDER_GONE = 3


class CRLFile:
    """DIR/ca.crl, re-read when it changes (the decider replaces it atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._der = b""

    def read(self) -> bytes:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise Unanswerable(Unanswerable.Kind.UNAVAILABLE, "no CRL is published") from None
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            try:
                self._der = self.path.read_bytes()
            except OSError as e:  # a directory in its place, EIO: as if none were published
                raise Unanswerable(Unanswerable.Kind.UNAVAILABLE,
                                   f"the CRL file cannot be read ({e.strerror or e})") from None
            self._seen = seen
        return self._der


class WorkerApp:
    """The `AsyncScepApplication` of a worker."""

    def __init__(self, responder: ScepResponder, channel: AsyncChannel, crl: CRLFile) -> None:
        self.responder = responder
        self.channel = channel
        self._crl = crl

    def get_ca_caps(self) -> bytes:
        return self.responder.get_ca_caps()

    def get_ca_cert(self) -> tuple[str, bytes]:
        return self.responder.get_ca_cert()

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        return self.responder.get_next_ca_cert()

    async def crl(self) -> bytes:
        return self._crl.read()

    async def pki_operation(self, message: bytes, peer: str) -> bytes:
        step = self.responder.begin(message, peer)
        if not isinstance(step, Ask):
            return step
        try:
            answer = await self.channel.ask(step.query)
        except ChannelClosed:
            raise Unanswerable(Unanswerable.Kind.UNAVAILABLE, "the CA is shutting down") from None
        except CAUnavailable as e:
            raise unavailable(e) from e
        return self.responder.finish(step, answer)


def responder_from(root: Path, init: dict[str, Any], crl: CRLFile) -> ScepResponder:
    """The responder for the decider's `init` frame, with keys read from `root`."""
    try:
        ca_cert = x509.load_der_x509_certificate(_bytes(init, "ca"))
        ra = None
        if init.get("ra_signing") is not None:
            ra = (x509.load_der_x509_certificate(_bytes(init, "ra_signing")),
                  x509.load_der_x509_certificate(_bytes(init, "ra_encryption")))
        generations: list[Credential] = []
        if ra is None:
            key = load_private_key(root / CA_KEY)
            signer = decrypter = Credential(ca_cert, key)
            generations = [signer, *_next_ca(root, init)]
        else:
            signer = Credential(ra[0], load_private_key(root / RA_SIGNING_KEY))
            decrypter = Credential(ra[1], load_private_key(root / RA_ENCRYPTION_KEY))
        offset = init.get("clock_offset_us", 0)
        if type(offset) is not int:
            raise BadFrame("clock_offset_us is not an integer")
        tolerance = init.get("tolerance")
        if not isinstance(tolerance, int | float) or tolerance <= 0:
            raise BadFrame("tolerance is not a positive number")
    except ValueError as e:  # a certificate that does not parse, a key for another one
        raise BadFrame(f"cannot set up from the init frame: {e}") from None
    return ScepResponder(ca_certificate=ca_cert, ra_certificates=ra, signer=signer,
                         decrypter=decrypter, crl=crl.read,
                         clock=EngineClock(SystemClock(), offset),
                         randomness=SystemRandomness(), strict=init.get("strict") is True,
                         signing_time_tolerance=timedelta(seconds=tolerance),
                         generations=generations)


def _next_ca(root: Path, init: dict[str, Any]) -> list[Credential]:
    """The later CA certificates of the init frame (`ca rollover`) with their keys."""
    found = init.get("next_ca", [])
    if not isinstance(found, list | tuple):
        raise BadFrame("next_ca is not a list")
    out = []
    for item in found:
        if (not isinstance(item, list | tuple) or len(item) != 2
                or not isinstance(item[0], bytes) or not isinstance(item[1], str)
                or "/" in item[1] or item[1].startswith(".")):
            raise BadFrame("next_ca holds something other than [certificate, key file]")
        out.append(Credential(x509.load_der_x509_certificate(item[0]),
                              load_private_key(root / item[1])))
    return out


def _bytes(d: dict[str, Any], name: str) -> bytes:
    value = d.get(name)
    if not isinstance(value, bytes):
        raise BadFrame(f"init field {name!r} is not bytes")
    return value


def _receive_init(chan: socket.socket) -> dict[str, Any]:
    chan.settimeout(INIT_TIMEOUT)
    try:
        header = _recv_exactly(chan, 4)
        length = int.from_bytes(header, "big")
        if length > MAX_FRAME:
            raise BadFrame(f"init frame of {length} bytes")
        message = decode_payload(_recv_exactly(chan, length))
    finally:
        chan.settimeout(None)
    if message["t"] != "init":
        raise BadFrame(f"expected init, got {message['t'][:20]!r}")
    return message


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Exactly `n` bytes (no read-ahead: the rest of the channel belongs to asyncio)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ChannelClosed("the channel closed before the init frame")
        data += chunk
    return data


async def _serve(handoff: socket.socket, chan: socket.socket, responder: ScepResponder,
                 crl: CRLFile) -> int:
    loop = asyncio.get_running_loop()
    channel = await AsyncChannel.open(chan)
    stop = asyncio.Event()
    gone = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def closed() -> None:
        with contextlib.suppress(ChannelClosed):  # the decider is gone: nobody counts
            channel.send({"t": "closed"})

    server = AsyncServer(WorkerApp(responder, channel, crl), on_closed=closed)

    def take() -> None:
        try:
            data, fds, _, _ = socket.recv_fds(handoff, 16, 4)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        if not data and not fds:  # the decider closed its end
            loop.remove_reader(handoff.fileno())
            gone.set()
            return
        for fd in fds:
            server.adopt(socket.socket(fileno=fd))

    handoff.setblocking(False)
    loop.add_reader(handoff.fileno(), take)
    channel.send({"t": "ready", "pid": os.getpid()})
    reader = asyncio.create_task(channel.run())
    waits = {reader, asyncio.create_task(stop.wait()), asyncio.create_task(gone.wait())}
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():  # the decider is gone: stop serving at once
        server.close()
        error = reader.exception() if reader.done() else None
        log.warning("ca worker stopping: the decider is gone", pid=os.getpid(),
                    error=str(error or "the handoff closed"))
        return EXIT_DECIDER_GONE
    loop.remove_reader(handoff.fileno())
    await server.drained(DRAIN_SECONDS)
    server.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.ca.worker")
    parser.add_argument("dir", type=Path)
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--handoff-fd", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logsetup.configure(default="info")  # secrets redacted first, as in every entry point
    handoff = socket.socket(fileno=args.handoff_fd)
    chan = socket.socket(fileno=args.channel_fd)
    crl = CRLFile(args.dir / CRL_FILE)
    try:
        responder = responder_from(args.dir, _receive_init(chan), crl)
    except (CAError, BadFrame, ChannelClosed, OSError) as e:
        print(f"% ca worker {os.getpid()}: cannot start: {e}", file=sys.stderr)
        return 2
    # Everything imported and built so far lives as long as the process: keep the cyclic
    # collector from walking it again and again under load.
    gc.freeze()
    return asyncio.run(_serve(handoff, chan, responder, crl))


if __name__ == "__main__":
    sys.exit(main())
