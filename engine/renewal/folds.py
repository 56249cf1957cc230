"""What renewal and expiry events change in a trustpoint's status (listed in
engine/device_folds.py). The renewal's phase comes from its machine
(engine/machines/renewal.py); the trustpoint's lifecycle is never touched: it stays enrolled
while its certificates are renewed under it.

A renewed certificate replaces the current one of its key usage when its event's time is at
or after its notBefore, and is held in `next_certificates` otherwise, until
`NextCertificateActivated`. An operator's `crypto ca enroll` supersedes a renewal in flight
(the new certificate restarts the schedule) and drops any held certificate when its own
certificate arrives.

The back-off of failed attempts (engine/renewal/schedule.py `retry_wait`) reads `failures`,
the consecutive failed attempts of the renewal: `RenewalFailed` adds one; a retry keeps the
count, a new renewal starts at none; a certificate received (success), `crypto ca enroll`,
a cancel, the CA switch that ends a shadow enrollment (engine/rollover/folds.py) and a
commit that changes the trustpoint's lines (`reconfigured`) reset it.
"""

from __future__ import annotations

from dataclasses import replace

from engine.machines.renewal import RenewalPhase, after, allows
from engine.renewal.schedule import MINUTE
from engine.state import DeviceState
from engine.trustpoints import (
    RenewalState,
    RouterCertificate,
    put_status,
    trustpoint_key,
    with_certificate,
)
from events.device import ConfigurationCommitted
from events.keys import KeyPairZeroized
from events.renewal import (
    CertificateExpiryWarned,
    NextCertificateActivated,
    RenewalCertificateReceived,
    RenewalFailed,
    RenewalPending,
    RenewalRequested,
)
from events.trustpoint import CertificateReceived, EnrollmentRequested


