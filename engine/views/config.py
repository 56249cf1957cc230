"""The views of the configuration: `show running-config`, `show configuration`, the commit
list and a commit's changes (engine/views/__init__.py says what a view is)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.views import View

if TYPE_CHECKING:
    from engine.config import Change, ConfigTree
    from engine.grammar import Grammar
    from engine.state import Commit, CommitHistory


@dataclass(frozen=True)
class TargetConfigView(View):
    """`show configuration`: the uncommitted changes (the grammar orders them as
    `show running-config` does)."""

    grammar: Grammar
    changes: Sequence[Change]


@dataclass(frozen=True)
class RunningConfigView(View):
    """`show running-config [SECTION]`."""

    grammar: Grammar
    config: ConfigTree
    commits: CommitHistory
    section: str | None


@dataclass(frozen=True)
class CommitListView(View):
    """`show configuration commit list`."""

    commits: CommitHistory


@dataclass(frozen=True)
class CommitChangesView(View):
    """`show configuration commit changes ...`: each commit's changes, oldest first."""

    grammar: Grammar
    commits: Sequence[Commit]
