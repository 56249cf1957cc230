"""The renewal timers (listed in engine/device_timers.py): `renew <trustpoint>` (an attempt,
or the activation of a held certificate), `poll <trustpoint>` (a PENDING renewal) and
`alert <trustpoint>` (expiry notifications). When each is due is engine/renewal/schedule.py's;
what each job does is here or in exchange.py.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from engine.effects import Outcome
from engine.renewal import schedule
from engine.renewal.messages import certificate_facts, said
from engine.schedule import Job
from engine.state import DeviceState
from engine.trustpoints import status_of

Run = Callable[[DeviceState, int], Any]


def due_renewals(state: DeviceState, now: int) -> list[Job]:
    """Renewal attempts and held certificates' activations due at or before `now`."""
    jobs = []
    for name, st in state.trustpoints.items():
        cfg = state.trustpoint_configs.get(name)
        if cfg is None:
            continue
        at = schedule.next_attempt(cfg, st)
        if at is not None and at <= now:
            jobs.append(Job(f"renew {name}", at, _attempt(name)))
        held = schedule.next_activation(st)
        if held is not None and held <= now:
            jobs.append(Job(f"renew {name}", held, _activation(name)))
    return jobs


def due_renewal_polls(state: DeviceState, now: int) -> list[Job]:
    """CertPolls of PENDING renewals due at or before `now`."""
    return [Job(f"poll {name}", at, _poll(name)) for name, st in state.trustpoints.items()
            if (at := schedule.next_poll(st)) is not None and at <= now]


def due_alerts(state: DeviceState, now: int) -> list[Job]:
    """One job per trustpoint with an expiry notification due at or before `now` (all of
    its certificates due then are notified together)."""
    jobs = []
    for name, st in state.trustpoints.items():
        cfg = state.trustpoint_configs.get(name)
        points = [at for kind, der, _ in schedule.watched(cfg, st)
                  if (at := schedule.alert_due(cfg, st, kind, der)) is not None]
        if points and min(points) <= now:
            jobs.append(Job(f"alert {name}", min(points), _alerts(name)))
    return jobs


def _attempt(name: str) -> Run:
    return lambda state, now: _exchange().renewal_exchange(state, name, now)


def _poll(name: str) -> Run:
    return lambda state, now: _exchange().renewal_poll(state, name, now)


def _exchange() -> ModuleType:
    """engine.renewal.exchange, loaded when a job runs, not when one is found due."""
    from engine.renewal import exchange

    return exchange


def _activation(name: str) -> Run:
    return lambda state, now: activate(state, name, now)


def _alerts(name: str) -> Run:
    return lambda state, now: alert(state, name, now)


def activate(state: DeviceState, name: str, now: int) -> Outcome:
    """Install every held certificate whose validity has begun."""
    from events.renewal import NextCertificateActivated  # loaded when a job runs

    st = status_of(state, name)
    events = [NextCertificateActivated(name, c.key_id, c.usage, certificate_facts(c.der)[2])
              for c in st.next_certificates if certificate_facts(c.der)[0] <= now]
    return said(events, now)


def alert(state: DeviceState, name: str, now: int) -> Outcome:
    """An expiry notification for each certificate of the trustpoint whose one is due."""
    from events.renewal import CertificateExpiryWarned  # loaded when a job runs

    st = status_of(state, name)
    cfg = state.trustpoint_configs.get(name)
    events = []
    for kind, der, auto in schedule.watched(cfg, st):
        at = schedule.alert_due(cfg, st, kind, der)
        if at is None or at > now:
            continue
        _, not_after, serial, issuer = certificate_facts(der)
        events.append(CertificateExpiryWarned(name, kind, serial, issuer, not_after,
                                              schedule.days_left(not_after, now),
                                              auto))
    return said(events, now)
