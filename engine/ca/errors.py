"""Errors of the built-in CA.

`CAError` is a `CommandError` (see engine/errors.py): the operator or a peer caused it, it
changed nothing, and `str(e)` is the `%` message. `ScepRefusal` is the kind a SCEP peer causes:
it carries the failInfo the CertRep FAILURE answers with (RFC 8894 §3.2.1.4).
"""

from __future__ import annotations

from engine.errors import CommandError, Reason
from engine.scep.types import FailInfo

__all__ = ["CAError", "CAUnavailable", "FailInfo", "NotACA", "ScepRefusal"]


class CAError(CommandError):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message if message.startswith("%") else f"% {message}")


class NotACA(CAError):
    """The directory's log is not a CA's (a device data directory, say): the command was given
    the wrong directory, an operator mistake like a missing one (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.NOT_FOUND, message)


class ScepRefusal(CAError):
    """A SCEP request the CA refuses; answered with CertRep FAILURE and `fail_info`."""

    def __init__(self, fail_info: FailInfo, message: str) -> None:
        super().__init__(Reason.PEER, message)
        self.fail_info = fail_info


class CAUnavailable(CAError):
    """The CA's log could not be made durable (a failed write or fdatasync): what it holds in
    memory may never have reached the disk, so it answers nothing more (HTTP 503) until it is
    reopened, which recovers the log from what is on disk."""

    def __init__(self, cause: BaseException) -> None:
        reason = getattr(cause, "reason", None) or str(cause)
        if getattr(cause, "rolled_back", False):
            what = f"% Could not write the event log: {reason}. Nothing was changed. "
        else:  # the log could not be cut back to what was acknowledged (or another failure)
            what = (f"% Could not write the event log: {reason}. The log could not be cut "
                    "back either: the failed commands may be found in it when it is reopened. ")
        super().__init__(Reason.NOT_ALLOWED, what + "The CA's log could not be made durable: "
                         "it answers nothing more until it is reopened (restart `ca serve`).")
        self.cause = cause
