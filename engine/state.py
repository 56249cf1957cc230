"""The device state folded from events, and the pure `evolve` that folds it.

`evolve(state, event) -> state` never performs I/O and never validates again what was accepted:
it only applies facts. Feature modules register their own folds with `@evolves(EventType)`.
Replay dispatches on the stored type name, so the hot loop is a dict lookup and a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from engine.config import Change, ConfigTree
from engine.keys import KeyRing
from events.device import ConfigurationCommitted
from events.registry import Event, event_from

if TYPE_CHECKING:
    from engine.trustpoints import TrustpointStatus

FIRST_COMMIT_ID = 1000000001


@dataclass(frozen=True, slots=True)
class Commit:
    commit_id: int
    user: str
    label: str
    comment: str
    at: int  # µs since the epoch
    changes: tuple[Change, ...]
    rollback_to: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class CommitHistory:
    """A persistent list of commits, newest first: appending shares everything before."""

    head: Commit | None = None
    rest: CommitHistory | None = None
    count: int = 0

    def push(self, commit: Commit) -> CommitHistory:
        return CommitHistory(commit, self, self.count + 1)

    def __iter__(self) -> Iterator[Commit]:
        node: CommitHistory | None = self
        while node is not None and node.head is not None:
            yield node.head
            node = node.rest

    def __eq__(self, other: object) -> bool:
        # Iterative: the generated __eq__ would recurse once per commit.
        if not isinstance(other, CommitHistory):
            return NotImplemented
        return self.count == other.count and all(a == b for a, b in zip(self, other,
                                                                          strict=True))

    def __hash__(self) -> int:
        return hash((self.count, self.head))

    def find(self, commit_id: int) -> Commit | None:
        return next((c for c in self if c.commit_id == commit_id), None)


@dataclass(frozen=True, slots=True)
class DeviceState:
    seq: int = 0  # the last event folded in
    config: ConfigTree = field(default_factory=ConfigTree)
    commits: CommitHistory = field(default_factory=CommitHistory)
    keys: KeyRing = field(default_factory=KeyRing)  # key pairs and imported keys (engine.keys)
    trustpoints: Mapping[str, TrustpointStatus] = field(
        default_factory=lambda: MappingProxyType({}))

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


E = TypeVar("E", bound=Event)
Fold = Callable[[DeviceState, Any, int], DeviceState]
_FOLDS: dict[str, Fold] = {}


def evolves(event_type: type[E]) -> Callable[[Callable[[DeviceState, E, int], DeviceState]],
                                            Callable[[DeviceState, E, int], DeviceState]]:
    """Register a fold of one event type: `fn(state, event, at_us) -> state`. Several
    features may fold the same event (a commit that removes a trustpoint also drops its
    certificates): their folds are chained in registration order into one callable."""

    def register(fn: Callable[[DeviceState, E, int], DeviceState]
                 ) -> Callable[[DeviceState, E, int], DeviceState]:
        before = _FOLDS.get(event_type.type_name)
        if before is None:
            _FOLDS[event_type.type_name] = fn
        else:
            def chained(state: DeviceState, ev: Any, at: int) -> DeviceState:
                return fn(before(state, ev, at), ev, at)

            _FOLDS[event_type.type_name] = chained
        return fn

    return register


def evolve(state: DeviceState, ev: Event, at: int = 0, seq: int = 0) -> DeviceState:
    fold = _FOLDS.get(ev.type_name)
    new = state if fold is None else fold(state, ev, at)
    return replace(new, seq=seq) if seq else new


def replay_rows(state: DeviceState, rows: Iterable[list[Any]]) -> DeviceState:
    """Fold raw log rows `[seq, stream, type, v, at, actor, correlation, payload, hash]`."""
    folds = _FOLDS
    seq = state.seq
    for row in rows:
        seq, _stream, typ, v, at, _actor, _corr, payload = row[:8]
        fold = folds.get(typ)
        if fold is not None:
            state = fold(state, event_from(typ, v, payload), at)
    return replace(state, seq=seq) if seq != state.seq else state


@evolves(ConfigurationCommitted)
def _committed(state: DeviceState, ev: ConfigurationCommitted, at: int) -> DeviceState:
    changes = tuple(Change.from_wire(c) for c in ev.changes)
    commit = Commit(ev.commit_id, ev.user, ev.label, ev.comment, at, changes, ev.rollback_to)
    return replace(state, config=state.config.apply_all(changes),
                   commits=state.commits.push(commit))
