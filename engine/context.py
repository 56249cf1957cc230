"""What a command handler may read (`Ctx`): the folded state, the session, the command's time
and user, and what the parser matched. Handlers (engine/commands/) import it from here, the core,
never from the application (engine.engine) that builds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.grammar import Grammar
from engine.parser import Match
from engine.session import Session
from engine.state import DeviceState


@dataclass(frozen=True)
class Ctx:
    """What a handler may read: the folded state, the session, the command's time and user."""

    state: DeviceState
    session: Session
    now: int
    user: str
    match: Match
    grammar: Grammar
    line: str = ""  # the line as the operator typed it (for `% Ambiguous command: "..."`)

    @property
    def args(self) -> dict[str, Any]:
        return self.match.args
