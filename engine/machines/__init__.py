"""The state machines, as data: one module per machine (states, transition table, guards, and
the map from event type to trigger), all built by `engine.machines.table`.

    trustpoint.py   a trustpoint's lifecycle (declared ... enrolled, revoked)
    ca_request.py   a request at the built-in CA (pending, approved, rejected, issued)
    session.py      an operator's configuration session (exec, config, submodes, commit)
    trustpool.py    the trustpool's automatic update timer (idle, scheduled, fetching, retrying)
    diagrams.py     `trustledger diagrams`: each machine as DOT, drawn to SVG by graphviz
"""
