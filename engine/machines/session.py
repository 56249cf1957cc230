"""An operator's configuration session (IOS XR's two-stage commit): which mode command is legal
where, and which mode it leads to.

Rule: the mode commands (engine/commands/configuration.py) fire their trigger through this
machine; the grammar offers `commit`, `abort`, `end` and `exit` in exactly the modes the table
has them from; `engine.session.Session` takes every mode change from `SESSION.destination`.

    exec ──configure──▶ config ──trustpoint──▶ config-trustp ──exit──▶ config
      ▲                  │ │ ▲ commit (stays; the target restarts from the new running config)
      └─end/exit/abort───┘ └─┘

`end` (and `exit` from config) is guarded: with uncommitted changes the machine does not take it
and the command asks "Uncommitted changes found, commit them?" (yes: commit, then end; no:
abort). `exit` from a submode never asks. A line a submode does not know but a mode above it
does leaves the submode: an `exit`. `rollback` commits the inverse of earlier commits at once,
so it is an exec command. `crypto ca trustpool policy` enters config-trustpool
(engine/commands/trustpool.py).
The session is not log state: only `commit` and `rollback` write events.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from engine.grammar import Mode
from engine.machines.table import Edge, Model, Table

if TYPE_CHECKING:
    from engine.session import Session

EXEC, CONFIG, TRUSTP, TRUSTPOOL = Mode.EXEC, Mode.CONFIG, Mode.TRUSTP, Mode.TRUSTPOOL
SUBMODES = (TRUSTP, TRUSTPOOL)
CONFIGURING = (CONFIG, *SUBMODES)
CHANGES = ("has_changes",)  # guard: the target configuration differs from the running one

TABLE: list[Edge[Mode]] = [
    Edge("configure", (EXEC,), CONFIG, note="the target starts as the running config"),
    Edge("trustpoint", (CONFIG,), TRUSTP, note="crypto ca trustpoint NAME"),
    Edge("trustpool", (CONFIG,), TRUSTPOOL, note="crypto ca trustpool policy"),
    Edge("exit", SUBMODES, CONFIG),
    Edge("exit", (CONFIG,), EXEC, unless=CHANGES),
    Edge("end", CONFIGURING, EXEC, unless=CHANGES),
    Edge("commit", CONFIGURING, None, note="one ConfigurationCommitted; the target restarts"),
    Edge("abort", CONFIGURING, EXEC, note="the target is dropped"),
    Edge("rollback", (EXEC,), None, note="commits inverse changes at once"),
]

ENTERS = {TRUSTP: "trustpoint", TRUSTPOOL: "trustpool"}
"""The trigger of the configuration command that enters each submode (grammar `enters=`)."""


class SessionModel(Model):
    """A session as the machine sees it when a command asks: its mode, and the guard."""

    def __init__(self) -> None:
        self.state: enum.Enum = EXEC
        self.subject: Session | None = None

    def has_changes(self) -> bool:
        return self.subject is not None and bool(self.subject.pending())


SESSION = Table("session", list(Mode), EXEC, TABLE, SessionModel())


def fire(session: Session, trigger: str) -> Mode | None:
    """Decide's question: where `trigger` takes this session, guards checked; None if the
    machine does not take it here."""
    taken = SESSION.fire(session.mode, session, trigger)
    return None if taken is None else taken[1]
