"""A device in memory on a fake clock with trustpoints whose CA certificates are test CAs,
a fake CRL fetcher plugged in, and a way to record what `fetch_crl` returns."""

from __future__ import annotations

from collections.abc import Iterable

from engine import Engine
from engine.ports import FakeClock
from engine.runtime import drive
from events.registry import Event
from events.store import PendingEvent
from tests.support.crl_support import FakeCrlFetcher, Issuer
from tests.trustpoint.tp_support import pem_lines


def device(clock: FakeClock, fetcher: FakeCrlFetcher) -> Engine:
    e = Engine.in_memory(clock=clock)
    e.ports.crls = fetcher
    return e


def ok(e: Engine, line: str, *answers: str) -> str:
    r = e.execute(line, answers=list(answers))
    assert r.ok, (line, r.output)
    return r.output


def configure(e: Engine, *lines: str) -> None:
    for line in ("configure", *lines, "commit", "end"):
        ok(e, line)


def trustpoint(e: Engine, name: str, ca: Issuer, extra: Iterable[str] = ()) -> None:
    """A cut-and-paste trustpoint that has authenticated `ca`."""
    configure(e, f"crypto ca trustpoint {name}", "enrollment terminal", *extra)
    ok(e, f"crypto ca authenticate {name}", *pem_lines(ca.der), "yes")


def record(e: Engine, handler: object) -> list[Event]:
    """Drive a fetch generator through the engine's ports and append its events."""
    events: list[Event] = drive(handler, e.ports)  # type: ignore[arg-type]
    now = e.ports.clock.now_us()
    e.fold(e.store.append([PendingEvent(ev, "device", now, "tester", "test") for ev in events]))
    return events



