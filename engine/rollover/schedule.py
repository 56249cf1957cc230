"""When a trustpoint's rollover step falls due: a pure function of its configuration and
folded status (engine/rollover/__init__.py has the steps), so a restart resumes where the log
says and `show crypto ca timers` shows the `shadow` timer exactly."""

from __future__ import annotations

import enum

from engine.machines.renewal import RenewalPhase
from engine.renewal.messages import certificate_facts
from engine.trustpoints import TrustpointConfig, TrustpointStatus

SHADOW_PERCENT = 90  # of the CA certificate's lifetime: when its next one is asked for
RETRY = 24 * 3600 * 1_000_000  # µs between failed GetNextCACert attempts
RECHECK = RETRY  # µs between GetCACaps re-checks of a CA that offered no GetNextCACert
EXPIRING = 7 * RETRY  # µs before the CA certificate's end: with no next one, said once more


class Step(enum.Enum):
    FETCH = "fetch"
    ENROLL = "enroll"
    ACTIVATE = "activate"


def shadow_point(ca_der: bytes) -> int:
    """90% of the CA certificate's lifetime (µs)."""
    not_before, not_after, _, _ = certificate_facts(ca_der)
    return not_before + (not_after - not_before) * SHADOW_PERCENT // 100


def next_step(cfg: TrustpointConfig | None, st: TrustpointStatus) -> tuple[int, Step] | None:
    """(due time µs, step) of the trustpoint's next rollover step, or None."""
    if cfg is None or cfg.scep_url is None or st.ca_certificate is None:
        return None
    ca_end = certificate_facts(st.ca_certificate)[1]
    if st.shadow_ca_certificate is not None:
        if enroll_due(st):
            r = st.renewal
            at = (r.next_attempt_at if r is not None and r.phase is RenewalPhase.RETRYING
                  else st.rollover.shadow_accepted_at if st.rollover is not None else 0)
            if at < ca_end:
                return at, Step.ENROLL
        return ca_end, Step.ACTIVATE
    ro = st.rollover  # a failed attempt's retry, or a CA without GetNextCACert's re-check
    at = ro.next_attempt_at if ro is not None and ro.next_attempt_at else \
        shadow_point(st.ca_certificate)
    return (at, Step.FETCH) if at < ca_end else None


def recheck_says(st: TrustpointStatus, now: int) -> bool:
    """A CA that offers no GetNextCACert, found so again at `now`: is it said (the first time,
    or the first time in the CA certificate's last week), or a silent re-check?"""
    said = st.rollover.not_offered_at if st.rollover is not None else 0
    assert st.ca_certificate is not None
    expiring = certificate_facts(st.ca_certificate)[1] - EXPIRING
    return not said or said < expiring <= now


def enroll_due(st: TrustpointStatus) -> bool:
    """A shadow router certificate is still missing for a current one, and no renewal is in
    flight but a shadow one waiting for its retry (a renewal's own answers and polls come
    first)."""
    have = {c.usage for c in st.shadow_certificates}
    if not st.certificates or all(c.usage in have for c in st.certificates):
        return False
    r = st.renewal
    if r is None or r.phase is RenewalPhase.IDLE:
        return True
    return r.phase is RenewalPhase.RETRYING and r.purpose == "shadow"
