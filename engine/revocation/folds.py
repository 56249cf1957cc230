"""The CRL cache's folds (listed in engine/device_folds.py): see engine.revocation.cache for
the rules they apply."""

from __future__ import annotations

from engine.revocation.model import CachedCrl
from engine.state import DeviceState, with_state
from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed


def fetched(state: DeviceState, ev: CrlFetched, at: int) -> DeviceState:
    return with_state(state, crls=state.crls.with_crl(CachedCrl.from_event(ev)))


def fetch_failed(state: DeviceState, ev: CrlFetchFailed, at: int) -> DeviceState:
    return with_state(state, crls=state.crls.failed())


def cleared(state: DeviceState, ev: CrlCacheCleared, at: int) -> DeviceState:
    return with_state(state, crls=state.crls.cleared())
