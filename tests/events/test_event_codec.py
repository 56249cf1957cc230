"""The event registry and msgpack codec: round-trips, upcaster chains, unknown types."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.codec import count_rows, decode_body, encode_body, encode_core
from events.filelog import (
    FRAME_HEADER,
    MAGIC,
    SEG_HEADER,
    FileEventLog,
    encode_frame,
    iter_frames,
    verify,
)
from events.registry import Event, UnknownEventType, event, event_from, payload_of, upcaster
from events.store import COLD_SHA256, GENESIS, PendingEvent, Recorded, chain_hash, seal
from tests.events.eventlog_support import (
    INT64,
    Sampled,
    native_values,
    pending_events,
    sampled_events,
)

# -- a type at schema v3 with upcasters v1 -> v2 -> v3 --------------------------------------


@event("LogTestWidgetRenamed", version=3)
@dataclass(frozen=True, slots=True)
class WidgetRenamed(Event):
    widget: str
    new_name: str
    reason: str


@upcaster("LogTestWidgetRenamed", from_version=1)
def _renamed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    # v1 called the fields `id` and `name`.
    return {"widget": payload["id"], "new_name": payload["name"]}


@upcaster("LogTestWidgetRenamed", from_version=2)
def _renamed_v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "reason": payload.get("reason", "unrecorded")}


@event("LogTestGapped", version=3)
@dataclass(frozen=True, slots=True)
class Gapped(Event):
    value: int


@upcaster("LogTestGapped", from_version=2)
def _gapped_v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    return {"value": payload["old_value"] * 10}


def stored(ev: Event) -> dict[str, Any]:
    """The payload as it comes back from disk (msgpack lists, not tuples)."""
    return decode_body(encode_body([[payload_of(ev)]]))[0][0]  # type: ignore[no-any-return]


# -- round trips -------------------------------------------------------------------------


@settings(max_examples=300)
@given(sampled_events)
def test_any_native_payload_round_trips_to_an_equal_event(ev: Sampled) -> None:
    back = event_from("LogTestSampled", 1, stored(ev))
    assert back == ev
    assert type(back.nested) is type(ev.nested)


@settings(max_examples=200)
@given(native_values)
def test_nested_values_come_back_as_tuples_and_hash(value: Any) -> None:
    ev = Sampled("t", 1, b"", True, None, value)
    back = event_from("LogTestSampled", 1, stored(ev))
    assert not _contains_list(back.nested)  # type: ignore[attr-defined]
    if not _contains_dict(value):
        assert hash(back) == hash(ev)  # frozen events with tuple payloads stay hashable


def _contains_list(v: Any) -> bool:
    if isinstance(v, list):
        return True
    if isinstance(v, dict):
        return any(_contains_list(x) for x in v.values())
    return isinstance(v, tuple) and any(_contains_list(x) for x in v)


def _contains_dict(v: Any) -> bool:
    if isinstance(v, dict):
        return True
    return isinstance(v, tuple) and any(_contains_dict(x) for x in v)


@given(INT64, st.binary(max_size=64), st.text(max_size=64))
def test_bytes_str_and_int_kinds_are_kept_apart(number: int, blob: bytes, text: str) -> None:
    ev = Sampled(text, number, blob, False, None, (blob, text, number, True))
    back = event_from("LogTestSampled", 1, stored(ev))
    assert back == ev
    assert [type(x) for x in back.nested] == [bytes, str, int, bool]


def test_integers_outside_msgpack_range_are_refused_at_append() -> None:
    with pytest.raises(OverflowError):
        encode_core([payload_of(Sampled("t", 2**64, b"", False, None, ()))])


@settings(max_examples=100)
@given(st.lists(sampled_events, min_size=1, max_size=5))
def test_sealed_records_hash_the_same_after_a_frame_round_trip(evs: list[Sampled]) -> None:
    recs = seal([PendingEvent(e, "s", 7) for e in evs], 1, GENESIS)
    frame = encode_frame(1, recs)
    rows = decode_body(frame[FRAME_HEADER.size:])
    prev = GENESIS
    for rec, row in zip(recs, rows, strict=True):
        assert row[8] == rec.hash == chain_hash(prev, encode_core(row[:8]))
        prev = rec.hash


@pytest.mark.parametrize("rows", [1, 2, 15, 16, 17, 65535, 65536])
def test_count_rows_reads_the_array_header_of_any_body_size(rows: int) -> None:
    body = encode_body([[n] for n in range(rows)])
    assert count_rows(body) == rows == len(decode_body(body))


@pytest.mark.parametrize("body", [b"", b"\x01", b"\xdc\x00", b"\xdd\x00\x00\x01",
                                  b"\x81\xa1a\x01"])
def test_count_rows_refuses_what_is_not_an_array(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a list"):
        count_rows(body)


def test_decoded_rows_are_lists_whose_inner_arrays_are_tuples() -> None:
    [row] = decode_body(encode_body([[1, "s", [["a"], None, "b"], {"k": [1, [2]]}]]))
    assert row == [1, "s", (("a",), None, "b"), {"k": (1, (2,))}]


# -- upcasters -------------------------------------------------------------------------


@event("LogTestTagged", version=2)
@dataclass(frozen=True, slots=True)
class Tagged(Event):
    tags: tuple[str, ...]


@upcaster("LogTestTagged", from_version=1)
def _tagged_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {"tags": [t.strip() for t in payload["tags"].split(",")]}  # builds a list


def test_lists_an_upcaster_builds_become_tuples() -> None:
    ev = event_from("LogTestTagged", 1, {"tags": "a, b"})
    assert ev == Tagged(("a", "b"))
    assert hash(ev) == hash(Tagged(("a", "b")))


def test_fields_this_build_does_not_know_are_dropped() -> None:
    assert event_from("LogTestTagged", 2, {"tags": ("x",), "colour": "red"}) == Tagged(("x",))


@given(st.text(max_size=10), st.text(max_size=10))
def test_v1_payload_is_upcast_through_v2_to_v3(widget: str, name: str) -> None:
    ev = event_from("LogTestWidgetRenamed", 1, {"id": widget, "name": name})
    assert ev == WidgetRenamed(widget, name, "unrecorded")


def test_v2_payload_takes_only_the_last_step() -> None:
    ev = event_from("LogTestWidgetRenamed", 2, {"widget": "w", "new_name": "n", "reason": "cli"})
    assert ev == WidgetRenamed("w", "n", "cli")


def test_current_version_is_not_upcast() -> None:
    payload = {"widget": "w", "new_name": "n", "reason": "r"}
    assert event_from("LogTestWidgetRenamed", 3, payload) == WidgetRenamed("w", "n", "r")


def test_upcasting_does_not_mutate_the_stored_payload() -> None:
    payload = {"widget": "w", "new_name": "n"}
    event_from("LogTestWidgetRenamed", 2, payload)
    assert payload == {"widget": "w", "new_name": "n"}


def test_missing_upcaster_in_a_chain_raises_unknown_event_type() -> None:
    assert event_from("LogTestGapped", 2, {"old_value": 4}) == Gapped(40)
    with pytest.raises(UnknownEventType, match="v1"):
        event_from("LogTestGapped", 1, {"old_value": 4})


def test_newer_version_than_this_build_raises_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType, match="newer"):
        event_from("LogTestWidgetRenamed", 4, {"widget": "w", "new_name": "n", "reason": "r"})


def test_unknown_type_name_raises_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType, match="LogTestNeverDeclared"):
        event_from("LogTestNeverDeclared", 1, {})


def test_old_versions_in_a_file_log_are_upcast_on_read(tmp_path: Path) -> None:
    """A log written by an older build (WidgetRenamed at v1) reads as v3 events."""
    v1 = {"id": "w7", "name": "edge"}
    core = [1, "device", "LogTestWidgetRenamed", 1, 5, "admin", "c1", v1]
    h = chain_hash(GENESIS, encode_core(core))
    rec = Recorded(1, "device", "LogTestWidgetRenamed", 1, 5, "admin", "c1", v1, GENESIS, h)
    seg = tmp_path / f"{1:020d}.seg"
    seg.write_bytes(SEG_HEADER.pack(MAGIC, 1, GENESIS) + encode_frame(1, [rec]))
    assert verify(tmp_path).damage is None
    with FileEventLog.open(tmp_path, readonly=True) as log:
        [got] = list(log.read())
    assert (got.v, got.payload) == (1, v1)  # stored bytes are never rewritten
    assert got.event == WidgetRenamed("w7", "edge", "unrecorded")


def test_unknown_type_in_the_log_is_raised_when_its_event_is_needed(tmp_path: Path) -> None:
    core = [1, "device", "LogTestFromTheFuture", 1, 5, "", "", {}]
    h = chain_hash(GENESIS, encode_core(core))
    rec = Recorded(1, "device", "LogTestFromTheFuture", 1, 5, "", "", {}, GENESIS, h)
    (tmp_path / f"{1:020d}.seg").write_bytes(SEG_HEADER.pack(MAGIC, 1, GENESIS)
                                              + encode_frame(1, [rec]))
    with FileEventLog.open(tmp_path, readonly=True) as log:
        [got] = list(log.read())
    assert got.type == "LogTestFromTheFuture"  # the envelope is readable (and verifiable)...
    with pytest.raises(UnknownEventType):
        _ = got.event  # ...but this build cannot interpret it


# -- registration ----------------------------------------------------------------------


def test_registering_a_mutable_dataclass_is_refused() -> None:
    @dataclass
    class Loose(Event):
        x: int

    with pytest.raises(TypeError, match="frozen"):
        event("LogTestLoose")(Loose)


def test_registering_two_classes_under_one_name_is_refused() -> None:
    @dataclass(frozen=True)
    class Impostor(Event):
        text: str

    with pytest.raises(TypeError, match="twice"):
        event("LogTestNoted")(Impostor)


def test_registration_records_name_and_version() -> None:
    assert (WidgetRenamed.type_name, WidgetRenamed.version) == ("LogTestWidgetRenamed", 3)
    assert payload_of(WidgetRenamed("a", "b", "c")) == {"widget": "a", "new_name": "b",
                                                         "reason": "c"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(pending_events, min_size=1, max_size=20), min_size=1, max_size=3))
def test_appended_frames_hold_exactly_the_encoded_rows(
        tmp_path_factory: pytest.TempPathFactory, log_batches: list[list[PendingEvent]]) -> None:
    root = tmp_path_factory.mktemp("frames")
    with FileEventLog.open(root) as log:
        appended = [log.append(b) for b in log_batches]
        [seg] = log.segments()
    for frame, recs in zip(iter_frames(seg), appended, strict=True):
        assert frame.first_seq == recs[0].seq
        assert frame.body == encode_body([[*r.core(), r.hash] for r in recs])


def test_a_batch_of_more_than_65535_events_is_one_readable_frame(tmp_path: Path) -> None:
    batch = [PendingEvent(Sampled("", n, b"", False, None, ()), "s", n) for n in range(70_000)]
    with FileEventLog.open(tmp_path) as log:
        recs = log.append(batch)
        [seg] = log.segments()
    [frame] = list(iter_frames(seg))
    assert frame.body[0] == 0xDD and count_rows(frame.body) == 70_000
    assert frame.body == encode_body([[*r.core(), r.hash] for r in recs])
    with FileEventLog.open(tmp_path, readonly=True) as log:
        assert sum(1 for _ in log.read_rows()) == 70_000


_native = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5).map(tuple) | st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


@settings(max_examples=500)
@given(st.lists(_native, max_size=9), st.integers(0, 70_000), st.integers(0, 70_000))
def test_encode_core_writes_the_bytes_msgpack_writes(core: list[Any], n: int, m: int) -> None:
    """The core's bytes (what the chain hashes) are msgpack's, value for value: every size
    boundary of ints, strs (fixstr, str8, str16, str32), bins and arrays included."""
    core = [*core, "x" * n, b"y" * m, tuple(range(n % 20)), n - m]
    assert encode_core(core) == msgpack.Packer(use_bin_type=True).pack(core)


@settings(max_examples=100)
@given(st.lists(sampled_events, min_size=1, max_size=3))
def test_encode_core_of_sealed_events_is_msgpack(evs: list[Sampled]) -> None:
    for rec in seal([PendingEvent(e, "s", 7) for e in evs], 1, GENESIS):
        assert encode_core(rec.core()) == msgpack.Packer(use_bin_type=True).pack(rec.core())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(pending_events, st.booleans()), min_size=1, max_size=12))
def test_one_event_appends_write_the_frames_the_generic_encoder_writes(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[PendingEvent, bool]]) -> None:
    """The one-event append path (sealed and framed in one pass, the chain hash from
    `COLD_SHA256` when synced at once, hashlib's inside a group) leaves byte for byte the
    segment `encode_frame` describes, every record hashed as `expected_hash` says."""
    root = tmp_path_factory.mktemp("one")
    appended: list[Recorded] = []
    with FileEventLog.open(root) as log:
        for p, grouped in steps:
            if grouped:
                with log.group_commit():
                    appended += log.append([p])
            else:
                appended += log.append([p])
        [seg] = log.segments()
    assert all(r.hash == r.expected_hash() for r in appended)
    assert seg.read_bytes() == SEG_HEADER.pack(MAGIC, 1, GENESIS) + b"".join(
        encode_frame(r.seq, [r]) for r in appended)


@given(st.binary(max_size=300))
def test_the_cold_sha256_is_sha256(data: bytes) -> None:
    assert COLD_SHA256(data).digest() == hashlib.sha256(data).digest()


def test_a_fips_mode_openssl_keeps_every_chain_hash_in_openssl(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In FIPS mode every digest must come from the validated module: no built-in SHA-256."""
    import _hashlib

    import events.store

    monkeypatch.setattr(_hashlib, "get_fips_mode", lambda: 1)
    assert events.store._small_sha256() is hashlib.sha256
    monkeypatch.setattr(_hashlib, "get_fips_mode", lambda: 0)
    assert events.store._small_sha256() is not hashlib.sha256
