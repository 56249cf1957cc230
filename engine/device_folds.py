"""The device aggregate's fold table: every device event type, and the folds that apply it.

This is the one list (see engine/folds.py). The folds of each event run in the order given:
the trustpoint folds (engine/trustpoints.py) before the logging folds below, so a message is
derived from the trustpoint as the event left it (but a fetched CRL's, derived from the cache
before the CRL enters it). Key pairs and imported keys are folded here
into `DeviceState.keys`, the `show logging` buffer into `DeviceState.messages`, `clock set`
into `DeviceState.clock_offset_us` (the engine clock's offset, engine/ports.py), and the
trustpool's folds (engine/trustpool/folds.py) into `DeviceState.trustpool`, the CRL cache's
(engine/revocation/folds.py) into `DeviceState.crls`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine import trustpoints as tp  # its folds: the trustpoint lifecycle
from engine.audit.key import AuditKey
from engine.folds import FoldTable
from engine.keys import ImportedKey, KeyAlgorithm, KeyPair, KeyRing
from engine.messages import (
    LOG_BUFFER,
    certificate_revoked,
    certificates_removed,
    certret,
    clock_update,
    failure_message,
    poll_failed,
)
from engine.renewal import folds as renewal
from engine.renewal.messages import message_of as renewal_message
from engine.revocation import folds as crl
from engine.revocation import messages as crl_messages
from engine.revocation.model import CachedCrl
from engine.rollover import folds as rollover
from engine.rollover.messages import message_of as rollover_message
from engine.state import DeviceState, commit_run, fold_commit, with_state
from engine.trustpool import folds as pool
from engine.trustpool import messages as pool_messages
from events.audit import AuditKeyCreated
from events.clock import ClockSet
from events.device import ConfigurationCommitted, WireChange
from events.keys import KeyPairGenerated, KeyPairZeroized, PublicKeyImported, PublicKeyRemoved
from events.renewal import (
    CertificateExpiryWarned,
    NextCertificateActivated,
    RenewalCertificateReceived,
    RenewalFailed,
    RenewalPending,
    RenewalRequested,
)
from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed
from events.rollover import (
    ShadowCAAccepted,
    ShadowCAActivated,
    ShadowCAFetchFailed,
    ShadowCANotOffered,
    ShadowCARechecked,
    ShadowCertificateActivated,
)
from events.trustpoint import (
    CACertificateAccepted,
    CACertificateRefused,
    CertificateReceived,
    EnrollmentFailed,
    EnrollmentPending,
    EnrollmentRequested,
    RouterCertificateRevoked,
    TrustpointCertificatesRemoved,
)
from events.trustpool import (
    TrustpoolBuiltinsRecorded,
    TrustpoolCleaned,
    TrustpoolImported,
    TrustpoolPolicyWarned,
    TrustpoolUpdateFailed,
)
from events.validation import PeerValidated

# -- keys ------------------------------------------------------------------------------------------


def _key_generated(state: DeviceState, ev: KeyPairGenerated, at: int) -> DeviceState:
    return _with_ring(state, state.keys.with_pair(KeyPair.from_event(ev, at)))


def _keys_zeroized(state: DeviceState, ev: KeyPairZeroized, at: int) -> DeviceState:
    return _with_ring(state, state.keys.without_keys(KeyAlgorithm(ev.algorithm), ev.label,
                                                     ev.key_ids))


def _key_imported(state: DeviceState, ev: PublicKeyImported, at: int) -> DeviceState:
    return _with_ring(state, state.keys.with_imported(ImportedKey.from_event(ev, at)))


def _key_removed(state: DeviceState, ev: PublicKeyRemoved, at: int) -> DeviceState:
    return _with_ring(state, state.keys.without_imported(KeyAlgorithm(ev.algorithm), ev.label))


def _with_ring(state: DeviceState, ring: KeyRing) -> DeviceState:
    return with_state(state, keys=ring)


def _audit_key(state: DeviceState, ev: AuditKeyCreated, at: int) -> DeviceState:
    return with_state(state, audit_key=AuditKey.from_event(ev, at))


# -- the engine clock ------------------------------------------------------------------------------


def _clock_set(state: DeviceState, ev: ClockSet, at: int) -> DeviceState:
    return with_state(state, clock_offset_us=ev.offset_us)


# -- peer validations (`show crypto ca counters`, the CRL fetch back-off) --------------------------


def _validated(state: DeviceState, ev: PeerValidated, at: int) -> DeviceState:
    return with_state(state, validations=state.validations.counted(ev))


def _fetch_backoff(state: DeviceState, ev: CrlFetchFailed | CrlFetched,
                   at: int) -> DeviceState:
    return with_state(state, validations=state.validations.fetch_failure(ev, at))


# -- the logging buffer (`show logging`) -------------------------------------------------------


def _log(state: DeviceState, at: int, text: str | None) -> DeviceState:
    if text is None:
        return state
    return with_state(state, messages=(*state.messages[-(LOG_BUFFER - 1):], (at, text)))


def _log_received(state: DeviceState, ev: CertificateReceived, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint)
    done = st is not None and st.enrollment is None  # the last certificate of the request
    return _log(state, at, certret(ev.trustpoint) if done else None)


def _log_failed(state: DeviceState, ev: EnrollmentFailed, at: int) -> DeviceState:
    return _log(state, at, failure_message(ev))


def _log_pending(state: DeviceState, ev: EnrollmentPending, at: int) -> DeviceState:
    return _log(state, at, poll_failed(ev.trustpoint, ev.poll_error) if ev.poll_error else None)


def _log_clock_set(state: DeviceState, ev: ClockSet, at: int) -> DeviceState:
    return _log(state, at, clock_update(at, ev.set_to_us))


def _log_removed(state: DeviceState, ev: TrustpointCertificatesRemoved,
                 at: int) -> DeviceState:
    return _log(state, at, certificates_removed(ev.trustpoint, len(ev.serials), ev.reason))


def _log_revoked(state: DeviceState, ev: RouterCertificateRevoked, at: int) -> DeviceState:
    return _log(state, at, certificate_revoked(ev.trustpoint, ev.serial, ev.reason,
                                               ev.revoked_at))


def _log_pool_imported(state: DeviceState, ev: TrustpoolImported, at: int) -> DeviceState:
    return _log(state, at, pool_messages.imported(ev))


def _log_pool_failed(state: DeviceState, ev: TrustpoolUpdateFailed, at: int) -> DeviceState:
    return _log(state, at, pool_messages.update_failed(ev))


def _log_pool_cleaned(state: DeviceState, ev: TrustpoolCleaned, at: int) -> DeviceState:
    return _log(state, at, pool_messages.cleaned(ev))


def _log_pool_warned(state: DeviceState, ev: TrustpoolPolicyWarned, at: int) -> DeviceState:
    return _log(state, at, pool_messages.warned(ev))


def _log_renewal(state: DeviceState, ev: object, at: int) -> DeviceState:
    return _log(state, at, renewal_message(ev, at))


def _log_crl_fetched(state: DeviceState, ev: CrlFetched, at: int) -> DeviceState:
    """Folded before the CRL enters the cache: a stale CRL is said once (see fetched_said)."""
    before = state.crls.of_scope(CachedCrl.from_event(ev))
    return _log(state, at, crl_messages.fetched_said(ev, before))


def _log_crl_failed(state: DeviceState, ev: CrlFetchFailed, at: int) -> DeviceState:
    return _log(state, at, crl_messages.fetch_failed(ev))


def _log_crl_cleared(state: DeviceState, ev: CrlCacheCleared, at: int) -> DeviceState:
    return _log(state, at, crl_messages.cleared(ev))


def _log_rollover(state: DeviceState, ev: object, at: int) -> DeviceState:
    return _log(state, at, rollover_message(ev, at))


# -- the table -------------------------------------------------------------------------------------

_AFTER_COMMIT = (tp._configs, tp._config, renewal.cancelled,
                 renewal.reconfigured)  # a commit's folds after fold_commit


def _commits_to_fold(commits: Sequence[Iterable[WireChange]]) -> list[int]:
    """Which commits of a run `_AFTER_COMMIT` must fold: those that change a trustpoint's
    lines (the only ones that change what they read), and the run's first, because a renewal
    that began retrying before the run with no auto-enroll left is cancelled by the first
    commit after it, whatever that commit changes (`renewal.cancelled`); nothing else in a
    run of commits moves a renewal, so later commits that touch no trustpoint change nothing."""
    return sorted({0, *tp.touching(commits)}) if commits else []



DEVICE_FOLDS: FoldTable[DeviceState] = FoldTable("device", {
    ConfigurationCommitted: (fold_commit, *_AFTER_COMMIT),
    KeyPairGenerated: (_key_generated,),
    KeyPairZeroized: (_keys_zeroized, tp._zeroized, renewal.keys_zeroized),
    PublicKeyImported: (_key_imported,),
    PublicKeyRemoved: (_key_removed,),
    CACertificateAccepted: (tp._ca_accepted,),
    CACertificateRefused: (),  # recorded for the audit: the trustpoint stays as it was
    EnrollmentRequested: (tp._requested, renewal.superseded),
    EnrollmentPending: (tp._pending, _log_pending),
    CertificateReceived: (tp._received, renewal.installed_by_hand, _log_received),
    EnrollmentFailed: (tp._failed, _log_failed),
    TrustpointCertificatesRemoved: (tp._certificates_removed, _log_removed),
    RouterCertificateRevoked: (tp._revoked, _log_revoked),
    ClockSet: (_clock_set, _log_clock_set),
    TrustpoolBuiltinsRecorded: (pool.builtins_recorded,),
    TrustpoolImported: (pool.imported, _log_pool_imported),
    TrustpoolCleaned: (pool.cleaned, _log_pool_cleaned),
    TrustpoolUpdateFailed: (pool.update_failed, _log_pool_failed),
    TrustpoolPolicyWarned: (pool.warned, _log_pool_warned),
    RenewalRequested: (renewal.requested, _log_renewal),
    RenewalPending: (renewal.pending, _log_renewal),
    RenewalCertificateReceived: (renewal.received, _log_renewal),
    RenewalFailed: (renewal.failed, _log_renewal),
    NextCertificateActivated: (renewal.activated, _log_renewal),
    CertificateExpiryWarned: (renewal.warned, _log_renewal),
    CrlFetched: (_log_crl_fetched, crl.fetched, tp._crl_fetched, _fetch_backoff),
    CrlFetchFailed: (crl.fetch_failed, tp._crl_failed, _log_crl_failed, _fetch_backoff),
    CrlCacheCleared: (crl.cleared, _log_crl_cleared),
    PeerValidated: (_validated,),
    AuditKeyCreated: (_audit_key,),
    ShadowCAAccepted: (rollover.accepted, _log_rollover),
    ShadowCAFetchFailed: (rollover.fetch_failed, _log_rollover),
    ShadowCANotOffered: (rollover.not_offered, _log_rollover),
    ShadowCARechecked: (rollover.rechecked,),  # silent
    ShadowCAActivated: (rollover.ca_activated, _log_rollover),
    ShadowCertificateActivated: (rollover.certificate_activated, _log_rollover),
}, runs={  # a run of commits in one call (engine.folds): the same folds as listed above
    ConfigurationCommitted: commit_run(_AFTER_COMMIT, _commits_to_fold),
})