def requested(state: DeviceState, ev: RenewalRequested, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    r = st.renewal
    again = r is not None and r.phase is RenewalPhase.RETRYING
    renewal = RenewalState(
        phase=after(r.phase if again and r is not None else RenewalPhase.IDLE, "request"),
        purpose=ev.purpose, started_at=r.started_at if again and r is not None else at,
        attempts=r.attempts + 1 if again and r is not None else 1, last_attempt_at=at,
        last_result="", subject=ev.subject, key_ids=ev.key_ids,
        transaction_ids=ev.transaction_ids, retry_period=ev.retry_period,
        retry_count=ev.retry_count, failures=r.failures if again and r is not None else 0)
    return put_status(state, replace(st, renewal=renewal))


def pending(state: DeviceState, ev: RenewalPending, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    r = st.renewal if st is not None else None
    if st is None or r is None or not allows(r.phase, "pending"):
        return state
    result = f"poll failed: {ev.poll_error}" if ev.poll_error else "pending"
    return put_status(state, replace(st, renewal=replace(
        r, phase=after(r.phase, "pending"), polls=ev.polls, next_poll_at=ev.next_poll_at,
        last_result=result)))


def received(state: DeviceState, ev: RenewalCertificateReceived, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    r = st.renewal if st is not None else None
    if st is None or r is None or not allows(r.phase, "received"):
        return state
    cert = RouterCertificate(ev.key_id, ev.usage, ev.certificate, at)
    if ev.purpose == "shadow":
        st = replace(st, shadow_certificates=with_certificate(st.shadow_certificates, cert))
    elif ev.not_before > at:
        st = replace(st, next_certificates=with_certificate(st.next_certificates, cert))
    else:
        st = replace(st, certificates=with_certificate(st.certificates, cert))
    got = (*r.received, ev.key_id)
    if set(got) < set(r.key_ids):
        return put_status(state, replace(st, renewal=replace(r, received=got)))
    held = bool(st.next_certificates) or ev.purpose == "shadow"
    trigger = "held" if held else "issued"
    return put_status(state, replace(st, renewal=replace(
        r, phase=after(r.phase, trigger), received=got, next_poll_at=0, last_result=trigger,
        failures=0)))


def failed(state: DeviceState, ev: RenewalFailed, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    r = st.renewal if st is not None else None
    if st is None or r is None or not allows(r.phase, "fail"):
        return state
    result = ev.reason + (f" ({ev.fail_info})" if ev.fail_info else "") + f": {ev.detail}"
    return put_status(state, replace(st, renewal=replace(
        r, phase=after(r.phase, "fail"), next_attempt_at=ev.next_attempt_at, polls=0,
        next_poll_at=0, received=(), last_result=result, failures=r.failures + 1)))


def activated(state: DeviceState, ev: NextCertificateActivated, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    cert = next((c for c in st.next_certificates if c.key_id == ev.key_id
                 and c.usage == ev.usage), None)
    if cert is None:
        return state
    rest = tuple(c for c in st.next_certificates if c is not cert)
    st = replace(st, certificates=with_certificate(st.certificates, replace(cert, installed_at=at)),
                 next_certificates=rest)
    r = st.renewal
    if not rest and r is not None and allows(r.phase, "activate"):
        st = replace(st, renewal=replace(r, phase=after(r.phase, "activate"),
                                         last_result="activated"))
    return put_status(state, st)


def superseded(state: DeviceState, ev: EnrollmentRequested, at: int) -> DeviceState:
    """The operator's `crypto ca enroll`: a renewal in flight is dropped."""
    st = state.trustpoints.get(ev.trustpoint)
    r = st.renewal if st is not None else None
    if st is None or r is None or r.phase is RenewalPhase.IDLE:
        return state
    return put_status(state, replace(st, renewal=replace(
        r, phase=after(r.phase, "supersede"), next_poll_at=0, next_attempt_at=0,
        last_result="superseded by crypto ca enroll", failures=0)))


def cancelled(state: DeviceState, ev: ConfigurationCommitted, at: int) -> DeviceState:
    """A commit that leaves a retrying renewal nothing to retry it (`no auto-enroll`, or no
    enrollment url: engine/renewal/schedule.py `next_attempt`) cancels it. A shadow
    enrollment's retry is the rollover's, which needs no auto-enroll: it stays."""
    if not state.trustpoints:
        return state
    for name, st in list(state.trustpoints.items()):
        r = st.renewal
        if r is None or r.purpose != "renew" or not allows(r.phase, "cancel"):
            continue
        cfg = state.trustpoint_configs.get(name)
        if cfg is not None and cfg.auto_enroll is not None and cfg.scep_url is not None:
            continue
        why = "auto-enroll is off" if cfg is None or cfg.auto_enroll is None else \
            "no enrollment url"
        state = put_status(state, replace(st, renewal=replace(
            r, phase=after(r.phase, "cancel"), next_attempt_at=0, failures=0,
            last_result=f"{r.last_result}; cancelled: {why}")))
    return state


def reconfigured(state: DeviceState, ev: ConfigurationCommitted, at: int) -> DeviceState:
    """A commit that changes a trustpoint's lines resets its renewal's back-off (the operator
    may have fixed what failed: the URL, the retry period): the count of consecutive failures
    starts again, and a retry further away than one retry period from the commit is brought
    forward to it."""
    if not state.trustpoints:
        return state
    touched = {path[0] for path, _old, _new in ev.changes}
    for name, st in list(state.trustpoints.items()):
        cfg = state.trustpoint_configs.get(name)
        r = st.renewal
        if cfg is None or r is None or not r.failures or trustpoint_key(name) not in touched:
            continue
        retry_at = r.next_attempt_at
        if r.phase is RenewalPhase.RETRYING:
            retry_at = min(retry_at, at + cfg.retry_period * MINUTE)
        state = put_status(state, replace(st, renewal=replace(
            r, failures=0, next_attempt_at=retry_at)))
    return state


def installed_by_hand(state: DeviceState, ev: CertificateReceived, at: int) -> DeviceState:
    """A certificate an enrollment brought in: a held renewed one of that usage is stale."""
    st = state.trustpoints.get(ev.trustpoint)
    if st is None or not any(c.usage == ev.usage for c in st.next_certificates):
        return state
    return put_status(state, replace(st, next_certificates=tuple(
        c for c in st.next_certificates if c.usage != ev.usage)))


def warned(state: DeviceState, ev: CertificateExpiryWarned, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    key = f"{ev.certificate_type} {ev.serial}"  # one entry per certificate ever notified
    alerts = (*(a for a in st.expiry_alerts if a[0] != key), (key, at))
    return put_status(state, replace(st, expiry_alerts=alerts))



def keys_zeroized(state: DeviceState, ev: KeyPairZeroized, at: int) -> DeviceState:
    """Held (and shadow) certificates of a zeroized key pair go with it, as the current ones
    do (engine/trustpoints.py)."""
    gone = set(ev.key_ids)
    for st in list(state.trustpoints.values()):
        held = tuple(c for c in st.next_certificates if c.key_id not in gone)
        shadow = tuple(c for c in st.shadow_certificates if c.key_id not in gone)
        if held != st.next_certificates or shadow != st.shadow_certificates:
            state = put_status(state, replace(st, next_certificates=held,
                                              shadow_certificates=shadow))
    return state
