"""The local channel between `ca serve`'s decider and its worker processes.

A connected AF_UNIX stream socket pair (made by the decider; one end is inherited by the
worker, nothing is reachable from the network or the filesystem) carrying frames: a 4-byte
big-endian length, then one msgpack map. msgpack, not pickle: a frame is data, never code.

Frames (key "t"):

    decider -> worker   init    {ca, ra_signing, ra_encryption, strict, tolerance, crl_path}
    worker -> decider   ready   {pid}
    worker -> decider   ask     {id, q}   a query (engine/ca/queries.py encode_query)
    decider -> worker   answer  {id, a}   its answer (encode_answer)
    decider -> worker   error   {id, message[, status]}   no answer: HTTP `status` (503: the
                                the log cannot be made durable), else 500 (a bug)

The decider reads every channel from one thread (`Channel.read_frames` under a selector);
the worker side lives on its asyncio loop (`AsyncChannel`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import threading
from typing import Any

import msgpack

from engine.ca.errors import CAUnavailable
from engine.ca.queries import Answer, BadFrame, Query, decode_answer, encode_query

MAX_FRAME = 1 << 20
UNAVAILABLE = 503  # the `status` of an error frame sent while the log cannot be made durable
_LENGTH = struct.Struct(">I")


class ChannelClosed(Exception):
    """The other process closed the channel (it exited or crashed)."""


def encode_frame(message: dict[str, Any]) -> bytes:
    payload: bytes = msgpack.packb(message, use_bin_type=True)
    if len(payload) > MAX_FRAME:
        raise ValueError(f"frame of {len(payload)} bytes is larger than {MAX_FRAME}")
    return _LENGTH.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(payload, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise BadFrame(f"undecodable frame: {e}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise BadFrame("a frame is a map with a type \"t\"")
    return message


def _length(header: bytes) -> int:
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise BadFrame(f"frame of {length} bytes announced; the limit is {MAX_FRAME}")
    return int(length)


class Channel:
    """The decider's end: frames are read when a selector reports the socket readable
    (`read_frames`, from the one thread that serves all channels); `send` is thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._buffer = bytearray()

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() == -1

    def send(self, message: dict[str, Any]) -> None:
        frame = encode_frame(message)
        with self._send_lock:
            try:
                self._sock.sendall(frame)
            except OSError as e:
                raise ChannelClosed(str(e)) from None

    def read_frames(self) -> list[dict[str, Any]]:
        """The frames completed by what the socket holds now (one recv: call it when it is
        readable); ChannelClosed at the end, BadFrame for garbage."""
        try:
            data = self._sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as e:
            raise ChannelClosed(str(e)) from None
        if not data:
            raise ChannelClosed("end of channel")
        buf = self._buffer
        buf += data
        frames = []
        pos = 0
        while len(buf) - pos >= _LENGTH.size:
            length = _length(bytes(buf[pos:pos + _LENGTH.size]))
            end = pos + _LENGTH.size + length
            if len(buf) < end:
                break
            frames.append(decode_payload(bytes(buf[pos + _LENGTH.size:end])))
            pos = end
        del buf[:pos]
        return frames

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class AsyncChannel:
    """The worker's end, on its asyncio loop: `ask` sends a query and awaits its answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Answer]] = {}

    @classmethod
    async def open(cls, sock: socket.socket) -> AsyncChannel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME + 8)
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        if self._writer.is_closing():
            raise ChannelClosed("the channel is closed")
        self._writer.write(encode_frame(message))

    async def ask(self, query: Query) -> Answer:
        ident = next(self._ids)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            self.send({"t": "ask", "id": ident, "q": encode_query(query)})
            return await future
        finally:
            self._waiting.pop(ident, None)

    async def run(self) -> None:
        """Deliver answers until the decider closes the channel (then every open question
        fails with ChannelClosed, and so does this)."""
        try:
            while True:
                try:
                    header = await self._reader.readexactly(_LENGTH.size)
                    payload = await self._reader.readexactly(_length(header))
                except (asyncio.IncompleteReadError, ConnectionError) as e:
                    raise ChannelClosed("the decider closed the channel") from e
                self._deliver(decode_payload(payload))
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ChannelClosed("the decider closed the channel"))
            self._writer.close()

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["t"] not in ("answer", "error"):
            raise BadFrame(f"unexpected frame type {message['t'][:20]!r}")
        ident = message.get("id")
        future = self._waiting.get(ident) if isinstance(ident, int) else None
        if future is None or future.done():
            return  # the question was withdrawn (its connection closed while it waited)
        if message["t"] == "answer":
            future.set_result(decode_answer(message.get("a")))
        elif message.get("status") == UNAVAILABLE:
            future.set_exception(CAUnavailable(RuntimeError(str(message.get("message")))))
        else:
            future.set_exception(RuntimeError(f"the decider failed: {message.get('message')}"))
