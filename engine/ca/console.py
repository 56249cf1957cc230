"""The CA operator's console: `ca serve` prints one line per request event on its standard
output, for the operator watching it (or, with `--log-json`, one JSON object per line for a
machine).

    2026-12-01T04:30:00Z pending   txid=4F2A... subject="CN=r1,O=Example" type=PKCSReq by=none
    2026-12-01T04:30:09Z issued    txid=4F2A... serial=0A1B subject="CN=r1,O=Example" by=operator
    2026-12-01T04:31:00Z refused   txid=77C1 failInfo=badRequest reason="wrong challenge password"

Events: `pending` (a request waits for `ca approve`), `approved` (approved, certificate not yet
issued), `issued`, `renewed` (issued on the strength of one of our certificates), `rejected`,
`refused` (answered FAILURE without being recorded: the CA's reason and the failInfo),
`revoked`, and `crl published` (DIR/ca.crl rewritten). One batch of events gives one line per
request outcome: a request approved and issued at once prints `issued`, not three lines.
Serials print as the router prints them (`engine.certids.ios_serial_number`).

Lines go through structlog like every log of the house, `redact_secrets` first, so nothing
secret (a challenge password, key bytes) reaches the console. Refusals the SCEP layer makes
before the CA decides (a message that does not parse, badAlg under --strict) stay in the
diagnostic log on standard error (`scep refused`).
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping, Sequence
from typing import Any, TextIO

import structlog

from engine.ca.errors import ScepRefusal
from engine.ca.state import CAState
from engine.certids import ios_serial_number
from engine.keystore import redact_secrets
from events.ca import (
    CertificateIssued,
    CertificateRevoked,
    RequestApproved,
    RequestReceived,
    RequestRejected,
)
from events.registry import Event

MESSAGE_TYPES = {19: "PKCSReq", 17: "RenewalReq", 0: "offline"}


def router_serial(serial_hex: str) -> str:
    """A CA serial (lower-case hex, as the CA state keys it) as the router prints it."""
    return ios_serial_number(int(serial_hex, 16))


def _human(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
    """`TIME EVENT key=value ...`; values with spaces or quotes are JSON-quoted."""
    head = f"{event_dict.pop('timestamp')} {event_dict.pop('event'):<9}"
    fields = [f"{k}={_quoted(v)}" for k, v in event_dict.items()]
    return " ".join([head, *fields])


def _quoted(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\\') else text


def console_logger(stream: TextIO, *, as_json: bool) -> Any:
    """A structlog logger writing console lines to `stream`."""
    return structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[redact_secrets,
                    structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%SZ", utc=True),
                    structlog.processors.JSONRenderer() if as_json else _human],
        cache_logger_on_first_use=True)


class Console:
    """What `BuiltinCA` tells the operator; `ca serve` sets `ca.console` to one."""

    def __init__(self, logger: Any) -> None:
        self._log = logger

    def recorded(self, state: CAState, events: Sequence[Event]) -> None:
        """One line per request outcome in a batch just appended; `state` is after it."""
        issued = {e.transaction_id for e in events if isinstance(e, CertificateIssued)}
        decided = issued | {e.transaction_id for e in events
                            if isinstance(e, RequestApproved | RequestRejected)}
        for ev in events:
            if isinstance(ev, RequestReceived) and ev.transaction_id not in decided:
                self._log.info("pending", txid=ev.transaction_id, subject=ev.subject_text,
                               type=MESSAGE_TYPES.get(ev.message_type, str(ev.message_type)),
                               by=ev.authorization)
            elif isinstance(ev, RequestApproved) and ev.transaction_id not in issued:
                self._log.info("approved", txid=ev.transaction_id, by=ev.approved_by)
            elif isinstance(ev, CertificateIssued):
                req = state.requests[ev.transaction_id]
                fields: dict[str, Any] = {
                    "txid": ev.transaction_id, "serial": router_serial(ev.serial),
                    "subject": ev.subject_text, "by": req.authorization}
                if req.renewal_of is not None:
                    fields["renews"] = router_serial(req.renewal_of)
                self._log.info("renewed" if req.renewal_of is not None else "issued", **fields)
            elif isinstance(ev, RequestRejected):
                self._log.info("rejected", txid=ev.transaction_id, reason=ev.reason)
            elif isinstance(ev, CertificateRevoked):
                self._log.info("revoked", serial=router_serial(ev.serial), reason=ev.reason)

    def refused(self, transaction_id: str, subject: str, refusal: ScepRefusal) -> None:
        self._log.info("refused", txid=transaction_id, subject=subject,
                       failInfo=refusal.fail_info.label,
                       reason=refusal.text)

    def crl_published(self, number: int, next_update: str) -> None:
        self._log.info("crl published", number=number, next_update=next_update)
