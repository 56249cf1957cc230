"""When renewal work falls due: pure functions of a trustpoint's configuration and folded
status (so a restarted engine resumes where the log says, and a replay shows every timer).

Renewal (`auto-enroll P`): the first attempt is due when P percent of the router
certificate's lifetime has passed (the earliest such point among the trustpoint's key usages);
a failed attempt is retried after a wait that backs off (`retry_wait`: the retry period after
the first failure, then twice it, four times ..., at most `MAX_WAIT_MINUTES`), never at or past
the certificate's expiry (a renewal signs with it); a PENDING one is polled
(`next_poll_at`); a held certificate is activated at its notBefore. Nothing is due while the
trustpoint is not enrolled (e.g. an operator's re-enrollment is running), nor for a trustpoint
without an enrollment url (a renewal is a SCEP exchange: `enrollment terminal` cannot renew
unattended).

Expiry alerts: 60 days before a certificate's end, then weekly (53, 46, ..., 11 days), then
daily in the last week (7 .. 1 days), for the router certificates and the CA certificate.
The next alert is the first point after the last one for that certificate; the first one is
the 60-day point, or at once for a certificate that has less left. None for a certificate
already covered: a router certificate whose held successor (auto-enroll) begins at or before
its end, a CA certificate whose shadow (the CA's next certificate) does; none yet while a CA
rollover step that may cover it is due first (`_rollover_first`). None for a revoked
router certificate: its one notice is `%PKI-3-CERTIFICATE_REVOKED`, which says to enroll again
(nothing renews it, so its expiry says nothing more); the other certificates of a `revoked`
trustpoint are notified with auto-enroll off, as nothing renews them either.
"""

from __future__ import annotations

from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.renewal.messages import certificate_facts
from engine.rollover.schedule import Step, next_step
from engine.trustpoints import RenewalState, TrustpointConfig, TrustpointStatus

DAY = 24 * 3600 * 1_000_000
# ... and 0: the certificate's end, said once as it happens ("expired at"): renewal stops
# there, and an operator watching the log learns it then, not from `show` alone.
ALERT_DAYS = (60, 53, 46, 39, 32, 25, 18, 11, 7, 6, 5, 4, 3, 2, 1, 0)
WEEK_DAYS = 7  # at or under this many days left, a notification is an alert, not a warning
MINUTE = 60_000_000
MAX_WAIT_MINUTES = 60  # the largest retry period the reference allows: the back-off's cap


def retry_wait(retry_period: int, failures: int) -> int:
    """How long after a failed attempt the next one is due (µs), `failures` being the
    consecutive failed attempts of the renewal before this one (RenewalState.failures): a CA
    down for a day costs about 24 attempts and log lines, not 1,440. The count is folded from
    the log (events' `RenewalFailed`), so replay gives the same schedule; success, a new
    renewal, `crypto ca enroll` and a change to the trustpoint's configuration reset it
    (engine/renewal/folds.py)."""
    doubled = retry_period << min(failures, 6)  # 1 << 6 minutes is past the cap already
    return min(doubled, max(retry_period, MAX_WAIT_MINUTES)) * MINUTE


def retry_at(now: int, retry_period: int, failures: int, end: int | None) -> int:
    """When the next attempt after a failure at `now` is due (µs): after `retry_wait`, but a
    wait that would reach the certificate's `end` is cut to one retry period before it, so
    the back-off never costs the last chance to renew. 0 when that last chance has passed
    too: no attempt runs at or past the end (`next_attempt`), so none is promised (the
    failure's message says so). `end`: None for a shadow enrollment, whose deadline is the
    rollover's."""
    at = now + retry_wait(retry_period, failures)
    if end is None or at < end - retry_period * MINUTE:
        return at
    last = end - retry_period * MINUTE
    return last if last > now else 0


def failures_so_far(r: RenewalState | None) -> int:
    """The consecutive failed attempts before one now running, as RenewalState has them:
    a retry (from `retrying`) continues its renewal's count, a new renewal starts at none
    (as engine/renewal/folds.py `requested` folds it)."""
    return r.failures if r is not None and r.phase is RenewalPhase.RETRYING else 0


