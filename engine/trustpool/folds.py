"""The trustpool's folds (listed in engine/device_folds.py): each event replaces a part of the
pool whole, and moves the update timer as the timer's table says (engine/machines/trustpool.py).

Every change of the pool by hand or by an upgrade (built-ins recorded, an import, a clean)
re-arms the timer on the new pool's earliest expiry: `arm` when there is one, else `disarm`.
An automatic update goes `fetch` then `succeeded` (the new pool is watched: the same expiry
keeps counting from this attempt, a new one is armed) or `failed` (counting from this attempt).
"""

from __future__ import annotations

from dataclasses import replace

from engine.machines.trustpool import after
from engine.state import DeviceState, with_state
from engine.trustpool.pool import PoolCert, TrustpoolState, UpdateRecord, earliest_expiry
from events.trustpool import (
    TrustpoolBuiltinsRecorded,
    TrustpoolCleaned,
    TrustpoolImported,
    TrustpoolPolicyWarned,
    TrustpoolUpdateFailed,
)


def _certs(ders: tuple[bytes, ...]) -> tuple[PoolCert, ...]:
    return tuple(PoolCert.from_der(d) for d in ders)


def _rearm(pool: TrustpoolState, at: int) -> TrustpoolState:
    target = earliest_expiry(pool, at)
    if not target:
        return replace(pool, timer=after(pool.timer, "disarm"), target=0, failures=0)
    return replace(pool, timer=after(pool.timer, "arm"), target=target, armed_at=at, since=at,
                   failures=0, warned_at=0)


def _put(state: DeviceState, pool: TrustpoolState) -> DeviceState:
    return with_state(state, trustpool=pool)


def builtins_recorded(state: DeviceState, ev: TrustpoolBuiltinsRecorded,
                      at: int) -> DeviceState:
    pool = replace(state.trustpool, builtin_sha256=ev.sha256, builtin_source=ev.source,
                   builtin=_certs(ev.certificates))
    return _put(state, _rearm(pool, at))


def imported(state: DeviceState, ev: TrustpoolImported, at: int) -> DeviceState:
    old = state.trustpool
    downloaded = old.downloaded if ev.unchanged else _certs(ev.certificates)
    record = UpdateRecord(at, ev.url, ev.automatic, True, ev.signature, len(downloaded), "")
    pool = replace(old, downloaded=downloaded, last_update=record)
    if not ev.automatic:
        return _put(state, _rearm(pool, at))
    timer = after(old.timer, "fetch", "succeeded")
    target = earliest_expiry(pool, at)
    if target and target == old.target:  # not renewed: the schedule goes on from here
        return _put(state, replace(pool, timer=timer, since=at, failures=0))
    return _put(state, _rearm(replace(pool, timer=timer), at))


def cleaned(state: DeviceState, ev: TrustpoolCleaned, at: int) -> DeviceState:
    return _put(state, _rearm(replace(state.trustpool, downloaded=()), at))


def update_failed(state: DeviceState, ev: TrustpoolUpdateFailed, at: int) -> DeviceState:
    old = state.trustpool
    record = UpdateRecord(at, ev.url, True, False, "", 0, ev.cause)
    return _put(state, replace(old, timer=after(old.timer, "fetch", "failed"), since=at,
                               failures=old.failures + 1, last_update=record))


def warned(state: DeviceState, ev: TrustpoolPolicyWarned, at: int) -> DeviceState:
    old = state.trustpool
    return _put(state, replace(old, timer=after(old.timer, "warn"), warned_at=at))
