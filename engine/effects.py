"""What a command handler may ask of the outside world, and what it hands back.

Handlers are pure, for the device and the CA alike: plain functions returning their result,
or generators that `yield` effect requests and receive the runtime's answer
(`answer = yield Ask("Password:", secret=True)`, `now = yield Now()`). The runtime
(engine/runtime.py) performs each request through one set of ports (clock, randomness, key
generator, prompter, SCEP transport, the CA's signing key); whatever comes back that matters
later is recorded in the command's events, so replay never performs an effect. Feature
modules add effect types and register how the runtime performs them with
`performs(EffectType)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from engine.config import Change, Path
from engine.errors import TrustledgerError
from engine.grammar import Mode
from engine.views import View
from events.registry import Event

if TYPE_CHECKING:
    from engine.runtime import Ports


class Effect:
    """Base of effect requests."""


@dataclass(frozen=True)
class Say(Effect):
    """Print text now (before the command ends, e.g. before a question or a slow step); a
    `View` is rendered by the `render` port."""

    text: str | View


@dataclass(frozen=True)
class Ask(Effect):
    """Ask the operator; the answer is a str (the default when the line is empty)."""

    prompt: str
    default: str | None = None
    secret: bool = False


@dataclass(frozen=True)
class Now(Effect):
    """The time on the clock port; the answer is µs since the epoch (UTC)."""


@dataclass(frozen=True)
class DrawRandom(Effect):
    """`size` unpredictable bytes from the randomness port."""

    size: int


@dataclass(frozen=True)
class ReadBlock(Effect):
    """Read pasted lines until a blank line or `quit`; the answer is the text (no terminator)."""

    intro: str = ""


@dataclass
class Outcome:
    """The result of one command."""

    output: str | View = ""  # a View is rendered by the `render` port (engine/views/)
    events: Sequence[Event] = ()
    edits: Sequence[Change] = ()  # configuration modes: changes to the target configuration
    enter: tuple[Mode, Path] | None = None  # push a configuration submode
    leave: str | None = None  # "one": up one mode; "exec": back to exec
    commit_done: bool = False  # the target was committed: start a new one
    abort: bool = False  # drop the target
    stream: str = "device"
    extra: dict[str, Any] = field(default_factory=dict)
    # The command failed, but what happened is on record (a CA's FAILURE answer): the events
    # are appended and the output shown, and the Result still carries this error.
    failure: TrustledgerError | None = None
    # Effects performed only once the events are durable (destroying a zeroized key's data
    # key): what must not happen if the append fails. They cannot undo the command.
    then: Sequence[Effect] = ()


F = TypeVar("F", bound=Effect)
Performer = Callable[["Ports", Any], Any]
PERFORMERS: dict[type[Effect], Performer] = {}


def performs(effect_type: type[F]) -> Callable[[Callable[[Ports, F], Any]],
                                               Callable[[Ports, F], Any]]:
    """Register how the runtime performs one effect type through its ports."""

    def register(fn: Callable[[Ports, F], Any]) -> Callable[[Ports, F], Any]:
        PERFORMERS[effect_type] = fn
        return fn

    return register
