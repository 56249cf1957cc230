"""The fleet views' tables, in the store's own database (prefix `trustledger_fleet_`).

    trustledger_fleet_position      (name PK, position)   how far the views have folded the
                                                          store's global order (one row per
                                                          follower name; "fleet" by default)
    trustledger_fleet_devices       (device PK, kind, seq, last_at, trustpoints, certificates)
                                    one row per log: `seq` is its last event folded (a log's
                                    seqs have no gaps, so it is also its event count)
    trustledger_fleet_trustpoints   (device, trustpoint) PK, state, certificates
    trustledger_fleet_certificates  (device, ord) PK, trustpoint, kind, serial, subject,
                                    issuer, issuer_key, not_after (µs), revoked
    trustledger_fleet_quarantine    (device PK, seq, reason)  a log the follower stopped
                                    folding: its event at `seq` is damaged or not one this
                                    build folds as a device's; its later events are skipped

The view rows and the position change in one transaction (engine/fleet/follower.py), so the
views always show exactly the events up to `position`. `issuer_key` is the issuer in the form
`--issuer` is compared in (engine/fleet/names.py). Created idempotently, under an advisory
lock (two first followers at once must not both create a table).
"""

from __future__ import annotations

from typing import Any

SCHEMA_LOCK = 0x7472_7573_666C_7431  # pg_advisory_xact_lock key: "trusflt1"

DDL = (
    """CREATE TABLE IF NOT EXISTS trustledger_fleet_position (
        name text PRIMARY KEY,
        position bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS trustledger_fleet_devices (
        device text PRIMARY KEY,
        kind text NOT NULL,
        seq bigint NOT NULL,
        last_at bigint NOT NULL,
        trustpoints integer NOT NULL,
        certificates integer NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS trustledger_fleet_trustpoints (
        device text NOT NULL,
        trustpoint text NOT NULL,
        state text NOT NULL,
        certificates integer NOT NULL,
        PRIMARY KEY (device, trustpoint))""",
    "CREATE INDEX IF NOT EXISTS trustledger_fleet_trustpoints_state "
    "ON trustledger_fleet_trustpoints (state)",
    """CREATE TABLE IF NOT EXISTS trustledger_fleet_certificates (
        device text NOT NULL,
        ord integer NOT NULL,
        trustpoint text NOT NULL,
        kind text NOT NULL,
        serial text NOT NULL,
        subject text NOT NULL,
        issuer text NOT NULL,
        issuer_key text NOT NULL,
        not_after bigint NOT NULL,
        revoked boolean NOT NULL,
        PRIMARY KEY (device, ord))""",
    "CREATE INDEX IF NOT EXISTS trustledger_fleet_certificates_not_after "
    "ON trustledger_fleet_certificates (not_after)",
    "CREATE INDEX IF NOT EXISTS trustledger_fleet_certificates_issuer "
    "ON trustledger_fleet_certificates (issuer_key)",
    # last: its presence says the views' tables are all there (engine/fleet/follower.py)
    """CREATE TABLE IF NOT EXISTS trustledger_fleet_quarantine (
        device text PRIMARY KEY,
        seq bigint NOT NULL,
        reason text NOT NULL)""",
)


def ensure_fleet_schema(conn: Any) -> None:
    """Create the views' tables if missing (one transaction, under the schema lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in DDL:
            conn.execute(statement)
