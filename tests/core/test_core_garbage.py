"""Garbage at the prompt gets an error and changes nothing; it never raises."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from engine import Engine
from engine.grammar import Mode

engine = Engine.in_memory()


@settings(max_examples=300, deadline=None)
@given(line=st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.lists(st.sampled_from(["show", "conf", "hostname", "no", "do", "commit", "?", "label",
                              "rollback", "configuration", "last", "-1", "99999999999", "é",
                              "\t", "domain", "name", "end", "abort", "exit"]),
             max_size=8).map(" ".join)),
       mode=st.sampled_from([Mode.EXEC, Mode.CONFIG]))
def test_any_line_gives_a_result_not_a_traceback(line: str, mode: Mode) -> None:
    engine.session.to_exec()
    if mode is Mode.CONFIG:
        engine.execute("configure")
    before = engine.store.head
    res = engine.execute(line, answers=["cancel"])
    assert isinstance(res.output, str)
    if res.error is not None:
        assert res.events == [] and engine.store.head == before
        assert res.output.rstrip().splitlines()[-1].startswith("%")


def test_a_ten_kilobyte_line_is_refused() -> None:
    res = Engine.in_memory().execute("hostname " + "a" * 10_000)
    assert res.error is not None and "too long" in res.output


def test_control_characters_are_refused() -> None:
    res = Engine.in_memory().execute("show\x00running-config")
    assert res.error is not None and res.events == []


def test_text_that_is_not_utf8_is_refused_in_lines_and_answers() -> None:
    e = Engine.in_memory()
    e.execute("configure")
    res = e.execute("hostname caf\udcff")  # a \xff byte decoded with surrogateescape
    assert res.error is not None and "not valid UTF-8" in res.output
    e.execute("hostname r1")
    res = e.execute("end", answers=["y\udcffes"])
    assert res.error is not None and res.events == [] and e.state.config.line(("hostname",)) is None