def renewal_point(cfg: TrustpointConfig, st: TrustpointStatus) -> int | None:
    """When `auto-enroll` renews the current certificates (µs), or None."""
    if cfg.auto_enroll is None or not st.certificates:
        return None
    points = []
    for c in st.certificates:
        not_before, not_after, _, _ = certificate_facts(c.der)
        points.append(not_before + (not_after - not_before) * cfg.auto_enroll // 100)
    return min(points)


def expiry(st: TrustpointStatus) -> int:
    """The earliest end of the current router certificates (µs)."""
    return min(certificate_facts(c.der)[1] for c in st.certificates)


def next_attempt(cfg: TrustpointConfig, st: TrustpointStatus) -> int | None:
    """When the next renewal attempt is due (µs), or None (none due: auto-enroll off, no
    enrollment url, not enrolled, a renewal in flight or held, or the certificate expires
    first)."""
    if (cfg.auto_enroll is None or cfg.scep_url is None or st.lifecycle is not Lifecycle.ENROLLED
            or not st.certificates or st.next_certificates):
        return None
    r = st.renewal
    phase = r.phase if r is not None else RenewalPhase.IDLE
    if phase is RenewalPhase.RETRYING and r is not None:
        if r.purpose != "renew":
            return None  # a shadow enrollment's retry is the rollover timer's, not this one
        at = r.next_attempt_at
    elif phase is RenewalPhase.IDLE:
        at = renewal_point(cfg, st) or 0
    else:
        return None
    return at if at and at < expiry(st) else None


def next_poll(st: TrustpointStatus) -> int | None:
    r = st.renewal
    if r is None or r.phase is not RenewalPhase.PENDING or not r.next_poll_at:
        return None
    return r.next_poll_at


def next_activation(st: TrustpointStatus) -> int | None:
    """When the earliest held certificate's validity begins (µs), or None."""
    if not st.next_certificates:
        return None
    return min(certificate_facts(c.der)[0] for c in st.next_certificates)


def days_left(not_after: int, at: int) -> int:
    """The days a notice given at `at` says are left, rounded up (0 once ended): a notice due
    at the 7-day point runs a moment later (the shell's clock ticks every second) and must
    still say 7, or the next point (6) would look already said and be skipped."""
    return max(0, -((at - not_after) // DAY))


def alert_after(not_after: int, since: int) -> int | None:
    """The first alert point for a certificate ending at `not_after` later than `since` (its
    last notice; 0: none yet) that has fewer days left than that notice said: one given
    between two points (at once, for a certificate installed with 4.5 days left, saying "5
    days") is not said again before the 4-day point."""
    said = days_left(not_after, since) if since else None
    for days in ALERT_DAYS:
        point = not_after - days * DAY
        if point > since and (said is None or days < said):
            return point
    return None


def watched(cfg: TrustpointConfig | None,
            st: TrustpointStatus) -> list[tuple[str, bytes, bool]]:
    """(type, DER, auto-enroll) of each certificate whose expiry is watched: the CA's unless
    its shadow covers it, each router certificate's unless a held successor (or a shadow
    router certificate, CA rollover) does or a CRL revoked it. "auto-enroll" is on only where
    a renewal can run: not from `revoked`."""
    auto = cfg is not None and cfg.auto_enroll is not None and \
        st.lifecycle is not Lifecycle.REVOKED  # nothing renews from `revoked`
    out: list[tuple[str, bytes, bool]] = []
    if st.ca_certificate is not None and not _covered(st.ca_certificate,
                                                      st.shadow_ca_certificate):
        out.append(("CA", st.ca_certificate, False))
    for c in st.certificates:
        if c.revoked_at is not None:
            continue  # its one notice was %PKI-3-CERTIFICATE_REVOKED ("enroll again")
        nxt = next((n.der for n in (*st.next_certificates, *st.shadow_certificates)
                    if n.usage == c.usage), None)
        if not (auto and _covered(c.der, nxt)):
            out.append((c.usage, c.der, auto))
    return out


def _covered(der: bytes, successor: bytes | None) -> bool:
    return successor is not None and certificate_facts(successor)[0] <= certificate_facts(der)[1]


def alert_due(cfg: TrustpointConfig | None, st: TrustpointStatus, kind: str,
              der: bytes) -> int | None:
    """When the next expiry notification of one certificate is due (µs), or None."""
    _, not_after, serial, _ = certificate_facts(der)
    last = dict(st.expiry_alerts).get(f"{kind} {serial}", 0)
    point = alert_after(not_after, last)
    if point is not None and kind != "CA" and _rollover_first(cfg, st, der, point):
        return None
    return point


def _rollover_first(cfg: TrustpointConfig | None, st: TrustpointStatus, der: bytes,
                    point: int) -> bool:
    """With auto-enroll (a shadow router certificate covers the current one), a CA rollover
    step that may cover the router certificate `der` (fetching the CA's next certificate and
    enrolling under it, or the shadow enrollment) was due when its notice was (at its `point`,
    or when it was installed if that was later): the notice waits for the step's outcome.
    E.g. a router certificate enrolled in the CA certificate's last week: its notice and the
    shadow enrollment are both due at once, and the shadow certificate covers it. If the step
    fails, its retry is later than the notice, which then follows. (A daily re-check of a CA
    that offered no next certificate is not waited for: it is unlikely to cover anything.)"""
    if cfg is None or cfg.auto_enroll is None:
        return False
    found = next_step(cfg, st)
    rechecking = st.rollover is not None and st.rollover.not_offered_at > 0
    if found is None or found[1] is Step.ACTIVATE or (found[1] is Step.FETCH and rechecking):
        return False
    installed = max((c.installed_at for c in st.certificates if c.der == der), default=0)
    return found[0] <= max(point, installed)
