"""Errors of the built-in CA.

`CAError` is a `TrustledgerError` (see engine/errors.py): it changed nothing, `text` is the
sentence and `str(e)` the `%` line. The CA's frontends catch every CA error as one `CAError`;
`reason` says whose it is: a `Reason` for the operator's (a bad request file, an unknown
serial), a `PeerReason` for a peer's. `ScepRefusal` is the kind a SCEP peer causes: it is
also a `ScepFailure` and carries the failInfo the CertRep FAILURE answers with
(RFC 8894 §3.2.1.4).
"""

from __future__ import annotations

from engine.errors import PeerReason, Reason, ScepFailure, TrustledgerError
from engine.scep.types import FailInfo

__all__ = ["CAError", "CAUnavailable", "FailInfo", "NotACA", "ScepRefusal"]


class CAError(TrustledgerError):
    reason: Reason | PeerReason

    def __init__(self, reason: Reason | PeerReason, text: str) -> None:
        TrustledgerError.__init__(self, reason, text)


class NotACA(CAError):
    """The directory's log is not a CA's (a device data directory, say): the command was given
    the wrong directory, an operator mistake like a missing one (exit status 2)."""

    def __init__(self, text: str) -> None:
        super().__init__(Reason.NOT_FOUND, text)


class ScepRefusal(CAError, ScepFailure):
    """A SCEP request the CA refuses; answered with CertRep FAILURE and `fail_info`."""

    reason: PeerReason
    fail_info: FailInfo

    def __init__(self, fail_info: FailInfo, text: str) -> None:
        TrustledgerError.__init__(self, PeerReason.BAD_REQUEST, text)
        self.fail_info = fail_info


class CAUnavailable(CAError):
    """The CA's log could not be made durable (a failed write or fdatasync): what it holds in
    memory may never have reached the disk, so it answers nothing more (HTTP 503) until it is
    reopened, which recovers the log from what is on disk."""

    def __init__(self, cause: BaseException) -> None:
        # LogWriteFailed's reason, or a LogError's text (never its rendered `% ...`).
        reason = (getattr(cause, "reason", None) or getattr(cause, "text", None)
                  or str(cause)).rstrip(".")
        rolled_back = getattr(cause, "rolled_back", None)
        if rolled_back:
            what = f"Could not write the event log: {reason}. Nothing was changed. "
        elif rolled_back is None:  # not a failed write: nothing to cut back
            what = f"Could not write the event log: {reason}. "
        else:  # the log could not be cut back to what was acknowledged
            what = (f"Could not write the event log: {reason}. The log could not be cut "
                    "back either: the failed commands may be found in it when it is reopened. ")
        super().__init__(Reason.NOT_ALLOWED, what + "The CA's log could not be made durable: "
                         "it answers nothing more until it is reopened (restart `ca serve`).")
        self.cause = cause
