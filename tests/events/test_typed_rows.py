"""Typed rows (`events.typed`, `read_rows(typed=True)`) hold the events `event_from` builds
from the same stored bytes, on its every path: the current schema, an older version that is
upcast, a payload msgspec will not take, and a type this build does not know."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from events.codec import decode_body, encode_body
from events.device import ConfigurationCommitted
from events.filelog import FileEventLog, LogCorrupted
from events.registry import Event, event, event_from, payload_of
from events.store import PendingEvent
from events.trustpoint import EnrollmentPending
from events.typed import decode_events

COMMIT = ConfigurationCommitted(1000000001, "admin", "lbl", "", (
    (("hostname",), None, "hostname r1"),
    (("crypto ca trustpoint ca1", "enrollment"), "enrollment terminal", None)), 0)


def row(seq: int, name: str, version: int, payload: dict[str, Any]) -> list[Any]:
    return [seq, "device", name, version, 17 + seq, "admin", f"cmd-{seq}", payload,
            bytes([seq]) * 32]


def as_event_from(body: bytes) -> list[list[Any]]:
    """What a reader of untyped rows builds from the same body."""
    out = []
    for r in decode_body(body):
        known = r[2] != "FromTheFuture"
        out.append([*r[:7], event_from(r[2], r[3], r[7]) if known else r[7], r[8]])
    return out


@pytest.mark.parametrize("rows", [
    [row(1, "ConfigurationCommitted", 1, payload_of(COMMIT))],
    [row(1, "ConfigurationCommitted", 1, payload_of(COMMIT)),
     row(2, "EnrollmentPending", 2, payload_of(EnrollmentPending("ca1", "t1", 2, 5, "x")))],
    # v1 of EnrollmentPending had no poll_error: upcast.
    [row(3, "EnrollmentPending", 1, {"trustpoint": "ca1", "transaction_id": "t1",
                                     "polls": 1, "next_poll_at": 9})],
    # An int where a str is declared: msgspec refuses, event_from keeps what it was given.
    [row(4, "ConfigurationCommitted", 1, {**payload_of(COMMIT), "label": 7})],
    # A key this build does not know is dropped, as event_from drops it.
    [row(5, "ConfigurationCommitted", 1, {**payload_of(COMMIT), "later": True})],
    # A type this build does not know keeps its payload (the replay refuses it by name).
    [row(6, "FromTheFuture", 1, {"a": [1, 2]})],
], ids=["commit", "two-rows", "upcast", "wrong-type", "extra-key", "unknown-type"])
def test_typed_rows_equal_event_from(rows: list[list[Any]]) -> None:
    body = encode_body(rows)
    typed = decode_events(body)
    assert [list(r) for r in typed] == as_event_from(body)  # typed rows are tuples
    assert [type(r[7]) for r in typed] == [type(r[7]) for r in as_event_from(body)]


def test_typed_rows_keep_tuples_where_events_hold_tuples() -> None:
    (typed,) = decode_events(encode_body([row(1, "ConfigurationCommitted", 1,
                                              payload_of(COMMIT))]))
    assert typed[7] == COMMIT
    assert type(typed[7].changes) is tuple and type(typed[7].changes[0][0]) is tuple


def test_a_body_that_is_not_a_batch_of_rows_is_refused() -> None:
    for bad in (encode_body([]), encode_body([[1, 2, 3]]), b"\xc1"):
        with pytest.raises(ValueError):
            decode_events(bad)


def test_a_log_read_typed_gives_the_events_appended(tmp_path: Path) -> None:
    with FileEventLog.open(tmp_path) as log:
        log.append([PendingEvent(COMMIT, "device", 1)])
        log.append([PendingEvent(EnrollmentPending("ca1", "t1", 2, 5, ""), "device", 2),
                    PendingEvent(COMMIT, "device", 3)])
    with FileEventLog.open(tmp_path, readonly=True) as log:
        assert [(r[0], r[7]) for r in log.read_rows(2, typed=True)] == [
            (2, EnrollmentPending("ca1", "t1", 2, 5, "")), (3, COMMIT)]


def test_an_undecodable_typed_body_raises_log_corrupted(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with FileEventLog.open(tmp_path) as log:
        log.append([PendingEvent(COMMIT, "device", 1)])
    import events.typed

    def refuse(body: bytes) -> tuple[str, list[list[Any]], None]:
        raise ValueError("not rows")

    monkeypatch.setattr(events.typed, "decode_frame", refuse)
    with FileEventLog.open(tmp_path, readonly=True) as log, \
            pytest.raises(LogCorrupted, match="undecodable frame body: not rows"):
        list(log.read_rows(typed=True))


@event("LogTestTwinA", version=1)
@dataclass(frozen=True, slots=True)
class TwinA(Event):
    name: str
    n: int


@event("LogTestTwinB", version=1)
@dataclass(frozen=True, slots=True)
class TwinB(Event):  # the same fields: a TwinB payload decodes as a TwinA, and vice versa
    name: str
    n: int


def _one(seq: int, name: str, version: int, payload: dict[str, Any]) -> bytes:
    return encode_body([row(seq, name, version, payload)])


def test_a_frame_is_never_typed_as_the_type_the_frame_before_held() -> None:
    """The whole-frame decoder tries the previous frame's type: a row of another type whose
    payload fits that type too, or of another version, still comes back as its own type
    (upcast), and so does every row of a frame that mixes types."""
    a, b = TwinA("x", 1), TwinB("x", 1)
    assert decode_events(_one(1, "LogTestTwinA", 1, payload_of(a)))[0][7] == a
    assert decode_events(_one(2, "LogTestTwinA", 1, payload_of(a)))[0][7] == a  # guessed
    assert type(decode_events(_one(3, "LogTestTwinB", 1, payload_of(b)))[0][7]) is TwinB
    mixed = encode_body([row(4, "LogTestTwinB", 1, payload_of(b)),
                         row(5, "LogTestTwinA", 1, payload_of(a))])
    assert [type(r[7]) for r in decode_events(mixed)] == [TwinB, TwinA]
    pending_v2 = payload_of(EnrollmentPending("ca1", "t1", 2, 5, "x"))
    decode_events(_one(6, "EnrollmentPending", 2, pending_v2))
    old = {"trustpoint": "ca1", "transaction_id": "t1", "polls": 1, "next_poll_at": 9}
    [upcast] = decode_events(_one(7, "EnrollmentPending", 1, old))
    assert [list(upcast)] == as_event_from(_one(7, "EnrollmentPending", 1, old))
