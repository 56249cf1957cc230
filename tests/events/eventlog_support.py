"""Event types and helpers shared by the event-log tests.

The types are registered under `LogTest*` names so they never collide with the engine's own
vocabulary in the process-wide registry.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from events.registry import Event, event
from events.store import PendingEvent, Recorded


@event("LogTestNoted", version=1)
@dataclass(frozen=True, slots=True)
class Noted(Event):
    text: str
    n: int = 0


@event("LogTestSampled", version=1)
@dataclass(frozen=True, slots=True)
class Sampled(Event):
    """Carries one value of every msgpack-native kind, for round-trip properties."""

    text: str
    number: int
    blob: bytes
    flag: bool
    nothing: None
    nested: Any


INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # msgpack's integer range

scalars = st.one_of(st.none(), st.booleans(), INT64, st.text(max_size=20), st.binary(max_size=20))

# Nested tuples and str-keyed dicts of msgpack-native values (what a payload may hold).
native_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)

sampled_events = st.builds(
    Sampled,
    text=st.text(max_size=40),
    number=INT64,
    blob=st.binary(max_size=40),
    flag=st.booleans(),
    nothing=st.none(),
    nested=native_values,
)

pending_events = st.builds(
    PendingEvent,
    event=sampled_events,
    stream=st.text(min_size=1, max_size=12),
    at=st.integers(min_value=0, max_value=2**62),
    actor=st.text(max_size=8),
    correlation=st.text(max_size=8),
)

batches = st.lists(pending_events, min_size=1, max_size=4)


def noted(n: int, *, text: str = "", stream: str = "device") -> PendingEvent:
    return PendingEvent(Noted(text or f"note {n}", n), stream, 1_700_000_000_000_000 + n,
                        actor="admin", correlation=f"cmd-{n}")


def noted_batch(first: int, count: int, *, size: int = 0) -> list[PendingEvent]:
    """`count` events numbered from `first`; `size` pads each text to about that many bytes."""
    return [noted(n, text=f"note {n} ".ljust(size, "x") if size else "")
            for n in range(first, first + count)]


Fingerprint = list[tuple[int, bytes, bytes, Event]]


def fingerprint(records: Iterable[Recorded]) -> Fingerprint:
    """What must survive storage: seq, prev, hash and the typed event."""
    return [(r.seq, r.prev, r.hash, r.event) for r in records]


def segment_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.seg"))


def copy_log(src: Path, dst: Path, *, marker: bool = False) -> Path:
    """A copy of a closed log, to damage as a crash would. The head marker (written at the
    clean close) is left out unless asked for: a crash cuts only what was never acknowledged,
    so it never leaves a log shorter than its marker (tests of the marker keep it)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        "LOCK", *(() if marker else ("HEAD",))))
    return dst
