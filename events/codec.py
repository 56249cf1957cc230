"""msgpack encoding of events and batch frames.

A recorded event's core is the list `[seq, stream, type, v, at, actor, correlation, payload]`;
its hash covers `prev + encode_core(core)`. On disk a batch is one frame (see `filelog`) whose
body is `[[*core, hash], ...]`, so a single unpack yields a whole command's events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

_packer = msgpack.Packer(use_bin_type=True)
_unpackb = msgpack.unpackb
_ENCODE: list[Callable[[Any], bytes]] = []  # msgspec's encoder, made by the first append


def encode_core(core: list[Any]) -> bytes:
    """The bytes an event's hash covers: msgpack, written by msgspec's encoder, which gives
    the very bytes `msgpack.Packer(use_bin_type=True)` gives for every value an event holds
    (str, int, bytes, bool, None, tuples and dicts of them: the smallest int and str forms,
    bin for bytes; tests/events/test_event_codec.py proves it) at a quarter of the cost: the
    append hot path (issue 12's group commit). msgspec is loaded by the first append, not
    by a command that only reads."""
    if not _ENCODE:
        import msgspec

        _ENCODE.append(msgspec.msgpack.Encoder().encode)
    return _ENCODE[0](core)


def encode_body(records: list[list[Any]]) -> bytes:
    return _packer.pack(records)  # type: ignore[no-any-return]


def decode_body(body: bytes) -> list[list[Any]]:
    """The rows of a frame body. Each row is a list; arrays inside it (payload values) come
    back as tuples, the form events hold, so rebuilding an event needs no conversion."""
    out = _unpackb(body, raw=False, use_list=False, strict_map_key=True)
    if type(out) is not tuple:
        raise ValueError("frame body is not a list of events")
    if len(out) == 1:
        return [list(out[0])]  # one command, one event: the common frame, kept cheap
    return [list(row) for row in out]


def count_rows(body: bytes) -> int:
    """How many rows a frame body holds, read from its msgpack array header alone."""
    first = body[0] if body else -1
    if 0x90 <= first <= 0x9F:  # fixarray
        return first & 0x0F
    if first == 0xDC and len(body) >= 3:  # array 16
        return int.from_bytes(body[1:3], "big")
    if first == 0xDD and len(body) >= 5:  # array 32
        return int.from_bytes(body[1:5], "big")
    raise ValueError("frame body is not a list of events")


def row_spans(body: bytes) -> list[bytes]:
    """The stored bytes of each row of a frame body, without decoding the rows (the chain
    hash covers them: `log verify` and the tail check hash these bytes)."""
    if body[:1] == b"\x91":  # one command, one event: the common frame
        return [body[1:]]
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(body)
    n = unpacker.read_array_header()
    spans = []
    start = unpacker.tell()
    for _ in range(n):
        unpacker.skip()
        end = unpacker.tell()
        spans.append(body[start:end])
        start = end
    if start != len(body):
        raise ValueError("extra bytes after the rows")
    return spans
