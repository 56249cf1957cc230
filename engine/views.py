"""What a handler hands back to be shown: data, never text.

A `show` handler (or one that puts something before the operator, like the CA certificate
`crypto ca authenticate` offers for acceptance) returns a `View`: the state and data the
renderer needs. Views of the same shape share it (`_StateAt`, `_Trustpoints`: not views
themselves) and differ in their type, which picks the renderer. The engine core never turns a
view into text: the runtime passes it to the `render` port (engine.runtime.Ports), which the
application (engine.engine) connects to the renderers in projections/ (projections.render).
That is the one direction of imports: events <- engine core <- projections <- engine.engine
<- frontends/CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from engine.config import Change, ConfigTree
    from engine.grammar import Grammar
    from engine.keys import ImportedKey, KeyPair
    from engine.state import Commit, CommitHistory, DeviceState
    from engine.validation.verdict import Verdict


class View:
    """Base of what handlers return for display."""


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
    """`show crypto key mypubkey`."""

    pairs: Sequence[KeyPair]


@dataclass(frozen=True)
class ImportedKeysView(View):
    """`show crypto key authentication rsa`."""

    keys: Sequence[ImportedKey]


@dataclass(frozen=True)
class TargetConfigView(View):
    """`show configuration`: the uncommitted changes."""

    changes: Sequence[Change]


@dataclass(frozen=True)
class RunningConfigView(View):
    """`show running-config [SECTION]`."""

    grammar: Grammar
    config: ConfigTree
    commits: CommitHistory
    section: str | None


@dataclass(frozen=True)
class CommitListView(View):
    """`show configuration commit list`."""

    commits: CommitHistory


@dataclass(frozen=True)
class CommitChangesView(View):
    """`show configuration commit changes ...`: each commit's changes, oldest first."""

    commits: Sequence[Commit]


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
