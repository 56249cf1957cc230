"""The parser: a line of text and a mode -> a matched command with its arguments, or an
IOS-style error. Also the `?` help and Tab completion, from the same walk.

All variants of every command in the mode advance word by word together. At each word:
a keyword typed in full beats a keyword matched by prefix, which beats an argument; two
different keywords matched by prefix are ambiguous; no survivor is an invalid input at that
word's column. At the end, a variant that has consumed all its tokens is a match; survivors
that still expect tokens make the command incomplete.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import OperatorError, Reason, ambiguous, incomplete, invalid_input
from engine.grammar import Arg, ArgKind, ArgRefused, Command, Grammar, Kw, Mode, Token

_WORD = re.compile(r"\S+")


class Match:
    """A command line matched to one command: its arguments and canonical words.

    It and `_Cand` are plain slotted classes, not dataclasses: every start-up defines them, and
    a dataclass costs ~0.15-0.3 ms to define (issue 12). Nothing changes a Match once made,
    nor compares two."""

    __slots__ = ("args", "command", "words")

    def __init__(self, command: Command, args: dict[str, Any], words: tuple[str, ...]) -> None:
        self.command = command
        self.args = args
        self.words = words  # the canonical words: keywords in full, arguments as typed

    @property
    def text(self) -> str:
        return " ".join(self.words)


class _Cand:
    """One variant of a command still matching the words read so far."""

    __slots__ = ("args", "command", "done", "pos", "variant", "words")

    def __init__(self, command: Command, variant: tuple[Token, ...], pos: int,
                 args: dict[str, Any], words: list[str], done: bool = False) -> None:
        self.command = command
        self.variant = variant
        self.pos = pos
        self.args = args
        self.words = words
        self.done = done  # a rest-of-line argument swallowed the remainder


def _start(grammar: Grammar, mode: Mode) -> list[_Cand]:
    return [_Cand(c, v, 0, {}, []) for c in grammar.in_mode(mode) for v in c.variants]


def _advance(cands: list[_Cand], word: str, column: int, line: str
             ) -> tuple[list[_Cand], list[str]]:
    """Cands that accept `word`; also the distinct prefix-matched keywords (for ambiguity)."""
    exact: list[_Cand] = []
    prefix: list[_Cand] = []
    argm: list[_Cand] = []
    lw = word.lower()
    for c in cands:
        if c.done or c.pos >= len(c.variant):
            continue
        tok = c.variant[c.pos]
        if isinstance(tok, Kw):
            if tok.word == lw:
                exact.append(_step(c, tok.word, tok))
            elif tok.word.startswith(lw) and not tok.hidden:  # a spelling is typed whole
                prefix.append(_step(c, tok.word, tok))
        else:
            if tok.spec.kind.rest_of_line:
                value = line[column:].rstrip()
                try:  # the whole rest of the line is the value: its kind may refuse it
                    parsed = tok.spec.kind.parse(value)
                except ValueError:
                    continue
                nc = _step(c, value, tok, parsed)
                nc.done = True
                argm.append(nc)
                continue
            try:
                value = tok.spec.kind.parse(word)
            except ValueError:
                continue
            argm.append(_step(c, word, tok, value))
    if exact:
        return exact, []
    if prefix:
        return prefix, sorted({c.words[-1] for c in prefix})
    return argm, []


def _step(c: _Cand, shown: str, tok: Token, value: Any = None) -> _Cand:
    args = dict(c.args)
    words = [*c.words, shown]
    if isinstance(tok, Arg):
        args[tok.name] = value
    elif tok.hidden:  # another spelling: the canonical words show the keyword it spells
        words = [*c.words, tok.value] if tok.value else c.words
    if isinstance(tok, Kw) and tok.binds:
        args[tok.binds] = tok.value or tok.word
    return _Cand(c.command, c.variant, c.pos + 1, args, words, c.done)


def parse(grammar: Grammar, mode: Mode, line: str, *, typed: bool = False) -> Match | None:
    """The command the line names in `mode`; None for an empty line or a `!` comment.
    `typed`: the operator typed it now, so its arguments' screens apply too."""
    stripped = line.strip()
    if not stripped or stripped.startswith("!"):
        return None
    cands = _start(grammar, mode)
    for m in _WORD.finditer(line):
        if cands and all(c.done for c in cands):
            break
        live = [c for c in cands if c.done]
        moving, kws = _advance([c for c in cands if not c.done], m.group(), m.start(), line)
        if len(kws) > 1:
            raise ambiguous(stripped)
        cands = moving or live
        if not moving:
            if live:
                break
            raise invalid_input(m.start())
    complete = [c for c in cands if c.done or c.pos == len(c.variant)]
    if not complete:
        raise incomplete()
    best = min(complete, key=lambda c: (c.command.order, len(c.variant)))
    if typed:
        _screen(best, line)
    return Match(best.command, best.args, tuple(best.words))


def section_words(grammar: Grammar, text: str) -> tuple[str, ...] | None:
    """The words of `text`, the start of a configuration line, with each keyword in full
    (`cry ca trustpoi myca` -> crypto ca trustpoint myca), as `show running-config SECTION`
    names a section; None if a word is ambiguous or no configuration line starts so."""
    cands, _ = _section_walk(grammar, text)
    spelled = {tuple(c.words) for c in cands}
    return spelled.pop() if len(spelled) == 1 else None


def section_ambiguous(grammar: Grammar, text: str) -> bool:
    """Whether a word of `text`, a section as `section_words` reads it, abbreviates two
    keywords (`cry ca trustp`: trustpoint or trustpool)."""
    return _section_walk(grammar, text)[1]


