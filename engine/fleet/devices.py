"""One log as the fleet follower holds it: its kind, how far it is folded, and for a device
its slim folded state and the rows the views show of it (engine/fleet/rows.py). The device's
events are folded with the device's own fold table (`engine.state.replay_rows`), so its
trustpoints' lifecycles are the trustpoint machine's (engine/machines/trustpoint.py).

Loaded by the follower only when it has events to fold: a `fleet` query over views already
caught up never imports the device folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from engine.fleet.rows import DeviceRows, device_rows
from engine.folds import UnfoldedEvent
from engine.state import CommitHistory, DeviceState, replay_rows, with_state
from events.filelog import LogCorrupted
from events.pgstore import GlobalRow, RowDamage
from events.registry import UnknownEventType, event_from
from events.store import GENESIS, chain_hash

_EMPTY = DeviceRows((), ())


class DeviceUnfolded(UnfoldedEvent):
    """An event of a device's log this build does not fold, naming the log."""

    def __init__(self, log_id: str, type_name: str, seq: int) -> None:
        super().__init__(f"device {log_id}", type_name, seq)
        self.log_id = log_id


@dataclass(slots=True)
class Device:
    kind: str  # "device" | "ca"
    seq: int  # the last event folded
    last_at: int  # its time, µs
    state: DeviceState | None  # None for a CA log (counted, not folded)
    rows: DeviceRows

    @classmethod
    def start(cls, kind: str, seq: int, last_at: int) -> Device:
        """A log the follower does not hold yet, at `seq` (its state, if any, to rebuild)."""
        return cls(kind, seq, last_at, DeviceState() if kind == "device" and not seq else None,
                   _EMPTY)

    def copy(self) -> Device:
        return Device(self.kind, self.seq, self.last_at, self.state, self.rows)

    def set_state(self, state: DeviceState) -> None:
        self.state, self.rows = state, device_rows(state)


def fold(dev: Device, log_id: str, rows: list[GlobalRow]) -> None:
    """Fold a device's new events onto it (UnfoldedEvent naming the log if one is of a type
    this build does not fold: the views stop before it, as opening that device would)."""
    if not rows:
        return
    last = rows[-1].record
    dev.seq, dev.last_at = last.seq, last.at
    if dev.state is None:  # a CA log: counted, not folded
        return
    try:
        dev.state = slim(replay_rows(dev.state, (typed_row(r.record) for r in rows)))
    except UnfoldedEvent as e:
        raise DeviceUnfolded(log_id, e.type_name, e.seq) from None
    dev.rows = device_rows(dev.state)


def slim(state: DeviceState) -> DeviceState:
    """The state the follower keeps of a device: without its last 100 commits and its
    `show logging` buffer, which no fold reads back (they are only pushed and appended to)
    and no view shows: a tenth of the memory (measured: ~5 KB against ~64 KB a device)."""
    return with_state(state, commits=CommitHistory((), (), state.commits.count), messages=())


def typed_row(rec: Any) -> tuple[Any, ...]:
    """A Recorded as `replay_rows` takes a typed row. A type this build does not know keeps
    its payload (as events/typed.py does), and the replay refuses it by name and seq."""
    try:
        ev = rec.event
    except UnknownEventType:
        ev = rec.payload
    return (rec.seq, rec.stream, rec.type, rec.v, rec.at, rec.actor, rec.correlation, ev,
            rec.hash)


def rebuild(conn: Any, upto: dict[str, int]) -> dict[str, DeviceState]:
    """Device states folded from their own events, each up to the seq given: one query for
    all of them, each row checked as the store checks it (numbered from 1 without gaps,
    chained, its hash over its stored core: LogCorrupted naming it if not). The stored core
    is `[seq, stream, type, v, at, actor, correlation, payload]` (events/codec.py)."""
    if not upto:
        return {}
    ids, seqs = list(upto), [upto[i] for i in upto]
    cur = conn.execute(
        "SELECT e.log_id, e.position, e.core, e.prev, e.hash FROM trustledger_events e "
        "JOIN unnest(%s::text[], %s::bigint[]) AS d(log_id, upto) "
        "ON e.log_id = d.log_id AND e.seq <= d.upto ORDER BY e.log_id, e.seq", (ids, seqs))
    grouped: dict[str, list[tuple[Any, ...]]] = {i: [] for i in ids}
    chained = dict.fromkeys(ids, GENESIS)
    for log_id, position, stored_core, stored_prev, stored_hash in cur:
        core, prev, h = bytes(stored_core), bytes(stored_prev), bytes(stored_hash)
        seq, stream, typ, v, at, actor, corr, payload = msgpack.unpackb(
            core, raw=False, use_list=False, strict_map_key=True)
        rows = grouped[log_id]
        if seq != len(rows) + 1 or prev != chained[log_id] or chain_hash(prev, core) != h:
            raise LogCorrupted(RowDamage(log_id, position, seq, "hash chain broken"))
        chained[log_id] = h
        rows.append((seq, stream, typ, v, at, actor, corr, event_from(typ, v, dict(payload)),
                     h))
    for log_id, rows in grouped.items():
        if len(rows) != upto[log_id]:
            raise LogCorrupted(RowDamage(log_id, 0, len(rows) + 1,
                                         f"the log ends before seq {upto[log_id]}"))
    return {i: slim(replay_rows(DeviceState(), rows)) for i, rows in grouped.items()}
