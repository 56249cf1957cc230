"""Fleet views against a known history (tests/fleet/fleet_support.py): every device's
trustpoints and certificates as the device's own engine folded them, the filters, the
JSON shape, and the CLI's answers and refusals."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from engine.adapters.scep_inprocess import InProcessTransport
from engine.certids import ios_name, ios_serial
from engine.cli import main
from engine.fleet import queries
from engine.fleet.follower import FleetFollower
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from engine.trustpoints import status_of, trustpoint_names
from tests.fleet.fleet_support import DAY_US, Fleet, build_fleet, interleaved, load
from tests.support.peer_support import free_port
from tests.trustpoint.tp_support import CAFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(tmp_path: Path, clock: FakeClock, network: InProcessTransport,
          ca_factory: CAFactory) -> Fleet:
    f = build_fleet(tmp_path, clock, network, ca_factory)
    yield f
    for e in f.engines.values():
        e.store.close()


@pytest.fixture
def store(pg_url: str, fleet: Fleet) -> str:
    load(pg_url, interleaved(fleet))
    return pg_url


def _now() -> int:
    return time.time_ns() // 1000


def _ask(url: str, fn, **kw):  # type: ignore[no-untyped-def]
    with FleetFollower(url) as f:
        f.catch_up()
        return f.answer(lambda conn: fn(conn, **kw), _now())


def test_trustpoints_are_each_devices_own_lifecycles(store: str, fleet: Fleet) -> None:
    answer = _ask(store, queries.trustpoints)
    got = {(t.device, t.trustpoint): t.state for t in answer.rows}
    assert got == {("r1", "myca"): "enrolled", ("r1", "spare"): "declared",
                   ("r2", "myca"): "authenticated", ("r3", "myca"): "revoked",
                   ("r4", "myca"): "enrolling"}
    # the oracle: what each device's engine says of itself
    assert got == {(n, tp): status_of(e.state, tp).lifecycle.value
                   for n, e in fleet.engines.items() for tp in trustpoint_names(e.state)}
    assert answer.position == sum(e.state.seq for e in fleet.engines.values())


def test_certificates_are_those_installed_with_their_facts(store: str, fleet: Fleet) -> None:
    rows = _ask(store, queries.certificates, now_us=_now()).rows
    expected = set()
    for n, e in fleet.engines.items():
        for tp in trustpoint_names(e.state):
            st = status_of(e.state, tp)
            ders = ([("CA", st.ca_certificate, False)] if st.ca_certificate else []) + [
                ("router", c.der, c.revoked_at is not None) for c in st.certificates]
            for kind, der, revoked in ders:
                cert = x509.load_der_x509_certificate(der)
                expected.add((n, tp, kind, ios_serial(cert), ios_name(cert.subject),
                              ios_name(cert.issuer),
                              int(cert.not_valid_after_utc.timestamp()) * 1_000_000, revoked))
    got = {(c.device, c.trustpoint, c.kind, c.serial, c.subject, c.issuer, c.not_after,
            c.revoked) for c in rows}
    assert got == expected
    kinds = sorted((c.device, c.kind, c.revoked) for c in rows)
    assert kinds == [("r1", "CA", False), ("r1", "router", False), ("r2", "CA", False),
                     ("r3", "CA", False), ("r3", "router", True), ("r4", "CA", False)]
    assert [c.not_after for c in rows] == sorted(c.not_after for c in rows)


def test_issuer_filter_matches_the_dn_however_it_is_written(store: str) -> None:
    for dn in ("CN=Fleet CA Two,O=Example", "cn=fleet ca two, o=EXAMPLE",
               "commonName = Fleet CA Two , O = Example",
               "/O=Example/CN=Fleet CA Two",  # what `ca init --subject` takes, too
               "2.5.4.3=Fleet CA Two,2.5.4.10=Example", "2.5.4.3=Fleet CA Two,O=Example"):
        rows = _ask(store, queries.certificates, now_us=_now(), issuer=dn).rows
        # the CA's own certificate is self-issued: it is listed too
        assert {(c.device, c.kind) for c in rows} == {("r3", "router"), ("r3", "CA")}, dn
    rows = _ask(store, queries.certificates, now_us=_now(),
                issuer="CN=Fleet CA One,O=Example").rows
    assert sorted((c.device, c.kind) for c in rows) == [("r1", "CA"), ("r1", "router"),
                                                        ("r2", "CA")]


def test_expiring_takes_what_ends_within_the_window(store: str) -> None:
    everything = _ask(store, queries.certificates, now_us=_now()).rows
    router = min(c.not_after for c in everything if c.kind == "router")
    ca = min(c.not_after for c in everything if c.kind == "CA")
    assert router < ca
    now = router - 10 * DAY_US  # ten days before the first router certificate ends
    within = _ask(store, queries.certificates, now_us=now, within_us=10 * DAY_US).rows
    assert within and all(c.not_after <= router for c in within)
    assert _ask(store, queries.certificates, now_us=now, within_us=9 * DAY_US).rows == ()
    after_all = _ask(store, queries.certificates, now_us=ca + DAY_US, within_us=0).rows
    assert len(after_all) == len(everything)  # expired ones are listed too


def test_the_states_a_query_takes_are_the_machines() -> None:
    assert tuple(s.value for s in Lifecycle) == queries.STATES


def test_state_filter(store: str) -> None:
    rows = _ask(store, queries.trustpoints, state="revoked").rows
    assert [(t.device, t.trustpoint, t.certificates) for t in rows] == [("r3", "myca", 1)]


def test_devices_count_events_trustpoints_and_certificates(store: str, fleet: Fleet) -> None:
    rows = _ask(store, queries.devices).rows
    assert [(d.device, d.kind, d.events, d.trustpoints, d.certificates) for d in rows] == [
        ("r1", "device", fleet.engines["r1"].state.seq, 2, 2),
        ("r2", "device", fleet.engines["r2"].state.seq, 1, 1),
        ("r3", "device", fleet.engines["r3"].state.seq, 1, 2),
        ("r4", "device", fleet.engines["r4"].state.seq, 1, 1)]
    assert [d.last_at for d in rows] == [fleet.records(n)[-1].at for n in ("r1", "r2", "r3",
                                                                          "r4")]


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_text_layouts(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "trustpoints", "--store", store]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Device  Trustpoint  State          Certificates",
        "r1      myca        enrolled                  1",
        "r1      spare       declared                  0",
        "r2      myca        authenticated             0",
        "r3      myca        revoked                   1",
        "r4      myca        enrolling                 0"]
    assert main(["fleet", "devices", "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Device", "Kind", "Events", "Last", "Event", "Trustpoints",
                                "Certificates", "Status"]
    assert [ln.split()[:2] + ln.split()[-3:] for ln in lines[1:]] == [
        ["r1", "device", "2", "2", "ok"], ["r2", "device", "1", "1", "ok"],
        ["r3", "device", "1", "2", "ok"], ["r4", "device", "1", "1", "ok"]]
    assert main(["fleet", "certificates", "--store", store, "--issuer",
                 "CN=Fleet CA Two,O=Example"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    (row,) = [r for r in rows if " router " in r]
    assert re.split(r"\s{2,}", header) == ["Device", "Trustpoint", "Kind", "Serial",
                                                    "Subject", "Issuer", "Not After",
                                                    "Days Left"]
    cells = re.split(r"\s{2,}", row)
    assert cells[:3] == ["r3", "myca", "router"]
    assert cells[4:6] == ["cn=r3.mydomain.com", "cn=Fleet CA Two,o=Example"] or cells[5] == (
        "cn=Fleet CA Two,o=Example")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cells[6]) and int(cells[7]) <= 366


def test_cli_json_shape(store: str, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTLEDGER_STORE", store)  # in place of --store
    assert main(["fleet", "certificates", "--json", "--issuer", "cn=fleet ca two,o=example"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"position", "now", "certificates"} and doc["position"] > 0
    (c,) = [c for c in doc["certificates"] if c["kind"] == "router"]
    assert set(c) == {"device", "trustpoint", "kind", "serial", "subject", "issuer",
                      "not_after", "days_left", "revoked"}
    assert (c["device"], c["kind"], c["revoked"]) == ("r3", "router", True)
    assert main(["fleet", "trustpoints", "--json", "--state", "enrolling"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["trustpoints"] == [{"device": "r4", "trustpoint": "myca", "state": "enrolling",
                                   "certificates": 0}]
    assert main(["fleet", "devices", "--json"]) == 0
    devices = json.loads(capsys.readouterr().out)["devices"]
    assert [d["device"] for d in devices] == ["r1", "r2", "r3", "r4"]
    assert set(devices[0]) == {"device", "kind", "events", "last_event", "trustpoints",
                               "certificates", "status"}
    assert {d["status"] for d in devices} == {"ok"}


@pytest.mark.parametrize(("argv", "message"), [
    (["certificates", "--expiring", "30x"], "% Invalid duration '30x'"),
    (["certificates", "--expiring", "d30"], "% Invalid duration 'd30'"),
    (["certificates", "--expiring", "\u0663d"], "% Invalid duration '\u0663d'"),  # ٣: not ASCII
    (["certificates", "--issuer", "Fleet CA"], "% Invalid issuer DN 'Fleet CA'"),
    (["trustpoints", "--state", "enroled"], "% Unknown trustpoint state 'enroled'"),
])
def test_cli_usage_errors_exit_2_and_touch_nothing(
        store: str, argv: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", *argv, "--store", store]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err
    with psycopg.connect(store) as conn:  # refused before the views were even made
        assert conn.execute("SELECT to_regclass('trustledger_fleet_position')"
                            ).fetchone() == (None,)


def test_cli_store_errors(pg_url: str, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTLEDGER_STORE", raising=False)
    assert main(["fleet", "devices"]) == 2
    assert capsys.readouterr().err.startswith("% No store: give --store")
    assert main(["fleet", "devices", "--store", "/tmp/store"]) == 2
    assert capsys.readouterr().err.startswith(  # the text of every --store (storebinding)
        "% --store must be a PostgreSQL URL (postgresql://USER@HOST:PORT/DATABASE), not "
        "'/tmp/store'.")
    assert main(["fleet", "devices", "--store", "mysql://u:pw@127.0.0.1/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("% --store must be a PostgreSQL URL") and "pw" not in err
    down = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/fleet"
    assert main(["fleet", "devices", "--store", down]) == 1
    err = capsys.readouterr().err
    assert err.startswith("% Cannot open the event store postgresql://nobody@127.0.0.1:")
    assert "secret" not in err and "Traceback" not in err
    assert main(["fleet", "devices", "--store", pg_url]) == 1  # an empty database
    assert "holds no trustledger event store" in capsys.readouterr().err
