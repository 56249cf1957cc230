"""One entry point from views to text: `render(view)` picks the view's renderer.

The application (engine.engine) plugs this function into the runtime's `render` port; the
engine core never imports projections/. A new view type gets its line in `_RENDERERS`, keyed
by its class name: rendering one view loads no other view's module (engine/views/; a test
checks that every view type has a line, and that no name means anything else).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.views import View
from projections.clock import render_clock
from projections.config import (
    render_commit_changes,
    render_commit_list,
    render_running,
    render_target,
)
from projections.crls import render_crls
from projections.keys import render_imported_keys, render_key_pairs
from projections.syslog import render_logging
from projections.timers import render_timers
from projections.validation import render_counters, render_verdict

if TYPE_CHECKING:
    from engine.views.state import (
        CACertificateOffered,
        CertificatesView,
        TrustpointsView,
        TrustpoolPolicyView,
        TrustpoolView,
    )


# The renderers that parse certificates (cryptography.x509) load when first used: a `show
# running-config` never needs them (tests/core/test_core_startup.py).
def _certificates(v: CertificatesView) -> str:
    from projections.trustpoints import render_certificates

    return render_certificates(v.state, list(v.names), v.now)


def _trustpoints(v: TrustpointsView) -> str:
    from projections.trustpoints import render_trustpoints

    return render_trustpoints(v.state, list(v.names), v.now)


def _ca_offer(v: CACertificateOffered) -> str:
    from projections.trustpoints import render_ca_offer

    return render_ca_offer(v.certificate)


def _pool(v: TrustpoolView) -> str:
    from projections.trustpool import render_pool

    return render_pool(v.state, v.now)


def _policy(v: TrustpoolPolicyView) -> str:
    from projections.trustpool import render_policy

    return render_policy(v.state, v.now)


_RENDERERS: dict[str, Callable[[Any], str]] = {
    "CertificatesView": _certificates,
    "TrustpointsView": _trustpoints,
    "CACertificateOffered": _ca_offer,
    "KeyPairsView": lambda v: render_key_pairs(v.pairs),
    "ImportedKeysView": lambda v: render_imported_keys(v.keys),
    "TargetConfigView": lambda v: render_target(v.changes),
    "RunningConfigView": lambda v: render_running(v.grammar, v.config, v.commits, v.section),
    "CommitListView": lambda v: render_commit_list(v.commits),
    "CommitChangesView": lambda v: "".join(render_commit_changes(c) for c in v.commits),
    "LoggingView": lambda v: render_logging(v.messages),
    "TrustpoolView": _pool,
    "TrustpoolPolicyView": _policy,
    "ClockView": lambda v: render_clock(v.now),
    "TimersView": lambda v: render_timers(v.timers, v.now),
    "CrlsView": lambda v: render_crls(v.state, v.now),
    "CountersView": lambda v: render_counters(v.state),
    "VerdictView": lambda v: render_verdict(v.verdict, v.subjects),
}


def render(view: object) -> str:
    """The text of `view` (a str is already text)."""
    if isinstance(view, str):
        return view
    renderer = _RENDERERS.get(type(view).__name__) if isinstance(view, View) else None
    if renderer is None:
        raise TypeError(f"no renderer for {type(view).__name__}")
    return renderer(view)
