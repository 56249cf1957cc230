"""The fleet views' questions, answered from the view tables (engine/fleet/schema.py) once
the follower has caught them up. Pure SQL over a connection; the answers are plain rows the
renderers (projections/fleet.py) lay out. Time comes in as a parameter (`now_us`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.fleet.names import issuer_key

DAY_US = 86_400 * 1_000_000

STATES = ("declared", "authenticated", "enrolling", "enrolled", "revoked")
"""The trustpoint states `fleet trustpoints --state` takes: the trustpoint machine's
(engine/machines/trustpoint.py Lifecycle; spelled out here so that a query does not load the
machines; tests/fleet/test_fleet_views.py checks they agree)."""


@dataclass(frozen=True, slots=True)
class FleetCertificate:
    device: str
    trustpoint: str
    kind: str  # "router" | "CA"
    serial: str
    subject: str
    issuer: str
    not_after: int  # µs since the epoch
    revoked: bool


@dataclass(frozen=True, slots=True)
class FleetTrustpoint:
    device: str
    trustpoint: str
    state: str
    certificates: int


@dataclass(frozen=True, slots=True)
class FleetDevice:
    device: str
    kind: str  # "device" | "ca"
    events: int
    last_at: int  # µs: the last event's time (0: none)
    trustpoints: int
    certificates: int
    status: str = "ok"  # or "damaged at seq N: REASON": the log is quarantined


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A log the follower stopped folding at `seq` (engine/fleet/follower.py)."""

    device: str
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class FleetAnswer:
    """One answer and the global position the views stood at when it was read."""

    position: int
    now_us: int
    rows: tuple[Any, ...]


def certificates(conn: Any, *, now_us: int, within_us: int | None = None,
                 issuer: str | None = None) -> list[FleetCertificate]:
    """Installed certificates, soonest expiry first; `within_us`: only those whose notAfter
    is at most that far from now (expired ones included); `issuer`: only those issued by
    that DN (compared by `issuer_key`: ValueError if it is no DN)."""
    where: list[str] = []
    args: list[Any] = []
    if within_us is not None:
        where.append("not_after <= %s")
        args.append(now_us + within_us)
    if issuer is not None:
        where.append("issuer_key = %s")
        args.append(issuer_key(issuer))
    sql = ("SELECT device, trustpoint, kind, serial, subject, issuer, not_after, revoked "
           "FROM trustledger_fleet_certificates"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY not_after, device, ord")
    return [FleetCertificate(*r) for r in conn.execute(sql, args)]


def trustpoints(conn: Any, *, state: str | None = None) -> list[FleetTrustpoint]:
    sql = "SELECT device, trustpoint, state, certificates FROM trustledger_fleet_trustpoints"
    args: list[Any] = []
    if state is not None:
        sql += " WHERE state = %s"
        args.append(state)
    return [FleetTrustpoint(*r) for r in conn.execute(sql + " ORDER BY device, trustpoint",
                                                      args)]


def devices(conn: Any) -> list[FleetDevice]:
    """One row per log; a quarantined one says where and why it stopped (its counts are
    those of the events before it)."""
    return [FleetDevice(r[0], r[1], r[2], r[3], r[4], r[5],
                        "ok" if r[6] is None else f"damaged at seq {r[6]}: {r[7]}")
            for r in conn.execute(
                "SELECT d.device, d.kind, d.seq, d.last_at, d.trustpoints, d.certificates, "
                "q.seq, q.reason FROM trustledger_fleet_devices d "
                "LEFT JOIN trustledger_fleet_quarantine q USING (device) ORDER BY d.device")]


def quarantined(conn: Any) -> list[Quarantined]:
    return [Quarantined(*r) for r in conn.execute(
        "SELECT device, seq, reason FROM trustledger_fleet_quarantine ORDER BY device")]
