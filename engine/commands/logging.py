"""`show logging`: the `%FACILITY-SEV-MNEMONIC` messages the engine emitted, with their times.

Messages are not events of their own: each is derived from the event that caused it (see
engine.messages), by the folds below, into `DeviceState.messages` (the newest LOG_BUFFER).
So the buffer is rebuilt by every replay, survives restarts, and `replay --until T` shows the
messages up to T. These folds are registered after the trustpoint folds (this module is
imported after engine.trustpoints), so they see the trustpoint as the event left it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.grammar import GRAMMAR
from engine.messages import (
    LOG_BUFFER,
    certificates_removed,
    certret,
    failure_message,
    poll_failed,
)
from engine.state import DeviceState, evolves, with_state
from engine.views import LoggingView
from events.trustpoint import (
    CertificateReceived,
    EnrollmentFailed,
    EnrollmentPending,
    TrustpointCertificatesRemoved,
)

if TYPE_CHECKING:
    from engine.context import Ctx
    from engine.effects import Outcome

GRAMMAR.describe({"logging": "Show the contents of the logging buffer"})


@GRAMMAR.action("show logging", help="Show the contents of the logging buffer")
def show_logging(ctx: Ctx) -> Outcome:
    from engine.effects import Outcome

    return Outcome(output=LoggingView(ctx.state.messages))


def _log(state: DeviceState, at: int, text: str | None) -> DeviceState:
    if text is None:
        return state
    return with_state(state, messages=(*state.messages[-(LOG_BUFFER - 1):], (at, text)))


@evolves(CertificateReceived)
def _received(state: DeviceState, ev: CertificateReceived, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    done = st is not None and st.enrollment is None  # the last certificate of the request
    return _log(state, at, certret(ev.trustpoint) if done else None)


@evolves(EnrollmentFailed)
def _failed(state: DeviceState, ev: EnrollmentFailed, at: int) -> DeviceState:
    return _log(state, at, failure_message(ev))


@evolves(EnrollmentPending)
def _pending(state: DeviceState, ev: EnrollmentPending, at: int) -> DeviceState:
    return _log(state, at, poll_failed(ev.trustpoint, ev.poll_error) if ev.poll_error else None)


@evolves(TrustpointCertificatesRemoved)
def _removed(state: DeviceState, ev: TrustpointCertificatesRemoved, at: int) -> DeviceState:
    return _log(state, at, certificates_removed(ev.trustpoint, len(ev.serials), ev.reason))
