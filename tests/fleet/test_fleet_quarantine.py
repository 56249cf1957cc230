"""One bad log does not stop the fleet: a damaged row, an event this build does not fold, a
CA's events in a log that says `device`, or a log whose folded rows were damaged since,
quarantines THAT log (recorded with its seq and why; its later events skipped, never folded
onto a state that missed one); the other devices are folded on, `fleet devices` shows each
log's status, and a query warns on stderr in one `%` line and exits 0."""

from __future__ import annotations

import psycopg
import pytest

from engine.cli import main
from engine.fleet import queries
from engine.fleet.follower import FleetFollower
from events.ca import ChallengeMinted
from events.codec import encode_core
from events.device import ConfigurationCommitted
from events.pgstore import PostgresEventStore
from events.store import PendingEvent, chain_hash

pytestmark = pytest.mark.integration

T0 = 1_764_201_600_000_000  # 2025-11-27 00:00:00 UTC, µs


def _declare(n: int) -> PendingEvent:
    key = f"crypto ca trustpoint tp{n}"
    ev = ConfigurationCommitted(1000000001 + n, "tester", "", "", (((key,), None, key),))
    return PendingEvent(ev, "device", T0 + n)


def _append(url: str, log_id: str, *ns: int) -> None:
    with PostgresEventStore.open(url, log_id) as s:
        for n in ns:
            s.append([_declare(n)])


def _append_foreign(url: str, log_id: str) -> None:
    """An event of a type this build has never heard of, chained as a newer writer would."""
    with PostgresEventStore.open(url, log_id) as s:
        seq, prev = s.head
    core = encode_core([seq + 1, "device", "FromTheFuture", 1, T0 + 90, "", "", {"x": 1}])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO trustledger_events (position, log_id, seq, type, v, at, "
                     "actor, correlation, core, prev, hash, tx) VALUES (nextval("
                     "'trustledger_position'), %s, %s, 'FromTheFuture', 1, %s, '', '', "
                     "%s, %s, %s, pg_current_xact_id())",
                     (log_id, seq + 1, T0 + 90, core, prev, chain_hash(prev, core)))


def _damage(url: str, log_id: str, seq: int) -> None:
    """Break a stored row's hash, as a bad disk or a hand edit would."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE trustledger_events SET hash = %s WHERE log_id = %s AND seq = %s",
                     (bytes(32), log_id, seq))


def _devices(url: str) -> dict[str, tuple[int, int, str]]:
    with FleetFollower(url) as f:
        f.catch_up()
        rows = f.answer(queries.devices, T0).rows
    return {d.device: (d.events, d.trustpoints, d.status) for d in rows}


UNFOLDED = "event type FromTheFuture is not one this build folds as a device's"


def test_an_unfolded_event_quarantines_its_log_and_the_others_go_on(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _append(pg_url, "edge-1", 0)
    _append(pg_url, "edge-2", 1)
    _append_foreign(pg_url, "edge-1")
    _append(pg_url, "edge-1", 2)  # after the event it cannot fold: must not be folded
    _append(pg_url, "edge-2", 3, 4)
    assert main(["fleet", "devices", "--store", pg_url]) == 0
    out, err = capsys.readouterr()
    assert err == ("% Quarantined, not folded from there on (see fleet devices): edge-1 at "
                   f"seq 2 ({UNFOLDED}).\n")
    rows = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert rows["edge-1"].endswith(f"damaged at seq 2: {UNFOLDED}")
    assert rows["edge-2"].endswith("  ok")
    assert _devices(pg_url) == {"edge-1": (1, 1, f"damaged at seq 2: {UNFOLDED}"),
                                "edge-2": (3, 3, "ok")}
    _append(pg_url, "edge-2", 5)  # the views go on past it, once
    assert _devices(pg_url)["edge-2"] == (4, 4, "ok")


def test_a_damaged_row_quarantines_its_log_and_the_others_go_on(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _append(pg_url, "dmg2", 0, 1, 2)
    _append(pg_url, "edge-3", 3)
    _damage(pg_url, "dmg2", 2)
    _append(pg_url, "edge-3", 4)
    assert main(["fleet", "trustpoints", "--store", pg_url]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("% Quarantined, not folded from there on (see fleet devices): dmg2 "
                          "at seq 2 (hash chain broken).")
    assert [ln.split()[:2] for ln in out.splitlines()[1:]] == [
        ["dmg2", "tp0"], ["edge-3", "tp3"], ["edge-3", "tp4"]]
    assert _devices(pg_url) == {"dmg2": (1, 1, "damaged at seq 2: hash chain broken"),
                                "edge-3": (2, 2, "ok")}


def test_a_log_damaged_at_its_first_event_is_listed(pg_url: str) -> None:
    _append(pg_url, "dmg1", 0)
    _damage(pg_url, "dmg1", 1)
    _append(pg_url, "edge-4", 1)
    assert _devices(pg_url) == {"dmg1": (0, 0, "damaged at seq 1: hash chain broken"),
                                "edge-4": (1, 1, "ok")}


def test_a_cas_events_in_a_log_that_says_device_are_never_folded_as_a_devices(
        pg_url: str) -> None:
    with PostgresEventStore.open(pg_url, "not-a-router") as s:
        s.append([PendingEvent(ChallengeMinted(bytes(32), T0 + 10), "ca", T0 + 5)])
    _append(pg_url, "edge-5", 1)
    got = _devices(pg_url)
    assert got["not-a-router"][:2] == (0, 0)
    assert got["not-a-router"][2].startswith("damaged at seq 1: event type ChallengeMinted")
    assert got["edge-5"] == (1, 1, "ok")


def test_a_folded_log_damaged_since_is_quarantined_when_it_must_be_rebuilt(
        pg_url: str) -> None:
    _append(pg_url, "edge-6", 0, 1)
    _append(pg_url, "edge-7", 2)
    assert _devices(pg_url)["edge-6"] == (2, 2, "ok")
    _damage(pg_url, "edge-6", 1)  # a new follower rebuilds edge-6 from its rows
    _append(pg_url, "edge-6", 3)
    _append(pg_url, "edge-7", 4)
    got = _devices(pg_url)
    assert got["edge-6"] == (2, 2, "damaged at seq 1: hash chain broken")  # as folded before
    assert got["edge-7"] == (2, 2, "ok")


def _repair(url: str, log_id: str, seq: int) -> None:
    """Put back the hash `_damage` broke (the row restored from a backup)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE trustledger_events SET hash = sha256(prev || core) WHERE log_id "
                     "= %s AND seq = %s", (log_id, seq))


