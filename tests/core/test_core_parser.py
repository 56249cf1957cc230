"""The grammar-driven parser: abbreviations, IOS-style errors, help and completion."""

from __future__ import annotations

import pytest

from engine import Engine
from engine.errors import Reason
from engine.grammar import GRAMMAR, WORD, ArgSpec, Grammar, Mode, expand, int_range
from engine.parser import choices, complete_word, parse


def test_unique_prefixes_everywhere() -> None:
    m = parse(GRAMMAR, Mode.EXEC, "sh conf comm li")
    assert m is not None and m.text == "show configuration commit list"
    m = parse(GRAMMAR, Mode.EXEC, "conf t")
    assert m is not None and m.command.name == "configure [terminal]"


def test_keywords_beat_arguments_and_full_words_beat_prefixes() -> None:
    g = Grammar()
    g.action("key gen [{kind: general-keys | usage-keys}] [<label>]",
             args={"label": ArgSpec(WORD, "label")})(lambda ctx: None)
    m = parse(g, Mode.EXEC, "key gen usage")
    assert m is not None and m.args == {"kind": "usage-keys"}
    m = parse(g, Mode.EXEC, "key gen usage mykey")
    assert m is not None and m.args == {"kind": "usage-keys", "label": "mykey"}
    m = parse(g, Mode.EXEC, "key gen mykey")
    assert m is not None and m.args == {"label": "mykey"}


def test_invalid_input_points_at_the_bad_word() -> None:
    e = Engine.in_memory()
    res = e.execute("show runnin-config")
    assert res.error is not None and res.error.reason is Reason.INVALID_INPUT
    assert res.error.caret == 5
    lines = res.output.splitlines()
    assert lines[0] == " " * (len("RP/0/RP0/CPU0:ios#") + 5) + "^"
    assert lines[1] == "% Invalid input detected at '^' marker."


def test_out_of_range_argument_is_invalid_at_its_column() -> None:
    g = Grammar()
    g.action("retry period <m>", args={"m": ArgSpec(int_range(1, 60), "minutes")})(
        lambda ctx: None)
    with pytest.raises(Exception) as info:
        parse(g, Mode.EXEC, "retry period 61")
    assert getattr(info.value, "caret", None) == 13


def test_incomplete_and_ambiguous() -> None:
    e = Engine.in_memory()
    res = e.execute("show configuration commit")
    assert res.error is not None and res.error.reason is Reason.INCOMPLETE
    assert res.output == "% Incomplete command.\n"
    e.execute("configure")
    res = e.execute("d")  # do, domain
    assert res.error is not None and res.error.reason is Reason.AMBIGUOUS
    assert res.output == '% Ambiguous command: "d"\n'


def test_errors_change_nothing() -> None:
    e = Engine.in_memory()
    e.execute("configure")
    for bad in ("hostname -bad", "hostname a..b", "domain name a..b", "hostname", "frobnicate"):
        assert not e.execute(bad).ok
    assert e.session.pending() == []


def test_question_mark_lists_next_words_with_help() -> None:
    e = Engine.in_memory()
    out = e.execute("show configuration ?").output
    assert "commit" in out and "Commit" not in out.split()[0]
    listing = choices(GRAMMAR, Mode.EXEC, "show configuration commit ")
    assert [c.word for c in listing] == ["changes", "list"]
    partial = choices(GRAMMAR, Mode.CONFIG, "ho")
    assert [c.word for c in partial] == ["hostname"]
    after = [c.word for c in choices(GRAMMAR, Mode.CONFIG, "hostname ")]
    assert after == ["WORD"]
    done = [c.word for c in choices(GRAMMAR, Mode.CONFIG, "hostname r1 ")]
    assert done == ["<cr>"]


def test_tab_completes_a_unique_keyword_only() -> None:
    assert complete_word(GRAMMAR, Mode.EXEC, "conf") == "configure "
    assert complete_word(GRAMMAR, Mode.EXEC, "show configuration commit l") == "list "
    assert complete_word(GRAMMAR, Mode.CONFIG, "d") is None  # do / domain


def test_comments_and_blank_lines_are_no_ops() -> None:
    e = Engine.in_memory()
    for line in ("", "   ", "! a comment", "!"):
        res = e.execute(line)
        assert res.ok and res.output == "" and res.events == []


def test_pattern_expansion_covers_every_optional_combination() -> None:
    variants = expand("a [b] [{c: x | y}]", {}, {})
    words = sorted(" ".join(t.word for t in v) for v in variants)  # type: ignore[union-attr]
    assert words == ["a", "a b", "a b x", "a b y", "a x", "a y"]


def test_do_points_the_caret_into_the_whole_line_and_helps_in_exec_mode() -> None:
    e = Engine.in_memory()
    e.execute("configure")
    res = e.execute("do shw run")
    assert res.error is not None and res.error.caret == 3
    assert res.output.splitlines()[0] == " " * (len(e.prompt) + 3) + "^"
    listing = e.execute("do show ?").output
    assert "running-config" in listing and "Unrecognized" not in listing
    assert e.complete("do show runn") == "running-config "


def test_help_describes_a_keyword_by_the_one_command_it_leads_to() -> None:
    """`crypto ca import` imports a certificate and `crypto key import` a key: a keyword that
    leads to one command is described by it; a shared one keeps its own help."""
    ca = {c.word: c.help for c in choices(GRAMMAR, Mode.EXEC, "crypto ca ")}
    assert ca["import"].startswith("Import a certificate")
    top = {c.word: c.help for c in choices(GRAMMAR, Mode.EXEC, "crypto ")}
    assert top["ca"] == "Certification authority"
