"""Known fleet histories for the fleet view tests: real device engines (file logs, the
built-in CA in process, one fake clock), their events then appended to a PostgreSQL store
one by one, the devices interleaved (so the global order mixes them, as a fleet's does).

The fleet (`build_fleet`):
    r1  myca enrolled (CA "ca1"); spare declared (no URL, no event)
    r2  myca authenticated (CA "ca1"), never enrolled
    r3  myca enrolled (CA "ca2"), then revoked: the CA revoked it and the device's CRL
        refresh found it
    r4  myca enrolling: CA "ca3" holds the request (manual approval, PENDING)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca import profile
from engine.ca.decide import Approval
from engine.ports import FakeClock
from events.pgstore import PostgresEventStore
from events.store import PendingEvent, Recorded
from tests.support.crl_support import FakeCrlFetcher
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    configure,
    declare,
    enroll,
    identity_and_key,
    open_device,
)

DAY_US = 86_400 * 1_000_000


@dataclass
class Fleet:
    engines: dict[str, Engine]
    ca_subjects: dict[str, str]  # device -> its CA's subject as the router prints it

    def records(self, name: str) -> list[Recorded]:
        return list(self.engines[name].store.read())


def _device(root: Path, name: str, clock: FakeClock, network: InProcessTransport) -> Engine:
    e = open_device(root / name, clock)
    e.ports.scep = network
    e.ports.crls = FakeCrlFetcher()
    return e


def _clock_set(e: Engine, us: int) -> None:
    from datetime import UTC, datetime

    t = datetime.fromtimestamp(us / 1e6, UTC)
    r = e.execute(f"clock set {t:%H:%M:%S} {t.day} {t:%B %Y}")
    assert r.ok, r.output


def build_fleet(root: Path, clock: FakeClock, network: InProcessTransport,
                ca_factory: CAFactory) -> Fleet:
    ca1, s1 = ca_factory(name="ca1", subject="CN=Fleet CA One,O=Example")
    ca2, s2 = ca_factory(name="ca2", subject="CN=Fleet CA Two,O=Example", base=110)
    ca3, s3 = ca_factory(Approval.MANUAL, name="ca3", subject="CN=Fleet CA Three,O=Example",
                          base=120)
    e = {n: _device(root, n, clock, network) for n in ("r1", "r2", "r3", "r4")}
    for n, eng in e.items():
        identity_and_key(eng)
        configure(eng, f"hostname {n}")
    declare(e["r1"], url=s1.url)
    configure(e["r1"], "crypto ca trustpoint spare")
    assert authenticate(e["r1"]).ok
    assert enroll(e["r1"], password=ca1.mint_challenge()).ok
    declare(e["r2"], url=s1.url)
    assert authenticate(e["r2"]).ok
    declare(e["r3"], url=s2.url)
    assert authenticate(e["r3"]).ok
    assert enroll(e["r3"], password=ca2.mint_challenge()).ok
    e["r3"].run_due()  # the CRL fetch due right after the enrollment
    (cached,) = e["r3"].state.crls.crls
    assert cached.next_update is not None
    clock.advance(6 * 86_400)
    from cryptography import x509

    mine = x509.load_der_x509_certificate(e["r3"].state.trustpoints["myca"].certificates[0].der)
    ca2.revoke(profile.serial_hex(mine.serial_number), "keyCompromise")
    _clock_set(e["r3"], cached.next_update + 60_000_000)
    declare(e["r4"], url=s3.url)
    assert authenticate(e["r4"]).ok
    assert enroll(e["r4"], password=ca3.mint_challenge()).ok
    subjects = {"r1": "cn=Fleet CA One,o=Example", "r2": "cn=Fleet CA One,o=Example",
                "r3": "cn=Fleet CA Two,o=Example", "r4": "cn=Fleet CA Three,o=Example"}
    return Fleet(e, subjects)


def interleaved(fleet: Fleet, names: Iterable[str] | None = None
                ) -> Iterator[tuple[str, Recorded]]:
    """Every device's records, round-robin across devices."""
    names = list(names or fleet.engines)
    streams = [[(n, r) for r in fleet.records(n)] for n in names]
    for group in zip_longest(*streams):
        yield from (x for x in group if x is not None)


def pending_of(r: Recorded) -> PendingEvent:
    return PendingEvent(r.event, r.stream, r.at, r.actor, r.correlation)


def load(url: str, items: Iterable[tuple[str, Recorded]]) -> int:
    """Append each record to its device's log in the store, one append each."""
    stores: dict[str, PostgresEventStore] = {}
    n = 0
    try:
        for name, rec in items:
            s = stores.get(name)
            if s is None:
                s = stores[name] = PostgresEventStore.open(url, name)
            (got,) = s.append([pending_of(rec)])
            assert got.hash == rec.hash  # the same chain as the file log
            n += 1
    finally:
        for s in stores.values():
            s.close()
    return n


def dump(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every fleet view table's rows, sorted (to compare two databases' views)."""
    out = {}
    for table, order in (("trustledger_fleet_devices", "device"),
                         ("trustledger_fleet_trustpoints", "device, trustpoint"),
                         ("trustledger_fleet_certificates", "device, ord")):
        out[table] = [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]
    return out
