"""The EventStore port's contract, proved against every adapter.

`EventStoreContract` holds the tests; each adapter's subclass only says how to build (and, for
durable stores, reopen) itself.
"""

from __future__ import annotations

import abc
import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import encode_core
from events.filelog import FileEventLog
from events.memory import MemoryEventLog
from events.pgstore import PostgresEventStore
from events.store import GENESIS, EventStore, PendingEvent, chain_hash
from tests.events.eventlog_support import Noted, Sampled, batches, fingerprint, noted, noted_batch


class EventStoreContract(abc.ABC):
    @abc.abstractmethod
    def build(self, where: Path) -> EventStore:
        """A new, empty store; a durable one keeps its data under `where`."""

    @abc.abstractmethod
    def reopen(self, store: EventStore, where: Path) -> EventStore:
        """The same store as a later process would see it (close + open for durable ones)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        s = self.build(tmp_path)
        yield s
        s.close()

    # -- empty store and numbering ---------------------------------------------------------

    def test_empty_store_has_genesis_head_and_no_events(self, store: EventStore) -> None:
        assert store.head == (0, GENESIS)
        assert list(store.read()) == []

    def test_append_numbers_a_batch_from_one_and_returns_its_envelopes(
            self, store: EventStore) -> None:
        batch = noted_batch(1, 3)
        recs = store.append(batch)
        assert [r.seq for r in recs] == [1, 2, 3]
        for r, p in zip(recs, batch, strict=True):
            assert (r.stream, r.type, r.v, r.at, r.actor, r.correlation) == (
                p.stream, "LogTestNoted", 1, p.at, p.actor, p.correlation)
            assert r.event == p.event
            assert r.payload == {"text": p.event.text, "n": p.event.n}  # type: ignore[attr-defined]
        assert store.head == (3, recs[-1].hash)

    def test_seq_continues_across_batches_without_gaps(self, store: EventStore) -> None:
        sizes = [1, 4, 2, 1, 7]
        seqs: list[int] = []
        for size in sizes:
            first = store.head[0] + 1
            recs = store.append(noted_batch(first, size))
            assert recs[0].seq == first
            seqs += [r.seq for r in recs]
        assert seqs == list(range(1, sum(sizes) + 1))
        assert [r.seq for r in store.read()] == seqs

    def test_empty_batch_appends_nothing(self, store: EventStore) -> None:
        store.append(noted_batch(1, 2))
        head = store.head
        assert store.append([]) == []
        assert store.head == head
        assert len(list(store.read())) == 2

    # -- the hash chain --------------------------------------------------------------------

    def test_events_form_a_sha256_chain_from_genesis(self, store: EventStore) -> None:
        store.append(noted_batch(1, 2))
        store.append(noted_batch(3, 3))
        prev = GENESIS
        for r in store.read():
            assert r.prev == prev
            assert r.hash == chain_hash(prev, encode_core(r.core())) == r.expected_hash()
            prev = r.hash
        assert store.head[1] == prev

    def test_hash_covers_every_envelope_field(self, store: EventStore) -> None:
        base = noted(1)
        variants = [
            base,
            PendingEvent(Noted("note 1", 2), base.stream, base.at, base.actor, base.correlation),
            PendingEvent(base.event, "other", base.at, base.actor, base.correlation),
            PendingEvent(base.event, base.stream, base.at + 1, base.actor, base.correlation),
            PendingEvent(base.event, base.stream, base.at, "operator", base.correlation),
            PendingEvent(base.event, base.stream, base.at, base.actor, "cmd-x"),
        ]
        hashes = set()
        for v in variants:
            s = MemoryEventLog()  # same first seq and prev for every variant
            hashes.add(s.append([v])[0].hash)
        assert len(hashes) == len(variants)
        # ...and this store computes the same hash as any other adapter for the same event.
        assert store.append([base])[0].hash == MemoryEventLog().append([base])[0].hash

    # -- atomic batches --------------------------------------------------------------------

    def test_a_batch_that_cannot_be_encoded_leaves_no_trace(self, store: EventStore) -> None:
        store.append(noted_batch(1, 2))
        head = store.head
        poisoned = [noted(3), PendingEvent(Noted("bad", object()), "device", 0)]  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            store.append(poisoned)
        assert store.head == head
        assert [r.seq for r in store.read()] == [1, 2]
        recs = store.append([noted(3)])
        assert (recs[0].seq, recs[0].prev) == (3, head[1])

    # -- reading ---------------------------------------------------------------------------

    def test_read_from_any_seq_yields_exactly_the_suffix(self, store: EventStore) -> None:
        for first in range(1, 30, 3):
            store.append(noted_batch(first, 3))
        everything = fingerprint(store.read())
        assert len(everything) == 30
        for from_seq in range(-1, 33):
            assert fingerprint(store.read(from_seq)) == everything[max(from_seq, 1) - 1:]

    def test_read_is_a_lazy_stream(self, store: EventStore) -> None:
        store.append(noted_batch(1, 5))
        it = store.read(2)
        assert iter(it) is it
        assert next(it).seq == 2
        assert next(it).seq == 3

    def test_reopened_store_has_the_same_head_and_events(
            self, store: EventStore, tmp_path: Path) -> None:
        store.append(noted_batch(1, 2))
        store.append(noted_batch(3, 1))
        before = (store.head, fingerprint(store.read()))
        again = self.reopen(store, tmp_path)
        try:
            assert (again.head, fingerprint(again.read())) == before
            assert again.append([noted(4)])[0].prev == before[0][1]
        finally:
            again.close()

    # Each adapter's subclass runs this same method: that is the point of a contract test,
    # so hypothesis's differing-executors check does not apply (it shares its example
    # database entry between adapters, which is harmless).
    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.differing_executors])
    @given(st.lists(batches, min_size=1, max_size=6))
    def test_any_batches_read_back_as_appended(
            self, log_batches: list[list[PendingEvent]]) -> None:
        with tempfile.TemporaryDirectory() as d:
            store = self.build(Path(d))
            appended = []
            for b in log_batches:
                appended += store.append(b)
            store = self.reopen(store, Path(d))
            try:
                got = list(store.read())
                assert fingerprint(got) == fingerprint(appended)
                assert [r.event for r in got] == [p.event for b in log_batches for p in b]
                assert all(isinstance(r.event, Sampled) for r in got)
            finally:
                store.close()


class TestFileEventLogContract(EventStoreContract):
    def build(self, where: Path) -> EventStore:
        return FileEventLog.open(where / "log")

    def reopen(self, store: EventStore, where: Path) -> EventStore:
        store.close()
        return FileEventLog.open(where / "log")


class TestFileEventLogSmallSegmentsContract(EventStoreContract):
    """The same contract when every few events start a new segment file."""

    def build(self, where: Path) -> EventStore:
        return FileEventLog.open(where / "log", segment_bytes=400)

    def reopen(self, store: EventStore, where: Path) -> EventStore:
        store.close()
        return FileEventLog.open(where / "log", segment_bytes=400)


class TestMemoryEventLogContract(EventStoreContract):
    def build(self, where: Path) -> EventStore:
        return MemoryEventLog()

    def reopen(self, store: EventStore, where: Path) -> EventStore:
        return store  # a memory log lives exactly as long as its object


@pytest.mark.integration
class TestPostgresEventStoreContract(EventStoreContract):
    """The same contract for one log of a PostgreSQL store (a fresh database per test, a new
    log per `build`: hypothesis builds several in one test)."""

    _names = itertools.count(1)

    @pytest.fixture(autouse=True)
    def _database(self, pg_url: str) -> None:
        self.url = pg_url

    def build(self, where: Path) -> EventStore:
        return PostgresEventStore.open(self.url, f"device-{next(self._names)}")

    def reopen(self, store: EventStore, where: Path) -> EventStore:
        assert isinstance(store, PostgresEventStore)
        store.close()
        return PostgresEventStore.open(self.url, store.log_id)
