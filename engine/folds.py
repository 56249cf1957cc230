"""Fold tables: each aggregate's event types and the folds that apply them, in one place.

An aggregate (the device, the built-in CA) declares one `FoldTable`: a literal mapping from
each of its event types to the folds that apply it, `fold(state, event, at_us) -> state`,
run in the order listed (a commit that removes a trustpoint also drops its status: two
folds, each owning its part of the state). An event type listed with no folds is recorded
for the audit and changes no state. Nothing registers itself on import: the table is the
whole list, and a test checks it covers every event type the aggregate's events declare.

A table may also give an event type a run fold, `run(state, rows) -> state`, which folds a run
of typed rows of that type (`events.runs`: `row[7]` the event, `row[4]` its time) exactly as
the type's folds would one row after the other, in one call: replay reads a device's commits
in long runs, and a per-event dispatch through three folds costs more than the folding. The
property test (tests/core/test_core_fast_replay.py) proves a replay with run folds equal to
the live folds.

A stored event whose type is not in the table cannot be folded: the state would silently be
wrong, so the log refuses to open (`UnfoldedEvent`, naming the type and its seq).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from engine.errors import OperatorError, Reason
from events.registry import Event

S = TypeVar("S")
Fold = Callable[[S, Any, int], S]
RunFold = Callable[[S, Sequence[Sequence[Any]]], S]


class UnfoldedEvent(OperatorError):
    """A stored event of a type this build does not fold (a newer writer, or damage)."""

    def __init__(self, aggregate: str, type_name: str, seq: int) -> None:
        super().__init__(Reason.BAD_DATA,
                         f"The {aggregate} log holds an event of type {type_name} at seq "
                         f"{seq}, which this build does not fold: the log cannot be opened "
                         "(was it written by a newer trustledger?).")
        self.type_name = type_name
        self.seq = seq


def _unchanged(state: Any, ev: Any, at: int) -> Any:
    return state


class FoldTable(Generic[S]):
    """One aggregate's folds by event type name (replay dispatches on the stored name)."""

    def __init__(self, aggregate: str,
                 table: Mapping[type[Event], Sequence[Fold[S]]],
                 runs: Mapping[type[Event], RunFold[S]] | None = None) -> None:
        self.aggregate = aggregate
        self.types: tuple[type[Event], ...] = tuple(table)
        self.by_name: Mapping[str, Fold[S]] = {t.type_name: _chain(fs)
                                                for t, fs in table.items()}
        if any(t not in table for t in runs or {}):
            raise TypeError("a run fold of an event type the table does not list")
        self.runs: Mapping[str, RunFold[S]] = {t.type_name: fn
                                               for t, fn in (runs or {}).items()}
        # Types whose folds change the state (the snapshot fingerprint names these).
        self.folded: tuple[str, ...] = tuple(t.type_name for t, fs in table.items() if fs)

    def fold(self, state: S, ev: Event, at: int, seq: int = 0) -> S:
        return self.require(ev.type_name, seq)(state, ev, at)

    def require(self, type_name: str, seq: int) -> Fold[S]:
        """The fold of a stored event, or UnfoldedEvent naming it."""
        fn = self.by_name.get(type_name)
        if fn is None:
            raise UnfoldedEvent(self.aggregate, type_name, seq)
        return fn


def _chain(folds: Sequence[Fold[S]]) -> Fold[S]:
    if not folds:
        return _unchanged
    if len(folds) == 1:
        return folds[0]
    if len(folds) == 2:  # replay calls a chain per event: no loop for the usual lengths
        f1, f2 = folds
        return lambda state, ev, at: f2(f1(state, ev, at), ev, at)
    if len(folds) == 3:
        f1, f2, f3 = folds
        return lambda state, ev, at: f3(f2(f1(state, ev, at), ev, at), ev, at)
    chain = tuple(folds)

    def chained(state: S, ev: Any, at: int) -> S:
        for fn in chain:
            state = fn(state, ev, at)
        return state

    return chained
