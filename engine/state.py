"""The device state folded from events, and the pure `evolve` that folds it.

`evolve(state, event) -> state` never performs I/O and never validates again what was accepted:
it only applies facts. Every device event type and its folds are listed in one table,
`engine/device_folds.py` (built on first use: its folds live in the feature modules, which
import this one); importing this module alone gives the complete folds. Replay dispatches on
the stored type name, so the hot loop is a dict lookup and a call; a stored type the table
does not fold refuses the replay (`engine.folds.UnfoldedEvent`, naming the type and seq).

Live and replay run the same folds. A fold changes the state only through `with_state`: on
the live path that builds a new DeviceState (states are values: a handler may keep the one it
saw), on replay it changes in place the one private state `replay_rows` owns for the loop.
One fold goes further, the commit (a device's commonest event): on replay it applies the
changes in place to a configuration the loop owns and keeps the commit as its event, and
`replay_rows` freezes both once at the end (`OwnedConfig`, `_OwnedHistory`); the property
test in tests/core/test_core_fast_replay.py proves the result, and its snapshot bytes, equal.
"""

from __future__ import annotations

import gc
import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import chain, islice
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.audit.key import AuditKey
from engine.config import Change, ConfigTree, OwnedConfig
from engine.errors import OperatorError, Reason, TrustledgerError
from engine.folds import UnfoldedEvent
from engine.keys import KeyRing
from engine.revocation.cache import CrlCache
from engine.trustpool.pool import TrustpoolState
from engine.validation.folded import ValidationState
from events.registry import Event, known_types
from events.runs import RUN_MAX, RowRuns, Run

if TYPE_CHECKING:
    from engine.folds import Fold, FoldTable, RunFold
    from engine.trustpoints import TrustpointConfig, TrustpointStatus
    from events.device import ConfigurationCommitted, WireChange

FIRST_COMMIT_ID = 1000000001


class Commit(NamedTuple):
    """One commit point. A named tuple: replay builds one per commit, at a fifth of the cost
    of a frozen dataclass, and it is as immutable."""

    commit_id: int
    user: str
    label: str
    comment: str
    at: int  # µs since the epoch
    changes: tuple[Change, ...]
    rollback_to: int = 0


MAX_COMMITS = 100
"""Commits kept for `show configuration commit list` and rollback, as IOS XR keeps its last
100 commit points. Older ones remain in the log (audit, replay --until); the state does not
carry them, which keeps replay memory flat however long the device lives."""


CHUNK = 10
"""Commits per chunk of a CommitHistory: a push copies at most this many references."""


