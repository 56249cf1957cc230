"""msgpack encoding of events and batch frames.

A recorded event's core is the list `[seq, stream, type, v, at, actor, correlation, payload]`;
its hash covers `prev + encode_core(core)`. On disk a batch is one frame (see `filelog`) whose
body is `[[*core, hash], ...]`, so a single unpack yields a whole command's events.
"""

from __future__ import annotations

from typing import Any

import msgpack

_packer = msgpack.Packer(use_bin_type=True)


def encode_core(core: list[Any]) -> bytes:
    return _packer.pack(core)  # type: ignore[no-any-return]


def encode_body(records: list[list[Any]]) -> bytes:
    return _packer.pack(records)  # type: ignore[no-any-return]


def decode_body(body: bytes) -> list[list[Any]]:
    out = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
    if not isinstance(out, list):
        raise ValueError("frame body is not a list of events")
    return out
