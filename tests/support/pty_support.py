"""The interactive shell on a real pty, and what it printed with the terminal escapes removed.

prompt_toolkit draws with escape sequences (cursor moves, colours, bracketed paste); `Screen`
drops them so tests compare the text an operator reads."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[2]
_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][0-9A-Za-z]|[=>])")


def shell_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PROMPT_TOOLKIT_NO_CPR": "1",
            "TERM": "xterm"}


def spawn_shell(data: Path, columns: int = 200) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "engine.cli", "shell", "--data", str(data)],
                         env=shell_env(), encoding="utf-8", timeout=15,
                         dimensions=(40, columns))


class Screen:
    """What the shell printed, without terminal escapes; `expect` consumes up to a match and
    returns what came before it."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.text = ""

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def expect(self, wanted: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while wanted not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted!r} not in {self.text[-800:]!r}")
            try:
                self.text += self.child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            self.text = _ESCAPE.sub("", self.text)
        before, _, self.text = self.text.partition(wanted)
        return before
