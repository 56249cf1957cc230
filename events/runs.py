"""Rows read in runs of one event type, for replay.

A log holds long runs of events of one type (a device's commits), and a replay that folds
such a run as one batch (`engine.folds.FoldTable.runs`) skips the per-event dispatch and
calls. `RowRuns` is what a typed read returns (`FileEventLog.read_rows(..., typed=True)`):
an iterator of rows like any other, for every reader, which also hands the same rows out as
runs `(type name, rows)` to the one reader that folds them (`engine.state.replay_rows`).

A run's name is the type of every row in it, checked by the decoder that built the rows
(`events.typed`), never assumed; "" names a run of rows of several types, folded row by row.
A run holds at most `RUN_MAX` rows, so that a replay holds no more than that at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

Row = Sequence[Any]
Run = tuple[str, Sequence[Row]]

RUN_MAX = 256


class RowRuns(Iterator[Row]):
    """Rows, read either one by one (iterating) or as runs (`runs`), not both."""

    __slots__ = ("_rows", "_runs")

    def __init__(self, runs: Iterator[Run]) -> None:
        self._runs = runs
        self._rows: Iterator[Row] | None = None

    def runs(self) -> Iterator[Run]:
        """The rows as runs of one type. Only before the first row is drawn (a run already
        started would be handed out again)."""
        if self._rows is not None:
            raise RuntimeError("rows already drawn one by one")
        return self._runs

    def __iter__(self) -> RowRuns:
        return self

    def __next__(self) -> Row:
        if self._rows is None:
            self._rows = chain.from_iterable(rows for _, rows in self._runs)
        return next(self._rows)


def merged(frames: Iterable[Run], limit: int = RUN_MAX) -> Iterator[Run]:
    """Consecutive frames' rows of the same type name as one run of up to about `limit`
    rows (a frame is never split); "" frames merge with each other likewise."""
    name, run = "", list[Row]()
    for frame_name, rows in frames:
        if frame_name == name and len(run) < limit:
            run += rows
            continue
        if run:
            yield name, run
        name, run = frame_name, list(rows)
    if run:
        yield name, run
