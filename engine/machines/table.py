"""A state machine as data: a literal table of edges, turned into a `transitions.Machine`.

How one machine is used (the three machines in this package follow it):
- `decide` asks the machine. The table's one model (its state, the aggregate it describes as
  `subject`, and the guard methods the table names) is set to the aggregate and the command's
  trigger is fired on it through `transitions`: the trigger must be legal from that state and
  the edge's guards must hold. `Table.fire` answers with the trigger taken and where it leads,
  or None (illegal here). The machine is built at the first question (`transitions` is not
  imported by a process that only folds).
- `evolve` takes the destination from the same table, but never fires a trigger: replay folds
  millions of events and a `transitions` trigger per event would cost more than the whole fold.
  `Table.destination` is one dict lookup, `(state, trigger) -> state`, precomputed from the
  edges the machine is built from (a test checks the machine says the same). So that a lookup
  is enough, a trigger has one destination from each source (a conditioned trigger is not
  split by its guards into two places; the second edge gets its own trigger name). A test
  walks every event type through the machine and the fold.
- `trustledger diagrams` draws the machine (`dot_source`): the picture is of the machine
  decide uses, not of a copy.

Guards are model methods, named in an edge's `conditions` (all must hold) or `unless` (none may
hold). The model declares `state`, `subject` and `trigger` itself, and the machine is built
with `model_override=True`, so it binds only `trigger` (mypy sees the model's real methods).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from transitions import Machine

S = TypeVar("S", bound=enum.Enum)


class IllegalTransition(Exception):
    """The log holds a fact the table says cannot happen from the state it found: a bug (or a
    log no build of ours wrote), never an operator's mistake."""


@dataclass(frozen=True)
class Edge(Generic[S]):
    """`trigger` leads from each of `sources` to `dest` (None: it stays where it is)."""

    trigger: str
    sources: tuple[S, ...]
    dest: S | None
    conditions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    note: str = ""


class Model:
    """The base of a table's model: `state`, the aggregate its guards read (`subject`), and
    `trigger`, which the table's machine binds on the instance when it is built
    (`model_override=True` binds only what the model declares, so it is declared here, once)."""

    state: enum.Enum
    subject: Any

    def trigger(self, name: str) -> bool:
        raise TypeError(f"{type(self).__name__} is not the model of a Table: only a Table's "
                        f"machine binds trigger (asked to fire {name!r})")


def _skip_binding_warnings() -> None:
    """`transitions` warns once for every convenience method it does not bind to a model that
    declares its own (`model_override=True`): that is the choice, not news. Installed with
    the first machine, as `transitions` (and `logging`) load then, not at start-up."""
    import logging

    class SkippedBindings(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "due to model override policy" not in record.getMessage()

    logger = logging.getLogger("transitions.core")
    if not any(type(f).__name__ == "SkippedBindings" for f in logger.filters):
        logger.addFilter(SkippedBindings())


class Table(Generic[S]):
    def __init__(self, name: str, states: Sequence[S], initial: S,
                 edges: Sequence[Edge[S]], model: Model) -> None:
        self.name = name
        self.states = tuple(states)
        self.initial = initial
        self.edges = tuple(edges)
        self._destinations: dict[tuple[S, str], S] = {}
        for e in self.edges:
            for source in e.sources:
                dest = e.dest or source
                if self._destinations.setdefault((source, e.trigger), dest) is not dest:
                    raise ValueError(f"{name}: {e.trigger} from {source.name} leads to two "
                                     "states: one destination per trigger and source")
        self._triggers = frozenset(e.trigger for e in self.edges)
        # One model, bound once (binding per question would cost more than the question):
        # each question sets its state and subject, under the lock.
        self._model = model
        self._machine: Machine | None = None
        self._lock = threading.Lock()

    @property
    def machine(self) -> Machine:
        """The `transitions` machine, built at the first question: replay (and a process that
        only folds, like a CA worker or a `show`) never imports `transitions`."""
        return self._built()

    def _built(self) -> Machine:
        if self._machine is None:
            from transitions import Machine

            _skip_binding_warnings()
            self._machine = Machine(
                model=self._model, states=list(self.states), initial=self.initial,
                transitions=[{"trigger": e.trigger, "source": [s.name for s in e.sources],
                              "dest": e.dest.name if e.dest is not None else None,
                              "conditions": list(e.conditions), "unless": list(e.unless)}
                             for e in self.edges],
                auto_transitions=False, ignore_invalid_triggers=False, model_override=True,
                name=self.name)
        return self._machine

    def machine_destinations(self) -> dict[tuple[S, str], S]:
        """(state, trigger) -> destination read off the machine (a test checks it is the
        lookup the folds use)."""
        by_name = {s.name: s for s in self.states}
        return {(by_name[source], trigger): by_name[t.dest if t.dest is not None else source]
                for trigger, event in self.machine.events.items()
                for source, transitions in event.transitions.items() for t in transitions}

    # -- evolve ----------------------------------------------------------------------------------

    def destination(self, source: S, trigger: str) -> S:
        """Where `trigger` leads from `source` (the fold's lookup)."""
        try:
            return self._destinations[source, trigger]
        except KeyError:
            raise IllegalTransition(f"{self.name}: no {trigger!r} from {source.value!r}"
                                    ) from None

    # -- decide ----------------------------------------------------------------------------------

    def fire(self, source: S, subject: Any, *triggers: str) -> tuple[str, S] | None:
        """Fire the first of `triggers` the machine takes from `source`, its guards reading
        `subject`, and say which and where it led; None if none is legal there."""
        from transitions import MachineError

        unknown = [t for t in triggers if t not in self._triggers]
        if unknown:
            raise ValueError(f"{self.name} has no trigger {unknown[0]!r}")  # a typo, a bug
        with self._lock:
            self._built()  # the model is bound to the machine once, when it is built
            model = self._model
            model.subject = subject
            try:
                for trigger in triggers:
                    model.state = source
                    try:
                        if model.trigger(trigger):
                            return trigger, self._member(model.state)
                    except MachineError:
                        continue
                return None
            finally:
                model.subject = None

    def _member(self, state: enum.Enum) -> S:
        return next(s for s in self.states if s is state)

    def allows(self, source: S, trigger: str) -> bool:
        """Whether the table has `trigger` from `source` at all, guards aside (to word the
        refusal of a command whose guard failed)."""
        return (source, trigger) in self._destinations

    def triggers_from(self, source: S) -> list[str]:
        return sorted(t for s, t in self._destinations if s is source)

    def sources(self, trigger: str) -> tuple[S, ...]:
        return tuple(s for s in self.states if (s, trigger) in self._destinations)

    @property
    def pairs(self) -> list[tuple[S, str, S]]:
        """Every (source, trigger, destination) of the table, in table order."""
        return [(s, e.trigger, self._destinations[s, e.trigger])
                for e in self.edges for s in e.sources]
