"""One error taxonomy.

`CommandError`s are caused by the operator or by a peer: they carry an IOS-style `%` message
(and, for the parser, where the caret goes), they change nothing, and callers branch on their
`reason`, never on message text. Anything else that escapes is a bug.
"""

from __future__ import annotations

import enum


class Reason(enum.Enum):
    INVALID_INPUT = "invalid input"
    INCOMPLETE = "incomplete command"
    AMBIGUOUS = "ambiguous command"
    INVALID_VALUE = "invalid value"
    NOT_ALLOWED = "not allowed in this state"
    NOT_FOUND = "no such object"
    CANCELLED = "cancelled by the operator"
    PEER = "peer error"
    BAD_DATA = "malformed data"
    NO_INPUT = "no answer available"


class CommandError(Exception):
    """An error the operator or a peer caused. `str(e)` is the text shown at the prompt."""

    def __init__(self, reason: Reason, message: str, *, caret: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.caret = caret  # column of the offending word in the input line, for `^`

    def render(self, prompt_width: int = 0) -> str:
        if self.caret is None:
            return self.message
        return " " * (prompt_width + self.caret) + "^\n" + self.message


def invalid_input(column: int) -> CommandError:
    return CommandError(Reason.INVALID_INPUT, "% Invalid input detected at '^' marker.",
                        caret=column)


def incomplete() -> CommandError:
    return CommandError(Reason.INCOMPLETE, "% Incomplete command.")


def ambiguous(line: str) -> CommandError:
    return CommandError(Reason.AMBIGUOUS, f'% Ambiguous command: "{line}"')


def not_allowed(message: str) -> CommandError:
    return CommandError(Reason.NOT_ALLOWED, message if message.startswith("%") else f"% {message}")
