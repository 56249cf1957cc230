"""`show logging`: the `%FACILITY-SEV-MNEMONIC` messages the engine emitted, with their times.

Messages are not events of their own: each is derived from the event that caused it (see
engine.messages), by the logging folds of `engine/device_folds.py`, into
`DeviceState.messages` (the newest LOG_BUFFER). So the buffer is rebuilt by every replay,
survives restarts, and `replay --until T` shows the messages up to T.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.grammar import GRAMMAR

if TYPE_CHECKING:
    from engine.context import Ctx
    from engine.effects import Outcome

GRAMMAR.describe({"logging": "Show the contents of the logging buffer"})


@GRAMMAR.action("show logging", help="Show the contents of the logging buffer")
def show_logging(ctx: Ctx) -> Outcome:
    from engine.effects import Outcome
    from engine.views.state import LoggingView

    return Outcome(output=LoggingView(ctx.state.messages))
