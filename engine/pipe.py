"""Output modifiers: `show ... | include|exclude|begin|section REGEX` and `| count [REGEX]`.

A line is split at its first `|` when its command is a `show` (or `do show`): the part before
runs as usual with its output held back, the part after is parsed with the small grammar
below (so modifiers abbreviate, and `?` and Tab after `|` list them) and filters that output.
A regular expression that does not compile is refused with a caret under it, before the
command runs. Everything here is pure text in, text out.

Chaining: `show ... | include x | exclude y` applies each modifier in turn, left to right. A
regular expression may hold `|` itself (`| include a|b` is the regex `a|b`), so a later `|`
starts a new modifier only as IOS reads it: with whitespace on both sides and followed by a
modifier keyword (abbreviated or not), or by nothing yet (`?` and Tab after it list and
complete the modifiers). Any other `|` belongs to the regular expression.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from engine.errors import OperatorError, Reason, TrustledgerError
from engine.grammar import LINE, ArgSpec, Grammar, Mode
from engine.parser import Choice, choices, parse

REGEX = ArgSpec(LINE, "Regular expression")
MODIFIERS = Grammar()
MODIFIERS.action("begin <regex>", help="Begin with the line that matches",
                 args={"regex": REGEX})(lambda ctx: None)
MODIFIERS.action("include <regex>", help="Include lines that match",
                 args={"regex": REGEX})(lambda ctx: None)
MODIFIERS.action("exclude <regex>", help="Exclude lines that match",
                 args={"regex": REGEX})(lambda ctx: None)
MODIFIERS.action("section <regex>", help="Filter a section of output",
                 args={"regex": REGEX})(lambda ctx: None)
MODIFIERS.action("count [<regex>]", help="Count the number of lines in the output",
                 args={"regex": REGEX})(lambda ctx: None)

PIPE_CHOICE = Choice("|", "Output modifiers", False)
MODIFIERS_NAMES = tuple(c.word for c in choices(MODIFIERS, Mode.EXEC, "") if c.keyword)


class Modifier(NamedTuple):
    """One `| modifier` of a show command, with its compiled pattern (None: `count`). (A
    NamedTuple: every start-up defines it, and a frozen dataclass costs ~0.3 ms to define;
    issue 12.)"""

    name: str  # "include" | "exclude" | "begin" | "section" | "count"
    regex: re.Pattern[str] | None


def split(line: str) -> tuple[str, int] | None:
    """(the command part, the column of the `|`) when `line` is a show command with a pipe."""
    bar = line.find("|")
    if bar < 0 or not is_show(line[:bar]):
        return None
    return line[:bar], bar


def is_show(head: str) -> bool:
    """The line names `show` or `do show` (words may be abbreviated)."""
    words = head.lower().split()
    if words[:1] and len(words) > 1 and "do".startswith(words[0]) and words[0] != "d":
        words = words[1:]
    return bool(words) and len(words[0]) >= 2 and "show".startswith(words[0])


def bars(line: str, bar: int) -> list[int]:
    """The columns of the `|`s that start a modifier: `bar` (the first), then each later one
    that chaining rules (module docstring) say starts another."""
    found = [bar]
    for m in re.finditer(r"\s\|(?=\s|$)", line[bar + 1:]):
        at = bar + 1 + m.start() + 1
        word = line[at + 1:].split(maxsplit=1)[:1]
        if not word or any(name.startswith(word[0].lower()) for name in MODIFIERS_NAMES):
            found.append(at)
    return found


def parse_modifiers(line: str, bar: int) -> list[Modifier]:
    """The modifiers after the `|` at column `bar`, left to right; errors point into the
    whole line."""
    starts = bars(line, bar)
    return [parse_modifier(line, at, end)
            for at, end in zip(starts, [*starts[1:], len(line)], strict=True)]


def parse_modifier(line: str, bar: int, end: int | None = None) -> Modifier:
    """The modifier between the `|` at column `bar` and column `end` (the line's end if
    None); errors point into the whole line."""
    tail = line[bar + 1:end]
    try:
        match = parse(MODIFIERS, Mode.EXEC, tail)
    except TrustledgerError as err:
        if err.caret is not None:
            err.caret += bar + 1
        raise
    if match is None:
        raise OperatorError(Reason.INCOMPLETE, "Incomplete command.")
    name, text = match.words[0], match.args.get("regex")
    if text is None:
        return Modifier(name, None)
    column = bar + 1 + tail.find(text)
    try:
        return Modifier(name, re.compile(text))
    except re.error as e:
        raise OperatorError(Reason.INVALID_INPUT,
                           f"Invalid regular expression: {e.msg}.",
                           caret=column + (e.pos or 0)) from e


def help_after(line: str, bar: int) -> list[Choice]:
    """`?` (and Tab) after the modifiers: what may follow the last `|` that starts one."""
    return choices(MODIFIERS, Mode.EXEC, line[bars(line, bar)[-1] + 1:])


def apply_all(mods: list[Modifier], text: str) -> str:
    """`text` filtered by each modifier in turn."""
    for mod in mods:
        text = apply(mod, text)
    return text


def apply(mod: Modifier, text: str) -> str:
    lines = text.splitlines()
    rx = mod.regex
    if mod.name == "count":
        n = sum(1 for ln in lines if rx is None or rx.search(ln))
        return f"Number of lines which match regexp = {n}\n"
    assert rx is not None
    if mod.name == "include":
        kept = [ln for ln in lines if rx.search(ln)]
    elif mod.name == "exclude":
        kept = [ln for ln in lines if not rx.search(ln)]
    elif mod.name == "begin":
        first = next((i for i, ln in enumerate(lines) if rx.search(ln)), len(lines))
        kept = lines[first:]
    else:
        kept = _sections(lines, rx)
    return "".join(ln + "\n" for ln in kept)


def _sections(lines: list[str], rx: re.Pattern[str]) -> list[str]:
    """Each line that matches, with the lines indented under it (its submode)."""
    kept: list[str] = []
    depth: int | None = None  # the indentation of the matched head we are inside of
    for ln in lines:
        indent = len(ln) - len(ln.lstrip(" "))
        if depth is not None and indent > depth and ln.strip():
            kept.append(ln)
            continue
        depth = None
        if rx.search(ln):
            kept.append(ln)
            depth = indent
    return kept
