"""One entry point from views to text: `render(view)` picks the view's renderer.

The application (engine.engine) plugs this function into the runtime's `render` port; the
engine core never imports projections/. A new view type gets its line in `_RENDERERS`, keyed
by its class name: rendering one view loads no other view's module (engine/views/; a test
checks that every view type has a line, and that no name means anything else).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

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


def _later(module: str, name: str, args: Callable[[Any], tuple[Any, ...]]
           ) -> Callable[[Any], str]:
    """The renderer `name` of projections/`module`, loaded at its first use: the renderers
    that parse certificates (cryptography.x509) are never needed by a `show running-config`
    (tests/core/test_core_startup.py). `args`: its arguments, from the view."""

    def renderer(view: Any) -> str:
        return str(getattr(import_module(f"projections.{module}"), name)(*args(view)))

    return renderer


_RENDERERS: dict[str, Callable[[Any], str]] = {
    "CertificatesView": _later("trustpoints", "render_certificates",
                               lambda v: (v.state, list(v.names), v.now)),
    "TrustpointsView": _later("trustpoints", "render_trustpoints",
                              lambda v: (v.state, list(v.names), v.now)),
    "CACertificateOffered": _later("trustpoints", "render_ca_offer", lambda v: (v.certificate,)),
    "KeyPairsView": lambda v: render_key_pairs(v.pairs, v.imported),
    "ImportedKeysView": lambda v: render_imported_keys(v.keys),
    "TargetConfigView": lambda v: render_target(v.grammar, v.changes),
    "RunningConfigView": lambda v: render_running(v.grammar, v.config, v.commits, v.section),
    "CommitListView": lambda v: render_commit_list(v.commits),
    "CommitChangesView": lambda v: "".join(render_commit_changes(v.grammar, c)
                                           for c in v.commits),
    "LoggingView": lambda v: render_logging(v.messages),
    "TrustpoolView": _later("trustpool", "render_pool", lambda v: (v.state, v.now)),
    "TrustpoolPolicyView": _later("trustpool", "render_policy", lambda v: (v.state, v.now)),
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
