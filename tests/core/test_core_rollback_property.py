"""Rollback is exact: after any sequence of commits, `rollback configuration to ID` gives back
the running configuration as it was right after commit ID, and `last N` undoes N commits."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from engine import Engine
from engine.config import ConfigTree

EDITS = st.lists(st.sampled_from([
    "hostname r1", "hostname r2", "no hostname", "domain name a.example", "no domain name",
    "domain name b.example"]), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(commits=st.lists(EDITS, min_size=1, max_size=6), data=st.data())
def test_rollback_returns_exactly_to_a_past_configuration(commits: list[list[str]],
                                                          data: st.DataObject) -> None:
    e = Engine.in_memory()
    history: dict[int, ConfigTree] = {}
    for edits in commits:
        e.execute("configure")
        for line in edits:
            e.execute(line)
        res = e.execute("commit")
        if res.events:
            history[res.events[0].payload["commit_id"]] = e.state.config
        e.execute("end", answers=["no"])
    if not history:
        return
    ids = sorted(history)
    target = data.draw(st.sampled_from(ids))
    res = e.execute(f"rollback configuration to {target}")
    assert res.ok, res.output
    assert e.state.config == history[target]
    if res.events:  # a rollback is a commit: rolling it back restores the newest config
        assert e.execute("rollback configuration last 1").ok
        assert e.state.config == history[ids[-1]]
    else:
        assert target == ids[-1]  # only "back to where we are" changes nothing
