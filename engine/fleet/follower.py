"""The fleet views' catch-up subscription: reads the store's global order and folds it into
the view tables, exactly once.

Theory of operation. The store gives every event a global `position` and promises that a
reader following `position` never skips an event committed late (events/pgstore.py
`read_all`). The follower keeps how far it has folded in `trustledger_fleet_position`. One
`step`:

1. reads the next events after its position (`read_all`, on a connection of its own, so the
   read holds no transaction and no transaction id: the store's no-skip rule is not held
   back by the follower itself);
2. opens one transaction, locks its position row (`FOR UPDATE`) and checks it still says
   what step 1 read after; another follower that moved it meanwhile (a `fleet follow` beside
   a `fleet certificates`) makes this step start again from there, its cache dropped;
3. folds each device's new events onto that device's state, with the device's own fold
   table (engine.state.replay_rows: the trustpoint lifecycle is the machine's,
   engine/machines/trustpoint.py), and writes the device's rows (engine/fleet/rows.py);
4. sets the position to the last event folded, and commits: the rows and the position
   change together or not at all. A follower killed anywhere leaves the views exactly at
   their last committed position; the next one goes on from there, and the views end as one
   uninterrupted run leaves them (tests/fleet/test_fleet_restart.py).

Device states are a cache, never the truth: a device whose state the follower does not hold
at exactly the seq its row says (a new process, an evicted entry, another follower's step)
is rebuilt from its own events up to that seq (engine/fleet/devices.py `rebuild`), read
from the store. Only a committed step updates the cache. The cached states are `slim`: the
commit history and the logging buffer, which the views do not use and no fold reads back,
are dropped. A CA's log (kind `ca`) is counted (events, last event time) but not folded:
its events are the CA's, not a device's.

Quarantine. One bad log never stops the others. A log is quarantined (a row in
`trustledger_fleet_quarantine`: the seq and why, written in the step's transaction) when
- `read_all` finds one of its rows damaged: the step folds the rows before it, quarantines
  the log and sets the position to the damaged row's;
- one of its events is of a type this build does not fold as a device's (a newer writer's,
  or a CA's in a log whose header says `device`: a log is folded by what its events are):
  the events before it are folded;
- its rows no longer rebuild (damaged after they were folded): its views stay as they were.
A quarantined log's later events are skipped (never folded onto a state that missed one);
its device row stays, and `fleet devices` shows why (engine/fleet/queries.py `devices`).

Release (`release`, `trustledger fleet release DEVICE`), once the log was repaired: in one
transaction that holds the position row (so no step runs meanwhile), the log's events up to
the views' position are read again and checked as a step checks them (numbered, chained,
hashed, and for a device folded with its fold table); only if all of it holds are its rows
rewritten from that fold and its quarantine row deleted. Its later events are then folded
by the next step like any other log's. Still damaged: `ReleaseRefused`, nothing changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.fleet.names import name_key
from engine.fleet.queries import FleetAnswer, Quarantined, quarantined
from engine.fleet.schema import ensure_fleet_schema
from events.filelog import LogCorrupted
from events.pgstore import GlobalRow, RowDamage, connect, read_all, wait_for_append

if TYPE_CHECKING:
    from engine.fleet.devices import Device

BATCH = 10_000  # events read and folded per transaction
CACHE = 20_000  # device states kept between steps (a miss rebuilds one from its events)


@dataclass(frozen=True, slots=True)
class Applied:
    """What one committed step folded: the position it reached, and each event as
    (log_id, seq) in global order (the benchmark times commit -> view with these)."""

    position: int
    events: tuple[tuple[str, int], ...]


def database(url: str) -> str:
    """The database `url` names, as libpq reads it (never a password or a parameter)."""
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url).get("dbname", ""))


class NotAStore(Exception):
    """The database holds no trustledger event store (no `trustledger_events` table)."""


class ReleaseRefused(Exception):
    """A quarantine not lifted (the text says why); `still_bad`: the log still fails."""

    def __init__(self, text: str, still_bad: bool) -> None:
        super().__init__(text)
        self.text, self.still_bad = text, still_bad


class _Moved(Exception):
    """Another follower moved the position between the read and the lock."""


class FleetFollower:
    """One follower of the store at `url`: `step`, `catch_up`, `follow`."""

    def __init__(self, url: str, *, name: str = "fleet", batch: int = BATCH,
                 cache: int = CACHE) -> None:
        self.url, self.name, self.batch, self.cache_size = url, name, batch, cache
        self._reader = connect(url)
        self._writer = connect(url)
        self._cache: OrderedDict[str, Device] = OrderedDict()
        try:
            store, views = self._writer.execute(
                "SELECT to_regclass('trustledger_events') IS NOT NULL, "
                "to_regclass('trustledger_fleet_quarantine') IS NOT NULL").fetchone() or (
                    False, False)
            if not store:
                raise NotAStore(f"The database {database(url)!r} holds no trustledger "
                                "event store (no trustledger_events table).")
            if not views:
                ensure_fleet_schema(self._writer)
            self._writer.execute(
                "INSERT INTO trustledger_fleet_position (name, position) SELECT %s, 0 "
                "WHERE NOT EXISTS (SELECT 1 FROM trustledger_fleet_position WHERE name = %s) "
                "ON CONFLICT (name) DO NOTHING", (name, name))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

    def __enter__(self) -> FleetFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def position(self) -> int:
        row = self._writer.execute("SELECT position FROM trustledger_fleet_position "
                                   "WHERE name = %s", (self.name,)).fetchone()
        self._writer.commit()
        return int(row[0]) if row else 0

    def answer(self, ask: Callable[[Any], Sequence[Any]], now_us: int) -> FleetAnswer:
        """`ask(conn)` over the views and the position they stood at, in one snapshot."""
        w = self._writer
        with w.transaction():
            w.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = w.execute("SELECT position FROM trustledger_fleet_position "
                            "WHERE name = %s", (self.name,)).fetchone()
            rows = tuple(ask(w))
        return FleetAnswer(int(row[0]) if row else 0, now_us, rows)

    def quarantined(self) -> list[Quarantined]:
        """The logs the views stopped folding (engine/fleet/queries.py `quarantined`)."""
        with self._writer.transaction():
            return quarantined(self._writer)

    def release(self, log_id: str) -> tuple[int, int]:
        """Lift `log_id`'s quarantine if its log, re-checked up to the views' position, is
        whole and folds (module doc, "Release"): (the seq it is folded to, the position).
        ReleaseRefused if it is not quarantined or still fails; nothing changes then."""
        w = self._writer
        with w.transaction():
            row = w.execute("SELECT position FROM trustledger_fleet_position WHERE name = %s "
                            "FOR UPDATE", (self.name,)).fetchone()
            at = int(row[0]) if row else 0
            held = w.execute("SELECT seq, reason FROM trustledger_fleet_quarantine WHERE "
                             "device = %s", (log_id,)).fetchone()
            if held is None:
                known = w.execute("SELECT 1 FROM trustledger_logs WHERE log_id = %s",
                                  (log_id,)).fetchone()
                raise ReleaseRefused(f"{log_id} is not quarantined: nothing to release "
                                     "(fleet devices shows each log's status)." if known else
                                     f"The store has no log {log_id}.", False)
            dev = _recheck(w, self.url, log_id, at)
            _write(w, {log_id: dev}, [log_id])
            w.execute("DELETE FROM trustledger_fleet_quarantine WHERE device = %s", (log_id,))
        self._cache.pop(log_id, None)
        return dev.seq, at

    # -- stepping ----------------------------------------------------------------------------

    def step(self) -> Applied | None:
        """Fold the next batch, in one transaction; None when there was nothing to fold. A
        damaged row ends the batch: the rows before it are folded and its log quarantined."""
        while True:
            after = self.position
            damaged: RowDamage | None = None
            try:
                rows = read_all(self._reader, after, self.batch)
            except LogCorrupted as e:
                if not isinstance(e.damage, RowDamage):
                    raise
                damaged, rows = e.damage, self._before(after, e.damage.offset)
            self._reader.commit()
            if not rows and damaged is None:
                return None
            try:
                return self._apply(after, rows, damaged)
            except _Moved:
                self._cache.clear()  # another follower folded these: our states are behind

    def _before(self, after: int, position: int) -> list[GlobalRow]:
        """The events after `after` that precede the damaged row at `position` (read_all
        reached it, so they are all settled, and fewer than a batch)."""
        row = self._reader.execute("SELECT count(*) FROM trustledger_events WHERE position > %s"
                                   " AND position < %s", (after, position)).fetchone()
        n = int(row[0]) if row else 0
        return read_all(self._reader, after, n) if n else []

    def catch_up(self) -> int:
        """Fold until the store has nothing more; returns how many events were folded."""
        done = 0
        while (applied := self.step()) is not None:
            done += len(applied.events)
        return done

    def follow(self, stop: threading.Event, *, wake_s: float = 1.0,
               on_step: Callable[[Applied], None] | None = None) -> None:
        """Keep the views current until `stop` is set: catch up, then sleep until the store
        notifies an append (LISTEN/NOTIFY) or `wake_s` passes, and catch up again."""
        listener = connect(self.url)
        try:
            while not stop.is_set():
                while (applied := self.step()) is not None:
                    if on_step is not None:
                        on_step(applied)
                    if stop.is_set():
                        return
                wait_for_append(listener, wake_s)
        finally:
            listener.close()

    # -- one transaction ---------------------------------------------------------------------

    def _apply(self, after: int, rows: Sequence[GlobalRow],
               damaged: RowDamage | None = None) -> Applied:
        """Fold `rows` (and quarantine the log of `damaged`, the row that ends them) in one
        transaction, and move the position past them."""
        w = self._writer
        with w.transaction():
            row = w.execute("SELECT position FROM trustledger_fleet_position WHERE name = %s "
                            "FOR UPDATE", (self.name,)).fetchone()
            if row is None or int(row[0]) != after:
                raise _Moved
            held = quarantined_logs(w)
            by_log: dict[str, list[GlobalRow]] = {}
            for r in rows:
                if r.log_id not in held:  # a quarantined log's later events: skipped
                    by_log.setdefault(r.log_id, []).append(r)
            devices, found = self._load(list(by_log))
            changed = self._fold(devices, by_log, found)
            if damaged is not None and damaged.segment not in held:
                found.setdefault(damaged.segment, (damaged.seq or 0, damaged.reason))
            _write(w, {i: d for i, d in devices.items() if i not in found},
                   [i for i in changed if i not in found])
            _quarantine(w, found, devices)
            end = damaged.offset if damaged is not None else rows[-1].position
            w.execute("UPDATE trustledger_fleet_position SET position = %s WHERE name = %s",
                      (end, self.name))
        for log_id in found:
            self._cache.pop(log_id, None)
        self._remember({i: d for i, d in devices.items() if i not in found})
        return Applied(end, tuple((r.log_id, r.record.seq) for r in rows))

    def _fold(self, devices: dict[str, Device], by_log: dict[str, list[GlobalRow]],
              found: dict[str, tuple[int, str]]) -> list[str]:
        """Fold each log's new events onto its device; returns the logs whose rows changed.
        A log that holds an event this build does not fold as a device's (a newer writer's,
        or a CA's in a log that says `device`) is folded up to it and added to `found`, with
        the seq and why, to quarantine; the logs already in `found` are not folded."""
        from engine.fleet.devices import DeviceUnfolded, fold  # loaded when there is work

        skip, changed = set(found), []
        for log_id, mine in by_log.items():
            if log_id in skip:
                continue
            dev = devices[log_id]
            new = [r for r in mine if r.record.seq > dev.seq]
            saved, before = dev.copy(), dev.rows
            try:
                fold(dev, log_id, new)
            except DeviceUnfolded as e:
                dev = devices[log_id] = saved
                fold(dev, log_id, [r for r in new if r.record.seq < e.seq])
                found[log_id] = (e.seq, f"event type {e.type_name} is not one this build "
                                        "folds as a device's")
            if dev.rows != before:
                changed.append(log_id)
        return changed

    def _load(self, log_ids: list[str]) -> tuple[dict[str, Device], dict[str, tuple[int, str]]]:
        """Each log's device as the views hold it now (inside the step's transaction): the
        cached one if it is at the seq the views say, else rebuilt. Copies: the cache
        changes only once the step commits. Also the logs whose stored events no longer
        rebuild (damaged since they were folded), with the seq and why, to quarantine."""
        from engine.fleet.devices import Device, rebuild

        w = self._writer
        held = {r[0]: (str(r[1]), int(r[2]), int(r[3])) for r in w.execute(
            "SELECT device, kind, seq, last_at FROM trustledger_fleet_devices "
            "WHERE device = ANY(%s)", (log_ids,))}
        kinds = {r[0]: str(r[1]) for r in w.execute(
            "SELECT log_id, kind FROM trustledger_logs WHERE log_id = ANY(%s)",
            ([i for i in log_ids if i not in held],))}
        out: dict[str, Device] = {}
        stale: dict[str, int] = {}
        for log_id in log_ids:
            kind, seq, last_at = held.get(log_id) or (kinds.get(log_id, "device"), 0, 0)
            got = self._cache.get(log_id)
            if got is not None and got.seq == seq:
                out[log_id] = got.copy()
            else:
                out[log_id] = Device.start(kind, seq, last_at)
                if kind == "device" and seq:
                    stale[log_id] = seq
        damaged: dict[str, tuple[int, str]] = {}
        while True:
            try:
                states = rebuild(w, stale)
                break
            except LogCorrupted as e:
                d = e.damage
                if d.segment not in stale:
                    raise
                del stale[d.segment]
                damaged[d.segment] = (d.seq or 0, d.reason)
        for log_id, state in states.items():
            out[log_id].set_state(state)
        return out, damaged

    def _remember(self, devices: dict[str, Device]) -> None:
        for log_id, dev in devices.items():
            self._cache[log_id] = dev
            self._cache.move_to_end(log_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _recheck(conn: Any, url: str, log_id: str, at: int) -> Device:
    """`log_id` as the views would hold it had it never been quarantined: its events up to
    position `at`, checked and (a device's) folded; ReleaseRefused(still_bad) naming the
    first thing still wrong."""
    from engine.fleet.devices import Device, rebuild
    from engine.folds import UnfoldedEvent
    from events.pgstore import PostgresEventStore
    from events.registry import UnknownEventType

    row = conn.execute(
        "SELECT l.kind, (SELECT max(seq) FROM trustledger_events e WHERE e.log_id = l.log_id "
        "AND e.position <= %s) FROM trustledger_logs l WHERE l.log_id = %s",
        (at, log_id)).fetchone()
    kind, upto = (str(row[0]), int(row[1] or 0)) if row else ("device", 0)
    try:
        if kind == "device":
            state = rebuild(conn, {log_id: upto})[log_id] if upto else None
        else:  # a CA's log: counted, not folded; its chain checked as a store read does
            with PostgresEventStore.open(url, log_id, kind=kind, readonly=True) as log:
                deque(log.read_rows(), maxlen=0)  # every row read is checked
            state = None
    except LogCorrupted as e:
        raise ReleaseRefused(f"{log_id} is still damaged at seq {e.damage.seq}: "
                             f"{e.damage.reason}.", True) from None
    except UnfoldedEvent as e:
        raise ReleaseRefused(f"{log_id} still holds at seq {e.seq} an event of type "
                             f"{e.type_name}, which this build does not fold as a device's.",
                             True) from None
    except UnknownEventType as e:
        raise ReleaseRefused(f"{log_id} still holds an event this build does not know "
                             f"({e}).", True) from None
    last = conn.execute("SELECT at FROM trustledger_events WHERE log_id = %s AND seq = %s",
                        (log_id, upto)).fetchone()
    dev = Device.start(kind, upto, int(last[0]) if last else 0)
    if state is not None:
        dev.set_state(state)
    return dev


# -- writing the rows ------------------------------------------------------------------------


def quarantined_logs(conn: Any) -> dict[str, tuple[int, str]]:
    """The quarantined logs: log_id -> (the seq the follower stopped at, why)."""
    return {str(r[0]): (int(r[1]), str(r[2])) for r in conn.execute(
        "SELECT device, seq, reason FROM trustledger_fleet_quarantine")}


def _quarantine(conn: Any, found: dict[str, tuple[int, str]],
                devices: dict[str, Device]) -> None:
    """Record each log found damaged or unfoldable, and its device row as folded so far
    (a row even for a log damaged at its first event: `fleet devices` lists it)."""
    for log_id, (seq, reason) in found.items():
        conn.execute("INSERT INTO trustledger_fleet_quarantine (device, seq, reason) "
                     "VALUES (%s, %s, %s) ON CONFLICT (device) DO NOTHING",
                     (log_id, seq, reason))
        dev = devices.get(log_id)
        if dev is not None and dev.state is not None and dev.seq:
            _write(conn, {log_id: dev}, [log_id])  # what preceded the bad event
        else:
            conn.execute(
                "INSERT INTO trustledger_fleet_devices (device, kind, seq, last_at, "
                "trustpoints, certificates) SELECT %s, coalesce((SELECT kind FROM "
                "trustledger_logs WHERE log_id = %s), 'device'), 0, 0, 0, 0 "
                "ON CONFLICT (device) DO NOTHING", (log_id, log_id))


def _write(conn: Any, devices: dict[str, Device], changed: Iterable[str]) -> None:
    """Upsert every touched device's row; replace the trustpoint and certificate rows of
    those whose rows changed."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO trustledger_fleet_devices AS d (device, kind, seq, last_at, "
            "trustpoints, certificates) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (device) DO UPDATE SET seq = EXCLUDED.seq, last_at = EXCLUDED.last_at,"
            " trustpoints = EXCLUDED.trustpoints, certificates = EXCLUDED.certificates",
            [(i, d.kind, d.seq, d.last_at, len(d.rows.trustpoints), len(d.rows.certificates))
             for i, d in devices.items()])
        changed = list(changed)
        if not changed:
            return
        cur.execute("DELETE FROM trustledger_fleet_trustpoints WHERE device = ANY(%s)",
                    (changed,))
        cur.execute("DELETE FROM trustledger_fleet_certificates WHERE device = ANY(%s)",
                    (changed,))
        with cur.copy("COPY trustledger_fleet_trustpoints (device, trustpoint, state, "
                      "certificates) FROM STDIN") as copy:
            for i in changed:
                for t in devices[i].rows.trustpoints:
                    copy.write_row((i, t.trustpoint, t.state, t.certificates))
        with cur.copy("COPY trustledger_fleet_certificates (device, ord, trustpoint, kind, "
                      "serial, subject, issuer, issuer_key, not_after, revoked) "
                      "FROM STDIN") as copy:
            for i in changed:
                for n, c in enumerate(devices[i].rows.certificates):
                    copy.write_row((i, n, c.trustpoint, c.kind, c.serial, c.subject,
                                    c.issuer, _issuer_key(c.issuer), c.not_after, c.revoked))


_KEYS: dict[str, str] = {}


def _issuer_key(issuer: str) -> str:
    """`name_key` of an issuer as the router prints it, remembered (a fleet has few)."""
    key = _KEYS.get(issuer)
    if key is None:
        try:
            key = name_key(issuer)
        except ValueError:  # an empty DN, or a value the printer left unusual
            key = issuer.casefold()
        if len(_KEYS) > 10_000:
            _KEYS.clear()
        _KEYS[issuer] = key
    return key
