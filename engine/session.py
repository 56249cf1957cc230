"""One operator's CLI session: the mode stack and the target configuration.

The target configuration (IOS XR's two-stage commit) is session state, not log state: it is
the running configuration as it was when the session entered configuration mode, plus the
edits typed since. Only `commit` turns it into an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import Change, ConfigTree, Path, diff
from engine.grammar import Mode


@dataclass
class Session:
    user: str = "admin"
    line: str = "con0_RP0_CPU0"  # where the session came from, as `show ... commit list` shows
    modes: list[tuple[Mode, Path]] = field(default_factory=lambda: [(Mode.EXEC, ())])
    base: ConfigTree | None = None  # running config when configuration mode was entered
    target: ConfigTree | None = None

    @property
    def mode(self) -> Mode:
        return self.modes[-1][0]

    @property
    def path(self) -> Path:
        return self.modes[-1][1]

    def enter_config(self, running: ConfigTree) -> None:
        self.modes = [(Mode.EXEC, ()), (Mode.CONFIG, ())]
        self.base = self.target = running

    def pending(self) -> list[Change]:
        if self.base is None or self.target is None:
            return []
        return diff(self.base, self.target)

    def edit(self, changes: list[Change]) -> None:
        assert self.target is not None, "edits happen in configuration mode"
        self.target = self.target.apply_all(changes)

    def restart_target(self, running: ConfigTree) -> None:
        self.base = self.target = running

    def to_exec(self) -> None:
        self.modes = [(Mode.EXEC, ())]
        self.base = self.target = None
