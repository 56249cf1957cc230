"""One operator's CLI session: the mode stack and the target configuration.

The target configuration (IOS XR's two-stage commit) is session state, not log state: it is
the running configuration as it was when the session entered configuration mode, plus the
edits typed since. Only `commit` turns it into an event.

Every mode change is a trigger of the session machine (engine/machines/session.py): the
methods below take the new mode from its table. The stack follows from the mode: exec, then
config, then at most one submode with the path of the line that entered it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import Change, ConfigTree, Path, diff
from engine.grammar import Mode
from engine.machines.session import ENTERS, SESSION


@dataclass
class Session:
    """One operator's session: the mode stack and the configuration being edited."""

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

    def pending(self) -> list[Change]:
        if self.base is None or self.target is None:
            return []
        return diff(self.base, self.target)

    def edit(self, changes: list[Change]) -> None:
        assert self.target is not None, "edits happen in configuration mode"
        self.target = self.target.apply_all(changes)

    # -- mode changes (the session machine's triggers) -------------------------------------------

    def configure(self, running: ConfigTree) -> None:
        self._go("configure")
        self.base = self.target = running

    def enter(self, mode: Mode, path: Path) -> None:
        """A configuration line that enters a submode (`crypto ca trustpoint NAME`)."""
        self._go(ENTERS[mode], path)

    def exit(self) -> None:
        self._go("exit")

    def end(self) -> None:
        self._go("end")

    def abort(self) -> None:
        self._go("abort")

    def commit(self, running: ConfigTree) -> None:
        """The target was committed: a new one starts from the new running config."""
        self._go("commit")
        self.base = self.target = running

    def to_exec(self) -> None:
        """Back to the start of a session, whatever the mode (the frontends' reset)."""
        self.modes = [(Mode.EXEC, ())]
        self.base = self.target = None

    def _go(self, trigger: str, path: Path = ()) -> None:
        dest = SESSION.destination(self.mode, trigger)
        if dest is Mode.EXEC:
            self.to_exec()
        elif dest is Mode.CONFIG:
            self.modes = [(Mode.EXEC, ()), (Mode.CONFIG, ())]
        elif dest is not self.mode:
            self.modes.append((dest, path))
