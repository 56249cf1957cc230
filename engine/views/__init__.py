"""What a handler hands back to be shown: data, never text.

A `show` handler (or one that puts something before the operator, like the CA certificate
`crypto ca authenticate` offers for acceptance) returns a `View`: the state and data the
renderer needs. Views of the same shape share it (`_StateAt`, `_Trustpoints`: not views
themselves) and differ in their type, which picks the renderer. The engine core never turns a
view into text: the runtime passes it to the `render` port (engine.runtime.Ports), which the
application (engine.engine) connects to the renderers in projections/ (projections.render,
keyed by the view's class name, so that it loads no view module). That is the one direction
of imports: events <- engine core <- projections <- engine.engine <- frontends/CLI.

The views live in two modules, loaded when a handler first builds one: config.py (`show
running-config`, `show configuration`, commit list and changes) and state.py (the views of
the folded state: trustpoints, keys, trustpool, CRLs, counters, clock, logging, timers, a
verdict). Each is a frozen dataclass, which costs its definition at start-up (~0.4 ms): a
command module imports the views of `state.py` inside the handlers that build them, so that a
`show running-config` defines no view but its own (issue 12; tests/core/test_core_startup.py).
"""

from __future__ import annotations


class View:
    """Base of what handlers return for display."""
