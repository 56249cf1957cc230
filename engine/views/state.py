"""The views of the folded state: trustpoints and their certificates, keys, the trustpool,
CRLs, counters, the clock, logging, timers and a validation verdict (engine/views/__init__.py
says what a view is)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.views import View

if TYPE_CHECKING:
    from collections.abc import Mapping

    from engine.keys import ImportedKey, KeyPair
    from engine.state import DeviceState
    from engine.validation.verdict import Verdict


@dataclass(frozen=True)
class _Trustpoints:
    """The state, the trustpoints named (all when none is), at `now` (µs)."""

    state: DeviceState
    names: Sequence[str]
    now: int


@dataclass(frozen=True)
class _StateAt:
    """The folded state, at `now` (µs)."""

    state: DeviceState
    now: int


class CertificatesView(_Trustpoints, View):
    """`show crypto ca certificates`."""


class TrustpointsView(_Trustpoints, View):
    """`show crypto ca trustpoint`."""


@dataclass(frozen=True)
class CACertificateOffered(View):
    """The CA certificate `crypto ca authenticate` asks the operator to accept (DER)."""

    certificate: bytes


@dataclass(frozen=True)
class KeyPairsView(View):
    """`show crypto key mypubkey`: the device's own pairs, then (rsa) the imported public keys."""

    pairs: Sequence[KeyPair]
    imported: Sequence[ImportedKey] = ()


@dataclass(frozen=True)
class ImportedKeysView(View):
    """`show crypto key authentication rsa`."""

    keys: Sequence[ImportedKey]


@dataclass(frozen=True)
class ClockView(View):
    """`show clock`, and `clock set`'s echo: the engine time (µs)."""

    now: int


@dataclass(frozen=True)
class LoggingView(View):
    """`show logging`: (µs, message) pairs, newest last."""

    messages: Sequence[tuple[int, str]]


class TrustpoolView(_StateAt, View):
    """`show crypto ca trustpool`: every certificate of the pool."""


class TrustpoolPolicyView(_StateAt, View):
    """`show crypto ca trustpool policy`: the policy, updates and the timer."""


@dataclass(frozen=True)
class TimersView(View):
    """`show crypto ca timers`: every pending timer as (job name, due time µs), at `now`."""

    timers: Sequence[tuple[str, int]]
    now: int


class CrlsView(_StateAt, View):
    """`show crypto ca crls`: every cached CRL (fresh or stale)."""


@dataclass(frozen=True)
class CountersView(View):
    """`show crypto ca counters`: validation and CRL retrieval counters."""

    state: DeviceState


@dataclass(frozen=True)
class VerdictView(View):
    """`trustledger validate`'s report: a verdict, and the subjects of the certificates it
    names by fingerprint (the chain's and the anchor's)."""

    verdict: Verdict
    subjects: Mapping[str, str]
