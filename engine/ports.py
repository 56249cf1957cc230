"""Ports: how the pure middle reaches the world. Each has a Protocol and a real adapter;
tests pass fakes. Nothing in decide/evolve touches these directly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000


@dataclass
class FakeClock:
    """A clock tests move by hand."""

    us: int = 1_764_201_600_000_000  # 2025-11-27 00:00:00 UTC

    def now_us(self) -> int:
        return self.us

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1_000_000)


class Prompter(Protocol):
    def ask(self, prompt: str, secret: bool) -> str | None:
        """The operator's answer, or None when there is nobody to ask (end of input)."""
        ...


Writer = Callable[[str], None]
