"""`DeviceLog`: what the engine, its snapshots and its audit trail need of a log.

The engine (engine/engine.py), the snapshots (engine/snapshot.py) and the audit trail
(engine/audit/trail.py) were written against the file log; this protocol names the part of
it they use, so a log kept elsewhere (a device's stream in PostgreSQL, engine/sharedlog.py)
serves them too, with no test of which store it is:

- the `EventStore` port (head, append, read, close) and `read_rows` (the raw rows replay folds);
- `root`: the local directory where the audit trail keeps its files (`AUDIT`, `CHECKPOINTS`):
  the log directory of a file log, `DATA/audit/` for a shared store;
- `position` and `tail`: where the frames after the head start, and the rows after a known
  (seq, chain hash) read from there. A store without positions says None, and its readers
  fall back to finding the seq (`read_rows(seq)`) and checking its chain hash: snapshots and
  audit trees are bound to (seq, chain hash) either way, which any store can check;
- `refresh`: learn the head other writers made, so `read` reaches their events;
- `mark_head` and `on_mark`: the "durable now" step, run at most every few seconds, when a
  snapshot is taken and at a clean close, in which the audit trail writes its files out;
- `group_commit`: a block whose appends are made durable together at its end;
- `reader`: a read-only handle of the same log for another thread (the witnesses' cosigner);
- `recovered` and `notice`: what opening repaired or would repair (a torn tail of a file).

A second writer of the same log is refused at open (the file log's lock) or at its first
append (`LogConflict`, a shared store's optimistic concurrency): the batch was not written,
and the writer catches up by reading the rows after its own head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from events.filelog import LogError, LogWriteFailed, Position
from events.store import PendingEvent, Recorded

Row = Sequence[Any]


class LogConflict(LogError):
    """Another writer appended to this log since this one read its head: nothing of the
    batch was written, and this writer's head is unchanged (it catches up by reading on)."""

    def __init__(self, text: str) -> None:
        super().__init__(text, sentence=True)


class StoreLost(LogWriteFailed):
    """A shared store was lost while it appended a batch, or is still not back. `outcome`
    is a sentence saying what became of the batch, as far as the store could tell; the log
    tries to reconnect at its next append."""

    def __init__(self, cause: BaseException, rolled_back: bool, outcome: str) -> None:
        super().__init__(cause, rolled_back)
        self.outcome = outcome


class DeviceLog(Protocol):
    """The log as the engine, snapshots and the audit trail use it (see the module doc)."""

    root: Path
    on_mark: Callable[[int], None] | None
    while_syncing: Callable[[], None] | None  # work done while the log waits for durability
    recovered: str | None

    @property
    def head(self) -> tuple[int, bytes]: ...

    @property
    def position(self) -> Position | None: ...

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]: ...

    def read(self, from_seq: int = 1) -> Iterator[Recorded]: ...

    def read_rows(self, from_seq: int = 1, *, typed: bool = False) -> Iterator[Row]: ...

    def tail(self, at: Position, seq: int, chain: bytes, *,
             typed: bool = False) -> Iterator[Row]: ...

    def mark_head(self) -> None: ...

    def refresh(self) -> None:
        """Learn the head other writers of the log made (a shared store's); a sole writer's
        log has nothing to learn."""
        ...

    def group_commit(self) -> contextlib.AbstractContextManager[None]: ...

    def reader(self) -> contextlib.AbstractContextManager[DeviceLog]: ...

    def notice(self) -> str | None: ...

    def close(self) -> None: ...
