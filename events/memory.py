"""`MemoryEventLog`: the same contract as the file log, held in a list (tests, embedding)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from events.store import GENESIS, PendingEvent, Recorded, seal


class MemoryEventLog:
    def __init__(self) -> None:
        self._records: list[Recorded] = []

    @property
    def head(self) -> tuple[int, bytes]:
        if not self._records:
            return 0, GENESIS
        last = self._records[-1]
        return last.seq, last.hash

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]:
        seq, prev = self.head
        records = seal(batch, seq + 1, prev)
        self._records.extend(records)
        return records

    def read(self, from_seq: int = 1) -> Iterator[Recorded]:
        yield from self._records[max(from_seq, 1) - 1 :]

    def close(self) -> None:
        """Nothing to release: the records live as long as the object."""
