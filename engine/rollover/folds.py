"""What rollover events change in a trustpoint's status (listed in engine/device_folds.py).
The shadow router certificates are folded by the renewal folds (engine/renewal/folds.py,
purpose "shadow"); here: the shadow CA certificate, failed and refused GetNextCACert
attempts, and the switch at the old CA certificate's expiry."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from engine.machines.renewal import after, allows
from engine.rollover.schedule import RECHECK
from engine.state import DeviceState
from engine.trustpoints import RolloverState, RouterCertificate, put_status, with_certificate

if TYPE_CHECKING:
    from events.rollover import (
        ShadowCAAccepted,
        ShadowCAActivated,
        ShadowCAFetchFailed,
        ShadowCANotOffered,
        ShadowCARechecked,
        ShadowCertificateActivated,
    )


def accepted(state: DeviceState, ev: ShadowCAAccepted, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    return put_status(state, replace(st, shadow_ca_certificate=ev.ca_certificate,
                                     shadow_certificates=(),
                                     rollover=RolloverState(shadow_accepted_at=at)))


def fetch_failed(state: DeviceState, ev: ShadowCAFetchFailed, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    ro = st.rollover or RolloverState()
    return put_status(state, replace(st, rollover=replace(
        ro, attempts=ro.attempts + 1, last_result=ev.detail,
        next_attempt_at=ev.next_attempt_at)))


def not_offered(state: DeviceState, ev: ShadowCANotOffered, at: int) -> DeviceState:
    """Said; GetCACaps is asked again a day later."""
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    ro = st.rollover or RolloverState()
    return put_status(state, replace(st, rollover=replace(ro, not_offered_at=at,
                                                          next_attempt_at=at + RECHECK)))


def rechecked(state: DeviceState, ev: ShadowCARechecked, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    ro = st.rollover or RolloverState()
    return put_status(state, replace(st, rollover=replace(ro, next_attempt_at=ev.next_check_at,
                                                          last_result=ev.detail)))


def ca_activated(state: DeviceState, ev: ShadowCAActivated, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None or st.shadow_ca_certificate is None:
        return state
    st = replace(st, ca_certificate=st.shadow_ca_certificate, ra_certificates=(),
                 shadow_ca_certificate=None, rollover=None, held_by_ca=())
    r = st.renewal
    if r is not None and r.purpose == "shadow":
        # the shadow enrollment is over: held (done) or still trying, it ends with the switch
        phase = after(r.phase, "activate") if allows(r.phase, "activate") else \
            after(r.phase, "supersede")
        st = replace(st, renewal=replace(r, phase=phase, next_attempt_at=0, next_poll_at=0,
                                         last_result="rolled over to the CA's next certificate",
                                         failures=0))
    return put_status(state, st)


def certificate_activated(state: DeviceState, ev: ShadowCertificateActivated,
                          at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    if st is None:
        return state
    cert = next((c for c in st.shadow_certificates if c.usage == ev.usage
                 and c.key_id == ev.key_id), None)
    if cert is None:
        return state
    installed = RouterCertificate(cert.key_id, cert.usage, cert.der, at)
    return put_status(state, replace(
        st, certificates=with_certificate(st.certificates, installed),
        shadow_certificates=tuple(c for c in st.shadow_certificates if c is not cert)))