@dataclass(slots=True, eq=False)
class CommitHistory:
    """The newest MAX_COMMITS commits, newest first, and how many there ever were.

    A persistent structure: `newest` (up to CHUNK commits) and `older` (full chunks, newest
    first) are shared between successive histories, so a push copies at most CHUNK
    references instead of the whole history. Up to CHUNK commits beyond MAX_COMMITS stay in
    the last chunk; iteration never shows them, and equality compares what it shows."""

    newest: tuple[Commit, ...] = ()
    older: tuple[tuple[Commit, ...], ...] = ()
    count: int = 0

    def push(self, commit: Commit) -> CommitHistory:
        if len(self.newest) < CHUNK:
            return CommitHistory((commit, *self.newest), self.older, self.count + 1)
        older = (self.newest, *self.older[: MAX_COMMITS // CHUNK - 1])
        return CommitHistory((commit,), older, self.count + 1)

    def __iter__(self) -> Iterator[Commit]:
        return islice(chain(self.newest, *self.older), MAX_COMMITS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CommitHistory):
            return NotImplemented
        return self.count == other.count and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash((self.count, tuple(self)))

    def find(self, commit_id: int) -> Commit | None:
        return next((c for c in self if c.commit_id == commit_id), None)


class _OwnedHistory(CommitHistory):
    """The commit history one replay loop owns alone: a commit is kept as its event and time
    in a bounded deque (no Commit, no chunk copy per event), and `frozen` builds, once, the
    CommitHistory the same pushes would have built: the same commits in the same chunks
    (`newest` holds the last ((count - 1) % CHUNK) + 1, as `push` leaves it), so that a
    snapshot of either is the same bytes."""

    __slots__ = ("added",)

    def __init__(self, start: CommitHistory) -> None:
        super().__init__(start.newest, start.older, start.count)
        self.added: deque[tuple[ConfigurationCommitted, int]] = deque(maxlen=_KEPT)

    def defer(self, ev: ConfigurationCommitted, at: int) -> None:
        self.added.append((ev, at))
        self.count += 1

    def defer_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """`defer` of each row's commit (`row[7]`) and time (`row[4]`), in order."""
        self.added.extend((row[7], row[4]) for row in rows[-_KEPT:])
        self.count += len(rows)

    def push(self, commit: Commit) -> CommitHistory:
        return self.frozen().push(commit)  # not used by the folds: the live way, correct

    def __iter__(self) -> Iterator[Commit]:
        return iter(self.frozen())

    def frozen(self) -> CommitHistory:
        if not self.added:
            return CommitHistory(self.newest, self.older, self.count)
        kept = [_commit_of(ev, at) for ev, at in self.added]
        if self.count - len(self.added) and len(kept) < _KEPT:  # the start's commits first
            kept[:0] = reversed(list(chain(self.newest, *self.older)))
        k = (self.count - 1) % CHUNK + 1
        rest = kept[:-k]
        older = tuple(tuple(reversed(rest[i - CHUNK:i]))
                      for i in range(len(rest), 0, -CHUNK))[:MAX_COMMITS // CHUNK]
        return CommitHistory(tuple(reversed(kept[-k:])), older, self.count)


_KEPT = MAX_COMMITS + CHUNK  # the most commits a CommitHistory holds (see its docstring)


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The device's folded state: the configuration and every fact the log records."""

    seq: int = 0  # the last event folded in
    config: ConfigTree = field(default_factory=ConfigTree)
    commits: CommitHistory = field(default_factory=CommitHistory)
    keys: KeyRing = field(default_factory=KeyRing)  # key pairs and imported keys (engine.keys)
    trustpoints: Mapping[str, TrustpointStatus] = field(
        default_factory=lambda: MappingProxyType({}))
    messages: tuple[tuple[int, str], ...] = ()  # (µs, %FACILITY-SEV-MNEMONIC text), newest last
    clock_offset_us: int = 0  # engine clock - system clock, as `clock set` recorded (ClockSet)
    # Each configured trustpoint's configuration, typed: folded from the running config once,
    # when the commit that changes it arrives (engine.trustpoints).
    trustpoint_configs: Mapping[str, TrustpointConfig] = field(
        default_factory=lambda: MappingProxyType({}))
    trustpool: TrustpoolState = field(default_factory=TrustpoolState)  # engine.trustpool
    crls: CrlCache = field(default_factory=CrlCache)  # engine.revocation: the CRL cache
    validations: ValidationState = field(default_factory=ValidationState)  # PeerValidated
    audit_key: AuditKey | None = None  # the log's audit key (engine.audit), once made

    @property
    def next_commit_id(self) -> int:
        return FIRST_COMMIT_ID + self.commits.count

    @property
    def hostname(self) -> str:
        line = self.config.line(("hostname",))
        return line.split(" ", 1)[1] if line else "ios"

    @property
    def domain(self) -> str:
        line = self.config.line(("domain name",))
        return line.split(" ", 2)[2] if line else ""


def _replacer(cls: type[Any]) -> Callable[..., Any]:
    """A `dataclasses.replace` for one class, generated once: replay calls it per event, and
    the generic one (a loop over fields) costs several times more."""
    names = [f.name for f in fields(cls)]
    params = ", ".join(f"{n}=_KEEP" for n in names)
    args = ", ".join(f"s.{n} if {n} is _KEEP else {n}" for n in names)
    scope: dict[str, Any] = {"_C": cls, "_KEEP": object()}
    exec(f"def replace(s, *, {params}):\n    return _C({args})", scope)  # noqa: S102 - our own field names
    fn: Callable[..., Any] = scope["replace"]
    return fn


_replace_state: Callable[..., DeviceState] = _replacer(DeviceState)


class _ReplayState(DeviceState):
    """A DeviceState that one replay loop owns alone (see `with_state`); never seen outside
    `replay_rows`, which makes one at the start and turns it into a DeviceState at the end."""

    __slots__ = ()


_set_field = object.__setattr__


def with_state(state: DeviceState, **changes: Any) -> DeviceState:
    """`dataclasses.replace` for DeviceState, fast: the way every device fold changes the
    state.

    Replay's shortcut, and the only place it lives: a fold given the `_ReplayState` of a
    replay loop gets that same object back, changed in place (no other code holds it, so
    nobody can see the change), instead of a new state per event. The folds are the same
    functions either way; the live path's states are never changed after they are built."""
    if type(state) is _ReplayState:
        for name, value in changes.items():
            _set_field(state, name, value)
        return state
    return _replace_state(state, **changes)


_STATE_FIELDS = tuple(f.name for f in fields(DeviceState))

_TABLE: list[FoldTable[DeviceState]] = []  # the device fold table, once loaded


def device_folds() -> FoldTable[DeviceState]:
    """The device aggregate's fold table (`engine/device_folds.py`)."""
    if not _TABLE:
        from engine.device_folds import DEVICE_FOLDS  # imports the feature modules' folds

        _TABLE.append(DEVICE_FOLDS)
    return _TABLE[0]


FOLD_VERSION = 13  # 2: `trustpoint_configs` folded at commit; 3: the chunked CommitHistory;
# 4: the CRL cache (`crls`); 5: `validations` (PeerValidated; CrlFetchFailed's back-off);
# 6: the audit key (`audit_key`); 7: renewal state, next/shadow certificates and expiry
# alerts in TrustpointStatus; 8: CA rollover (RolloverState, shadow CA folds); 9: the CRL
# fetch back-off keyed by source URI; 10: router certificates carry their revocation,
# trustpoints their CRL refresh record; 11: a commit cancels a renewal nothing will retry,
# daily GetCACaps re-checks, a stale CRL said once, revocations during a re-enrollment;
# 12: the CRL fetch back-off keeps why each source failed; 13: a renewal's consecutive
# failures (the retry's back-off), reset by a commit that changes its trustpoint
"""Bump this when a fold's logic changes while the state's shape stays the same: snapshots
written by the older folds then no longer fit this build (see `folds_fingerprint`)."""


FOLDS_FINGERPRINT = bytes.fromhex(
    "00c748442c8bbf2ac314274cc719d445751b1b0664e4f7944f8761c6f0dc1948")
"""`folds_fingerprint()` of this build, written out: snapshots record and check this value,
so that opening from a snapshot loads neither the fold table nor the event modules to
compute it (issue 12's start-up row). tests/core/test_core_fold_tables.py recomputes it and
fails, naming the new value, when it is stale: a changed `FOLD_VERSION`, a folded event type
added or removed, or a new schema version of one."""


def folds_fingerprint() -> bytes:
    """SHA-256 of what a folded state depends on besides its shape: `FOLD_VERSION` and every
    folded event type with its schema version. A snapshot records it (as `FOLDS_FINGERPRINT`)
    and is used only by a build with the same one (a new event version or a changed fold may
    fold differently)."""
    table = device_folds()  # first: loading it imports every event module it folds
    registered = known_types()
    folded = sorted(f"{name}@{registered[name].version}" for name in table.folded)
    return hashlib.sha256(f"folds v{FOLD_VERSION}: {' '.join(folded)}".encode()).digest()


def evolve(state: DeviceState, ev: Event, at: int = 0, seq: int = 0) -> DeviceState:
    new = device_folds().fold(state, ev, at, seq)
    return _replace_state(new, seq=seq) if seq else new


def replay_rows(state: DeviceState, rows: Iterable[Sequence[Any]]) -> DeviceState:
    """Fold typed log rows `[seq, stream, type, v, at, actor, correlation, event, hash]`
    (`FileEventLog.read_rows(..., typed=True)`: each payload already decoded into its event).

    The folds run on a private `_ReplayState` copy of `state`, which `with_state` changes in
    place (one object for the whole replay, not one per event); the result is a plain
    DeviceState again. Rows read as `RowRuns` are folded run by run: a run of one type with
    a run fold (`FoldTable.runs`, the commits) in one call. The cyclic garbage collector is
    paused for the loop: folding allocates millions of short-lived, acyclic objects (freed
    by reference counting), and each full collection would walk the whole state again
    (measured: 40% of a replay). No rows (a snapshot at the head): `state` as it is, and the
    fold table is not loaded."""
    runs = rows.runs() if isinstance(rows, RowRuns) else _runs_of(rows)
    first = next(runs, None)  # the whole tail is read (and its chain checked) either way
    if first is None:
        return state
    owned: DeviceState = _ReplayState(*(getattr(state, f) for f in _STATE_FIELDS))
    paused = gc.isenabled()
    gc.disable()
    try:
        seq, owned = _fold_runs(state.seq, owned, chain((first,), runs))
    finally:
        if paused:
            gc.enable()
    config, commits = owned.config, owned.commits
    return _replace_state(  # the plain DeviceState of the same fields
        owned, seq=seq,
        config=config.frozen() if type(config) is OwnedConfig else config,
        commits=commits.frozen() if type(commits) is _OwnedHistory else commits)


def _runs_of(rows: Iterable[Sequence[Any]]) -> Iterator[Run]:
    """Rows as runs of rows of several types (folded row by row)."""
    it = iter(rows)
    while chunk := list(islice(it, RUN_MAX)):
        yield "", chunk


def _fold_runs(seq: int, owned: DeviceState, runs: Iterable[Run]) -> tuple[int, DeviceState]:
    """Fold each run into `owned`: the seq of the last row folded (`seq` if none), and the
    state."""
    table = device_folds()
    folds, run_folds = table.by_name, table.runs
    for name, rows in runs:
        row: Sequence[Any] | None = None  # the row folding (row by row): an error names it
        try:
            if name in run_folds:
                owned = run_folds[name](owned, rows)
            elif name:
                fold = folds.get(name) or table.require(name, rows[0][0])
                for row in rows:
                    owned = fold(owned, row[7], row[4])
            else:
                for row in rows:
                    fold = folds.get(row[2]) or table.require(row[2], row[0])
                    owned = fold(owned, row[7], row[4])
        except TrustledgerError:
            raise
        except Exception as e:  # an event this build never wrote (a forged frame or row)
            raise UnfoldableLog(rows if row is None else (row,), e) from e
        seq = rows[-1][0]
    return seq, owned


class UnfoldableLog(UnfoldedEvent):
    """A stored event its fold cannot take. Either the record is not what its writer wrote
    (altered, then chained and checksummed anew: the chain proves the bytes, not the writer;
    or written by another build), or this build's fold has a bug: the refusal blames
    neither. An UnfoldedEvent, so that every reader refusing those (the CLI, the fleet's
    quarantine) refuses this one too; `seq`, `type_name`: the first row of the run that
    failed."""

    def __init__(self, rows: Sequence[Sequence[Any]], e: Exception) -> None:
        first, last = rows[0][0], rows[-1][0]
        what = (f"event {rows[0][2]} at seq {first} does" if first == last
                else f"{rows[0][2]} events at seq {first}-{last} do")
        OperatorError.__init__(self, Reason.BAD_DATA,
                               f"The device log's {what} not fold in this build "
                               f"({type(e).__name__}: {str(e)[:120]}): "
                               "the log holds an event this build cannot apply (altered, or "
                               "written by another build), or this build has a bug. Refusing "
                               "to open; 'trustledger log verify' checks the log's chain.")
        self.type_name, self.seq = rows[0][2], first


def fold_commit(state: DeviceState, ev: ConfigurationCommitted, at: int) -> DeviceState:
    if type(state) is _ReplayState:
        config, commits = _owned(state)
        config.apply_wire(ev.changes)
        commits.defer(ev, at)
        return state
    commit = _commit_of(ev, at)
    return with_state(state, config=state.config.apply_all(commit.changes),
                      commits=state.commits.push(commit))


def _owned(state: DeviceState) -> tuple[OwnedConfig, _OwnedHistory]:
    """The configuration and commit history of a replay loop's state, as ones the loop owns:
    `fold_commit` in a replay changes the configuration in place and keeps a commit as its
    event (engine.config.OwnedConfig, _OwnedHistory), instead of a new tree, a Commit and a
    new history per event; `replay_rows` freezes both at the end. What the replay folds to
    is the same (tests/core/test_core_fast_replay.py)."""
    config, commits = state.config, state.commits
    if type(config) is not OwnedConfig:
        config = OwnedConfig.of(config)
        _set_field(state, "config", config)
    if type(commits) is not _OwnedHistory:
        commits = _OwnedHistory(commits)
        _set_field(state, "commits", commits)
    return config, commits


def commit_run(then: Sequence[Fold[DeviceState]],
               touching: Callable[[Sequence[Iterable[WireChange]]], Iterable[int]],
               ) -> RunFold[DeviceState]:
    """The run fold (engine.folds) of a run of commits whose folds are `fold_commit` and then
    `then`, which change nothing for a commit that `touching` (given the run's commits'
    changes, the indexes of those `then` concerns) leaves out. The commits' changes are
    applied in place in order, as one stream of changes up to each commit `then` concerns;
    the history catches up with that commit, then `then` folds it; the rest of the history's
    commits are added at the end of the run in one step."""

    def fold_commits(state: DeviceState, rows: Sequence[Sequence[Any]]) -> DeviceState:
        if type(state) is not _ReplayState:  # not replay's own state: the folds one by one
            for row in rows:
                for fold in (fold_commit, *then):
                    state = fold(state, row[7], row[4])
            return state
        config, commits = _owned(state)
        changes = [row[7].changes for row in rows]
        start = 0
        for i in touching(changes):
            config.apply_wire(chain.from_iterable(changes[start:i + 1]))
            commits.defer_rows(rows[start:i + 1])
            start = i + 1
            for fold in then:
                state = fold(state, rows[i][7], rows[i][4])
        config.apply_wire(chain.from_iterable(changes[start:]))
        commits.defer_rows(rows[start:])
        return state

    return fold_commits


def _commit_of(ev: ConfigurationCommitted, at: int) -> Commit:
    return Commit(ev.commit_id, ev.user, ev.label, ev.comment, at,
                  tuple(map(_make_change, ev.changes)), ev.rollback_to)


_make_change = Change._make
