"""One error taxonomy.

Every error an operator may see is a `TrustledgerError`: the operator (or a peer) caused it,
it changed nothing, and code branches on its `reason` (an enum), never on its text.

    TrustledgerError                 root: `reason`, `text`, `render()`
    +-- OperatorError                the operator's input or the current state refuses it
    |                                (`Reason`); also mistakes on the `trustledger` command line
    +-- PeerError                    a peer failed or refused (`PeerReason`): a CA, an HTTP or
    |   |                            LDAP server, a SCEP client talking to the built-in CA
    |   +-- ScepFailure              a SCEP peer's refusal: carries the RFC 8894 failInfo
    +-- engine.scep.ScepError        a SCEP message we refuse (`ScepErrorReason`, failInfo)
    +-- engine.ca.errors.CAError     the built-in CA's errors, caught together by its frontends
                                     (`Reason` or `PeerReason`); its `ScepRefusal` is also a
                                     `ScepFailure`

The text is a sentence without the IOS `%` marker: `%` is added once, when the error is
rendered (`message`, `str(e)`, `render()`), never in a constructor, so no caller ever slices
it off again. The store layer (events/) keeps its own root, `events.filelog.LogError`, with the
same `text`/`render()` protocol: events/ imports nothing from engine/.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # engine.scep is heavy: imported only where SCEP is spoken
    from engine.scep.types import FailInfo

__all__ = ["OperatorError", "PeerError", "PeerReason", "Reason", "ScepFailure",
           "TrustledgerError"]

PREFIX = "% "  # the IOS marker of an error line


class Reason(enum.Enum):
    """Why the operator's command was refused."""

    INVALID_INPUT = "invalid input"
    INCOMPLETE = "incomplete command"
    AMBIGUOUS = "ambiguous command"
    INVALID_VALUE = "invalid value"
    NOT_ALLOWED = "not allowed in this state"
    NOT_FOUND = "no such object"
    CANCELLED = "cancelled by the operator"
    BAD_DATA = "malformed data"
    NO_INPUT = "no answer available"


class PeerReason(enum.Enum):
    """Why talking to a peer failed."""

    UNREACHABLE = "the peer does not answer"
    BAD_ANSWER = "the peer answered something unusable"
    REFUSED = "the peer refused the request"
    TIMED_OUT = "the peer did not finish in time"  # e.g. a request still pending at the CA
    BAD_REQUEST = "the peer's request is refused"  # we serve it (the built-in CA)


class TrustledgerError(Exception):
    """The root: an error shown to an operator as one IOS-style `%` line (and for the parser,
    a `^` under the offending word)."""

    reason: enum.Enum

    def __init__(self, reason: enum.Enum, text: str, *, caret: int | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text  # the sentence, without `%`
        self.caret = caret  # column of the offending word in the input line, for `^`

    @property
    def message(self) -> str:
        """The `%` line as the operator reads it."""
        return PREFIX + self.text

    def __str__(self) -> str:
        return self.message

    def render(self, prompt_width: int = 0) -> str:
        if self.caret is None:
            return self.message
        return " " * (prompt_width + self.caret) + "^\n" + self.message


class OperatorError(TrustledgerError):
    reason: Reason

    def __init__(self, reason: Reason, text: str, *, caret: int | None = None) -> None:
        super().__init__(reason, text, caret=caret)


class PeerError(TrustledgerError):
    reason: PeerReason

    def __init__(self, reason: PeerReason, text: str) -> None:
        super().__init__(reason, text)


class ScepFailure(PeerError):
    """A SCEP peer refused (CertRep FAILURE received, or one the built-in CA answers with):
    `fail_info` is the RFC 8894 §3.2.1.4 failInfo."""

    def __init__(self, reason: PeerReason, fail_info: FailInfo | None, text: str) -> None:
        super().__init__(reason, text)
        self.fail_info = fail_info


def invalid_input(column: int) -> OperatorError:
    return OperatorError(Reason.INVALID_INPUT, "Invalid input detected at '^' marker.",
                         caret=column)


def incomplete() -> OperatorError:
    return OperatorError(Reason.INCOMPLETE, "Incomplete command.")


def ambiguous(line: str) -> OperatorError:
    return OperatorError(Reason.AMBIGUOUS, f'Ambiguous command: "{line}"')


def not_allowed(text: str) -> OperatorError:
    return OperatorError(Reason.NOT_ALLOWED, text)


_ERRNO = re.compile(r"\[Errno -?\d+\] ")


def peer_words(e: BaseException) -> str:
    """What a failed exchange with a peer says to an operator: the exception's first line
    without the `[Errno 111] ` an OS error puts before its words (`Connection refused`), or its
    type's name when it has no words."""
    return _ERRNO.sub("", str(e).split("\n")[0]) or type(e).__name__