def _section_walk(grammar: Grammar, text: str) -> tuple[list[_Cand], bool]:
    """The configuration lines `text` may start, and whether a word was ambiguous (then
    none)."""
    cands = [_Cand(c, v, 0, {}, []) for c in grammar.in_mode(Mode.CONFIG) if c.key
             for v in c.variants]
    return _walk(cands, list(_WORD.finditer(text)), text)


def _walk(cands: list[_Cand], words: list[re.Match[str]], text: str
          ) -> tuple[list[_Cand], bool]:
    """`cands` advanced over `words` of `text`, and whether a word was ambiguous (then
    none)."""
    for m in words:
        done = [c for c in cands if c.done]  # a rest-of-line argument took this word too
        cands, kws = _advance([c for c in cands if not c.done], m.group(), m.start(), text)
        if len(kws) > 1:
            return [], True
        cands = done + cands
        if not cands:
            break
    return cands, False


def _screen(c: _Cand, line: str) -> None:
    """Apply the screens of the matched arguments (ArgKind.screen), caret under the refused
    one."""
    for tok, m in zip(c.variant, _WORD.finditer(line), strict=False):
        if isinstance(tok, Arg) and tok.spec.kind.screen is not None:
            try:
                tok.spec.kind.screen(c.args[tok.name])
            except ArgRefused as e:
                raise OperatorError(Reason.INVALID_VALUE, e.why, caret=m.start()) from None


# -- interactive help ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One line of `?` help: what may come next, and what it does."""

    word: str  # a keyword, an argument label (WORD, <1-60>) or <cr>
    help: str
    keyword: bool
    source: str = ""  # an argument whose values the engine can list (trustpoint names, ...)


def _help_walk(grammar: Grammar, mode: Mode, text: str) -> tuple[list[_Cand], bool]:
    """The commands still possible after the complete words of `text`, and whether one of
    those words was ambiguous (then none)."""
    words = list(_WORD.finditer(text))
    upto = words[:-1] if words and not text[-1:].isspace() else words
    return _walk(_start(grammar, mode), upto, text)


def help_ambiguous(grammar: Grammar, mode: Mode, text: str) -> bool:
    """Whether a complete word of `text` abbreviates two keywords: `?` then says `% Ambiguous
    command: "..."`, as IOS does, not `% Unrecognized command`."""
    return _help_walk(grammar, mode, text)[1]


def choices(grammar: Grammar, mode: Mode, text: str) -> list[Choice]:
    """What `?` lists after `text`: completions of a partial last word, or the next tokens."""
    words = list(_WORD.finditer(text))
    partial = bool(words) and not text[-1:].isspace()
    cands, _ = _help_walk(grammar, mode, text)
    if not cands:
        return []
    seen: dict[str, Choice] = {}
    commands: dict[str, set[str]] = {}  # keyword -> the commands it leads to
    want = words[-1].group().lower() if partial else ""
    for c in cands:
        if c.done:  # a rest-of-line argument: more words may follow, or the line may end
            tok = c.variant[c.pos - 1]
            assert isinstance(tok, Arg)
            seen.setdefault(tok.spec.kind.label + tok.name,
                            Choice(tok.spec.kind.label, tok.spec.help, False))
            if not partial:
                seen.setdefault("<cr>", Choice("<cr>", "", False))
            continue
        if c.pos == len(c.variant):
            if not partial:
                seen.setdefault("<cr>", Choice("<cr>", "", False))
            continue
        tok = c.variant[c.pos]
        if isinstance(tok, Kw) and tok.hidden:
            continue  # another spelling is taken when typed, never offered
        if isinstance(tok, Kw):
            if tok.word.startswith(want):
                commands.setdefault(tok.word, set()).add(c.command.name)
                own = c.command.words.get(tok.word)
                if (own is None and tok.binds is None and len(commands[tok.word]) == 1
                        and c.command.help):
                    # A keyword that leads to one command only is described by that command
                    # (`crypto ca import` imports a certificate, `crypto key import` a key);
                    # a choice among a command's keywords (`general-keys | usage-keys`)
                    # says what that choice does, not what the command does.
                    seen[tok.word] = Choice(tok.word, c.command.help, True)
                else:
                    seen[tok.word] = Choice(tok.word, own or tok.help or c.command.help, True)
        elif not partial or tok.spec.source or _may_become(tok.spec.kind, want):
            label = tok.spec.kind.label
            seen.setdefault(label + tok.name, Choice(label, tok.spec.help, False,
                                                     tok.spec.source))
    return sorted(seen.values(), key=lambda ch: (not ch.keyword, ch.word == "<cr>", ch.word))


def _may_become(kind: ArgKind, partial: str) -> bool:
    """Whether more typing could make `partial` an argument of `kind`: `?` right after part of
    an argument (`hostname ab?`, a URL up to its own `?`) names the argument, as IOS does, where
    it said `% Unrecognized command`. A number is typed in digits only, a month by its name."""
    if kind.may_become is not None:
        return kind.may_become(partial)
    return partial.isdigit() if kind.label.startswith("<") else True


def render_choices(found: Sequence[Choice]) -> str:
    if not found:
        return "% Unrecognized command"
    width = max(len(c.word) for c in found)
    return "\n".join(f"  {c.word.ljust(width)}  {c.help}".rstrip() for c in found)


def complete_word(grammar: Grammar, mode: Mode, text: str) -> str | None:
    """Tab: the whole keyword a unique partial last word stands for (with a trailing space)."""
    if not text or text[-1].isspace():
        return None
    kws = {c.word for c in choices(grammar, mode, text) if c.keyword}
    if len(kws) == 1:
        return kws.pop() + " "
    return None


