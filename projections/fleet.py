"""`trustledger fleet ...` answers as text tables and as JSON (engine/fleet/queries.py).

Text: a header line, then one line per row; columns are separated by two spaces and padded
to their widest value, numbers right-aligned; no trailing spaces. Times are UTC, ISO 8601
(`2027-01-31T12:00:00Z`). JSON: one object, `{"position": N, "now": TIME, "<view>": [...]}`,
`position` being the store's global position the views had folded when they answered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from engine.fleet.queries import (
    DAY_US,
    FleetAnswer,
    FleetCertificate,
    FleetDevice,
    FleetTrustpoint,
)


def iso(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_left(not_after: int, now_us: int) -> int:
    """Whole days from now to notAfter, rounded down (negative once expired)."""
    return (not_after - now_us) // DAY_US


def table(header: Sequence[str], rows: Sequence[Sequence[str | int]]) -> str:
    widths = [max([len(h), *(len(str(r[i])) for r in rows)]) for i, h in enumerate(header)]
    numeric = [bool(rows) and all(isinstance(r[i], int) for r in rows)
               for i in range(len(header))]

    def line(cells: Sequence[str | int]) -> str:
        out = [str(c).rjust(w) if num else str(c).ljust(w)
               for c, w, num in zip(cells, widths, numeric, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)]) + "\n"


CERTIFICATE_HEADER = ("Device", "Trustpoint", "Kind", "Serial", "Subject", "Issuer",
                      "Not After", "Days Left")
TRUSTPOINT_HEADER = ("Device", "Trustpoint", "State", "Certificates")
DEVICE_HEADER = ("Device", "Kind", "Events", "Last Event", "Trustpoints", "Certificates",
                 "Status")


def render_certificates(answer: FleetAnswer) -> str:
    rows: list[FleetCertificate] = list(answer.rows)
    return table(CERTIFICATE_HEADER, [
        (c.device, c.trustpoint, c.kind, c.serial, c.subject, c.issuer, iso(c.not_after),
         days_left(c.not_after, answer.now_us)) for c in rows])


def render_trustpoints(answer: FleetAnswer) -> str:
    rows: list[FleetTrustpoint] = list(answer.rows)
    return table(TRUSTPOINT_HEADER,
                 [(t.device, t.trustpoint, t.state, t.certificates) for t in rows])


def render_devices(answer: FleetAnswer) -> str:
    rows: list[FleetDevice] = list(answer.rows)
    return table(DEVICE_HEADER, [
        (d.device, d.kind, d.events, iso(d.last_at) if d.events else "-", d.trustpoints,
         d.certificates, d.status) for d in rows])


def _json(answer: FleetAnswer, key: str, items: list[dict[str, object]]) -> str:
    return json.dumps({"position": answer.position, "now": iso(answer.now_us), key: items},
                      indent=1) + "\n"


def json_certificates(answer: FleetAnswer) -> str:
    rows: list[FleetCertificate] = list(answer.rows)
    return _json(answer, "certificates", [
        {"device": c.device, "trustpoint": c.trustpoint, "kind": c.kind, "serial": c.serial,
         "subject": c.subject, "issuer": c.issuer, "not_after": iso(c.not_after),
         "days_left": days_left(c.not_after, answer.now_us), "revoked": c.revoked}
        for c in rows])


def json_trustpoints(answer: FleetAnswer) -> str:
    rows: list[FleetTrustpoint] = list(answer.rows)
    return _json(answer, "trustpoints", [
        {"device": t.device, "trustpoint": t.trustpoint, "state": t.state,
         "certificates": t.certificates} for t in rows])


def json_devices(answer: FleetAnswer) -> str:
    rows: list[FleetDevice] = list(answer.rows)
    return _json(answer, "devices", [
        {"device": d.device, "kind": d.kind, "events": d.events,
         "last_event": iso(d.last_at) if d.events else None, "trustpoints": d.trustpoints,
         "certificates": d.certificates, "status": d.status} for d in rows])