def test_release_lifts_a_quarantine_only_once_the_log_rechecks_whole(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _append(pg_url, "dmg3", 0, 1, 2)
    _damage(pg_url, "dmg3", 2)
    _append(pg_url, "dmg3", 3)  # skipped while quarantined
    _append(pg_url, "edge-6", 4)
    assert _devices(pg_url)["dmg3"] == (1, 1, "damaged at seq 2: hash chain broken")
    capsys.readouterr()
    assert main(["fleet", "release", "dmg3", "--store", pg_url]) == 1  # still damaged
    assert capsys.readouterr() == ("", (
        "% dmg3 is still damaged at seq 2: hash chain broken. Repair its log (`trustledger "
        "log verify --store URL --device dmg3` says where), then release it again.\n"))
    assert _devices(pg_url)["dmg3"] == (1, 1, "damaged at seq 2: hash chain broken")
    _repair(pg_url, "dmg3", 2)
    assert main(["fleet", "release", "dmg3", "--store", pg_url]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Released dmg3: its log re-checked whole and folded to seq 4 "
                          "(views at position ") and err == ""
    assert _devices(pg_url) == {"dmg3": (4, 4, "ok"), "edge-6": (1, 1, "ok")}
    _append(pg_url, "dmg3", 5)  # and it is followed again
    assert _devices(pg_url)["dmg3"] == (5, 5, "ok")
    assert main(["fleet", "trustpoints", "--store", pg_url]) == 0
    out, err = capsys.readouterr()
    assert err == "" and [ln.split()[1] for ln in out.splitlines()[1:] if
                          ln.startswith("dmg3")] == ["tp0", "tp1", "tp2", "tp3", "tp5"]


def test_release_of_a_log_that_is_not_quarantined_is_refused(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _append(pg_url, "edge-7", 0)
    assert main(["fleet", "release", "edge-7", "--store", pg_url]) == 2
    assert capsys.readouterr().err == ("% edge-7 is not quarantined: nothing to release "
                                       "(fleet devices shows each log's status).\n")
    assert _devices(pg_url) == {"edge-7": (1, 1, "ok")}
    assert main(["fleet", "release", "edge-9", "--store", pg_url]) == 2
    assert capsys.readouterr().err == "% The store has no log edge-9.\n"


def test_release_of_a_log_with_an_event_this_build_cannot_fold_is_refused(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _append(pg_url, "edge-8", 0)
    _append_foreign(pg_url, "edge-8")
    assert _devices(pg_url)["edge-8"][2] == f"damaged at seq 2: {UNFOLDED}"
    capsys.readouterr()
    assert main(["fleet", "release", "edge-8", "--store", pg_url]) == 1
    assert capsys.readouterr().err.startswith("% edge-8 still holds")
    assert _devices(pg_url)["edge-8"][2] == f"damaged at seq 2: {UNFOLDED}"


def test_hundreds_quarantined_are_named_ten_then_counted(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The `%` line every query prints names the first ten quarantined logs and counts the
    rest (`fleet devices` lists them all), not a line of kilobytes."""
    for i in range(13):
        _append(pg_url, f"dmg-{i:02d}", 0, 1)
        _damage(pg_url, f"dmg-{i:02d}", 2)
    assert main(["fleet", "devices", "--store", pg_url]) == 0
    out, err = capsys.readouterr()
    named = ", ".join(f"dmg-{i:02d} at seq 2 (hash chain broken)" for i in range(10))
    assert err == ("% Quarantined, not folded from there on (see fleet devices): "
                   f"{named}, and 3 more logs.\n")
    assert sum(ln.endswith("damaged at seq 2: hash chain broken")
               for ln in out.splitlines()) == 13
