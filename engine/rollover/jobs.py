"""The rollover timer (listed in engine/device_timers.py): `shadow <trustpoint>`, whose step
(fetch the CA's next certificate, enroll under it, or switch to it) follows from the status
(engine/rollover/schedule.py says which, and when)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from engine.effects import Effect, Outcome
from engine.errors import TrustledgerError
from engine.renewal.messages import certificate_facts
from engine.rollover import folds
from engine.rollover.messages import message_of
from engine.rollover.schedule import RETRY, Step, enroll_due, next_step
from engine.schedule import Job
from engine.state import DeviceState
from engine.trustpoints import status_of

if TYPE_CHECKING:
    pass

Run = Callable[[DeviceState, int], Any]


def due_shadow(state: DeviceState, now: int) -> list[Job]:
    """Each trustpoint's next rollover step due at or before `now`."""
    jobs = []
    for name, st in state.trustpoints.items():
        found = next_step(state.trustpoint_configs.get(name), st)
        if found is not None and found[0] <= now:
            jobs.append(Job(f"shadow {name}", found[0], _step(name)))
    return jobs


def _step(name: str) -> Run:
    return lambda state, now: shadow(state, name, now)


def shadow(state: DeviceState, name: str, now: int) -> Generator[Effect, Any, Outcome]:
    """The trustpoint's rollover step that is due."""
    cfg = state.trustpoint_configs.get(name)
    st = status_of(state, name)
    found = next_step(cfg, st)
    if found is None or found[0] > now:
        return Outcome()
    step = found[1]
    if step is Step.ACTIVATE:
        return activate(state, name, now)
    if step is Step.ENROLL:
        from engine.renewal import renewal_exchange  # SCEP, when a job runs

        return (yield from renewal_exchange(state, name, now, st.shadow_ca_certificate,
                                            purpose="shadow"))
    return (yield from fetch(state, name, now))


def fetch(state: DeviceState, name: str, now: int) -> Generator[Effect, Any, Outcome]:
    """GetNextCACert; a verified answer is held as the shadow CA and, unless a renewal is in
    flight, the shadow enrollment follows in the same batch."""
    from engine.renewal import renewal_exchange  # SCEP, when a job runs
    from engine.rollover.fetch import FetchNextCA, NextCAFetched
    from events.rollover import ShadowCAAccepted, ShadowCAFetchFailed, ShadowCANotOffered
    cfg = state.trustpoint_configs[name]
    st = status_of(state, name)
    assert cfg.scep_url is not None and st.ca_certificate is not None  # next_step checked
    ca_end = certificate_facts(st.ca_certificate)[1]
    try:
        fetched: NextCAFetched = yield FetchNextCA(cfg.scep_url, st.ca_certificate)
    except TrustledgerError as err:
        return _said([ShadowCAFetchFailed(name, err.text, now + RETRY)], now)
    if fetched.certificate is None:
        return _said([ShadowCANotOffered(name, ca_end)], now)
    accepted = ShadowCAAccepted(name, fetched.certificate, ca_end)
    held = folds.accepted(state, accepted, now)
    said = _said([accepted], now)
    if not enroll_due(status_of(held, name)):
        return said
    enrolled = yield from renewal_exchange(held, name, now, fetched.certificate,
                                           purpose="shadow")
    more = enrolled.output if isinstance(enrolled.output, str) else ""
    return Outcome(events=[accepted, *enrolled.events],
                   output="\n".join(x for x in (str(said.output), more) if x))


def activate(state: DeviceState, name: str, now: int) -> Outcome:
    """At the old CA certificate's expiry: the shadow CA and the shadow router certificates
    become current, in one batch."""
    st = status_of(state, name)
    assert st.shadow_ca_certificate is not None and st.ca_certificate is not None
    from events.rollover import ShadowCAActivated, ShadowCertificateActivated

    events: list[Any] = [ShadowCAActivated(name, certificate_facts(st.shadow_ca_certificate)[2],
                                           certificate_facts(st.ca_certificate)[2])]
    events += [ShadowCertificateActivated(name, c.key_id, c.usage, certificate_facts(c.der)[2])
               for c in st.shadow_certificates]
    return _said(events, now)


def _said(events: list[Any], now: int) -> Outcome:
    lines = [m for ev in events if (m := message_of(ev, now)) is not None]
    return Outcome(events=events, output="\n".join(lines))
