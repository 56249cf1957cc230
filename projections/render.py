"""One entry point from views to text: `render(view)` picks the view's renderer.

The application (engine.engine) plugs this function into the runtime's `render` port; the
engine core never imports projections/. A new view type gets its line in `_RENDERERS` (a
test checks that every view type has one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine import views
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


# The renderers that parse certificates (cryptography.x509) load when first used: a `show
# running-config` never needs them (tests/core/test_core_startup.py).
def _certificates(v: views.CertificatesView) -> str:
    from projections.trustpoints import render_certificates

    return render_certificates(v.state, list(v.names), v.now)


def _trustpoints(v: views.TrustpointsView) -> str:
    from projections.trustpoints import render_trustpoints

    return render_trustpoints(v.state, list(v.names), v.now)


def _ca_offer(v: views.CACertificateOffered) -> str:
    from projections.trustpoints import render_ca_offer

    return render_ca_offer(v.certificate)


def _pool(v: views.TrustpoolView) -> str:
    from projections.trustpool import render_pool

    return render_pool(v.state, v.now)


def _policy(v: views.TrustpoolPolicyView) -> str:
    from projections.trustpool import render_policy

    return render_policy(v.state, v.now)


_RENDERERS: dict[type, Callable[[Any], str]] = {
    views.CertificatesView: _certificates,
    views.TrustpointsView: _trustpoints,
    views.CACertificateOffered: _ca_offer,
    views.KeyPairsView: lambda v: render_key_pairs(v.pairs),
    views.ImportedKeysView: lambda v: render_imported_keys(v.keys),
    views.TargetConfigView: lambda v: render_target(v.changes),
    views.RunningConfigView: lambda v: render_running(v.grammar, v.config, v.commits,
                                                      v.section),
    views.CommitListView: lambda v: render_commit_list(v.commits),
    views.CommitChangesView: lambda v: "".join(render_commit_changes(c) for c in v.commits),
    views.LoggingView: lambda v: render_logging(v.messages),
    views.TrustpoolView: _pool,
    views.TrustpoolPolicyView: _policy,
    views.ClockView: lambda v: render_clock(v.now),
    views.TimersView: lambda v: render_timers(v.timers, v.now),
    views.CrlsView: lambda v: render_crls(v.state, v.now),
    views.CountersView: lambda v: render_counters(v.state),
    views.VerdictView: lambda v: render_verdict(v.verdict, v.subjects),
}


def render(view: object) -> str:
    """The text of `view` (a str is already text)."""
    if isinstance(view, str):
        return view
    renderer = _RENDERERS.get(type(view))
    if renderer is None:
        raise TypeError(f"no renderer for {type(view).__name__}")
    return renderer(view)
