"""`show running-config`, `show configuration` and the commit database views."""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import Change, ConfigTree, Node, Path
from engine.errors import TrustledgerError
from engine.grammar import Grammar, Mode
from engine.parser import parse, section_words
from engine.state import Commit, CommitHistory
from projections.timefmt import stamp


def _order(grammar: Grammar, mode: Mode, line: str) -> tuple[int, int, str]:
    try:
        m = parse(grammar, mode, line)
    except TrustledgerError:  # a line this build no longer knows sorts last, unchanged
        return (1 << 30, 0, line)
    if m is None:
        return (1 << 30, 0, line)
    return (m.command.rank, m.command.order, line)


def _submode(grammar: Grammar, mode: Mode, line: str) -> Mode | None:
    """The mode `line` opens (`crypto ca trustpoint x`: config-trustp), or None."""
    try:
        m = parse(grammar, mode, line)
    except TrustledgerError:  # a line this build no longer knows opens nothing it knows
        return None
    return m.command.enters if m and m.command.enters else None


def render_tree(grammar: Grammar, nodes: dict[str, Node] | ConfigTree, mode: Mode = Mode.CONFIG,
                depth: int = 0) -> list[str]:
    """The lines in running-config order; each submode closed by `!`, an empty one too (IOS
    XR prints `crypto ca trustpoint x` then `!` for a trustpoint with nothing set)."""
    items = nodes.roots if isinstance(nodes, ConfigTree) else nodes
    out: list[str] = []
    for node in sorted(items.values(), key=lambda n: _order(grammar, mode, n.line)):
        out.append(" " * depth + node.line)
        submode = _submode(grammar, mode, node.line)
        if node.children or submode is not None:
            out.extend(render_tree(grammar, dict(node.children), submode or mode, depth + 1))
            out.append(" " * depth + "!")
    return out


def render_running(grammar: Grammar, tree: ConfigTree, commits: CommitHistory,
                   section: str | None = None) -> str:
    roots = dict(tree.roots)
    if section:
        want = list(section_words(grammar, section) or section.split())
        roots = {k: n for k, n in roots.items() if n.line.split()[: len(want)] == want}
        if not roots:
            return "% No such configuration item(s)\n"
        return "\n".join([*render_tree(grammar, roots), ""])
    head = ["Building configuration...", "!! IOS XR Configuration (trustledger)"]
    last = next(iter(commits), None)
    if last is not None:
        head.append(f"!! Last configuration change at {stamp(last.at)} by {last.user}")
    body = render_tree(grammar, roots)
    close = "!" if body and body[-1] != "!" else ""  # a submode's `!` closes the body too
    return "\n".join([*head, "!", *body, close, "end", ""]).replace("\n\n", "\n")


def _placed(grammar: Grammar, changes: Sequence[Change]) -> list[tuple[Change, bool]]:
    """The changes in running-config order (a section's lines under its head, sections in
    the order `show running-config` gives them), each with whether its line opens a submode."""
    placed: list[tuple[tuple[tuple[int, int, str], ...], Change, bool]] = []
    for ch in changes:
        mode: Mode | None = Mode.CONFIG
        key: list[tuple[int, int, str]] = []
        for i in range(len(ch.path)):
            line = _line_of(changes, ch.path[: i + 1])
            at = mode or Mode.CONFIG
            key.append(_order(grammar, at, line))
            mode = _submode(grammar, at, line)
        placed.append((tuple(key), ch, mode is not None))
    placed.sort(key=lambda p: p[0])
    return [(ch, opens) for _, ch, opens in placed]


def render_changes(grammar: Grammar, changes: Sequence[Change]) -> str:
    """Changes as configuration lines in running-config order, nested under their parents; a
    removal shows as `no <line>`, and the removal of a whole section only as the `no` of its
    head; an added section is closed by `!`, an empty one too."""
    removed = {ch.path for ch in changes if ch.new is None}
    out: list[str] = []
    shown: list[str] = []  # the section heads currently open, outermost first
    for ch, opens in _placed(grammar, changes):
        if ch.new is None and any(ch.path[:i] in removed for i in range(1, len(ch.path))):
            continue  # inside a section removed as a whole
        parents = [_line_of(changes, ch.path[: i + 1]) for i in range(len(ch.path) - 1)]
        common = 0
        while common < min(len(shown), len(parents)) and shown[common] == parents[common]:
            common += 1
        for depth in range(len(shown) - 1, common - 1, -1):
            out.append(" " * depth + "!")
        for depth in range(common, len(parents)):
            out.append(" " * depth + parents[depth])
        depth = len(parents)
        line = ch.new if ch.new is not None else f"no {ch.old}"
        out.append(" " * depth + line)
        shown = parents + ([line] if opens and ch.new is not None else [])
    for depth in range(len(shown) - 1, -1, -1):
        out.append(" " * depth + "!")
    return "\n".join(out)


def _line_of(changes: Sequence[Change], path: Path) -> str:
    """The line a parent path shows: as changed in this list if it is, else its key."""
    for ch in changes:
        if ch.path == path:
            return ch.new or ch.old or path[-1]
    return path[-1]


def render_target(grammar: Grammar, changes: Sequence[Change]) -> str:
    body = render_changes(grammar, changes)
    return "\n".join(["Building configuration...", *([body] if body else []), "end", ""])


def render_commit_list(commits: CommitHistory) -> str:
    rows = ["SNo. Label/ID              User      Line                Client      Time Stamp",
            "~~~~ ~~~~~~~~              ~~~~      ~~~~                ~~~~~~      ~~~~~~~~~~"]
    for n, c in enumerate(commits, 1):
        label = c.label or str(c.commit_id)
        rows.append(f"{n:<4} {label:<21} {c.user[:9]:<9} {'con0_RP0_CPU0':<19} "
                    f"{'Rollback' if c.rollback_to else 'CLI':<11} {stamp(c.at)}")
    return "\n".join(rows) + "\n"


def render_commit_changes(grammar: Grammar, commit: Commit) -> str:
    head = ["Building configuration...", f"!! Commit {commit.commit_id} by {commit.user} "
            f"at {stamp(commit.at)}" + (f" label {commit.label}" if commit.label else "")]
    if commit.comment:
        head.append(f"!! Comment: {commit.comment}")
    return "\n".join([*head, render_changes(grammar, commit.changes), "end", ""])
