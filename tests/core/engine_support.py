"""Helpers for engine tests: deterministic engines and a way to compare them."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from engine.ports import FakeClock

SHOWS = ("show running-config", "show configuration commit list")


def open_engine(path: Path, clock: FakeClock | None = None, **kw: object) -> Engine:
    return Engine.open(path, clock=clock or FakeClock(), user="tester", **kw)  # type: ignore[arg-type]


def views(engine: Engine) -> dict[str, str]:
    """Every show output that only depends on committed state (exec mode)."""
    saved = engine.session.modes
    engine.session.modes = saved[:1]
    try:
        return {line: engine.execute(line).output for line in SHOWS}
    finally:
        engine.session.modes = saved


def run(engine: Engine, *lines: str, answers: list[str] | None = None) -> str:
    out = []
    for line in lines:
        res = engine.execute(line, answers=answers)
        out.append(res.output)
    return "".join(out)
