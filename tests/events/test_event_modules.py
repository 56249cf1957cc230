"""events.registry.EVENT_MODULES: where each stored type name is declared, so that decoding
imports an event module only when the log holds one of its types (issue 12's start-up row).

Each check that depends on what is imported runs in a fresh interpreter: this test process
has long imported every event module.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import events
from events.registry import EVENT_MODULES, Event, UnknownEventType, event, event_from

REPO = Path(__file__).resolve().parents[2]


def _declared() -> dict[str, str]:
    """Every event class the `events` package declares: type name -> its module, found by
    importing every module of the package and looking at what each defines."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(events.__path__, "events."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            # `@event` gives a declared type its name; events.store.StoredEvent (an imported
            # event carried in its stored form) is an Event without one, never stored as such.
            if issubclass(cls, Event) and cls.type_name and cls.__module__ == info.name:
                found[cls.type_name] = info.name
    return found


def test_the_map_names_every_event_type_of_the_package_under_its_module() -> None:
    """Complete (no type missing: its stored events could not be decoded in a process that
    had not imported it) and correct (no stale or misplaced name)."""
    assert dict(EVENT_MODULES) == _declared()


def _fresh(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True, timeout=60)
    return done.stdout.split()


def test_decoding_a_type_imports_its_module_and_only_that_one() -> None:
    probe = ("import sys\n"
             "from events.registry import event_from\n"
             "before = {m for m in sys.modules if m.startswith('events.')}\n"
             "ev = event_from('ClockSet', 1, {'set_to_us': 7, 'offset_us': 5})\n"
             "after = {m for m in sys.modules if m.startswith('events.')}\n"
             "print(type(ev).__module__, type(ev).__name__, ev.offset_us,\n"
             "      ','.join(sorted(after - before)))\n")
    assert _fresh(probe) == ["events.clock", "ClockSet", "5", "events.clock"]


def test_known_types_loads_every_listed_module() -> None:
    probe = ("from events.registry import EVENT_MODULES, known_types\n"
             "print(sorted(known_types()) == sorted(EVENT_MODULES))\n")
    assert _fresh(probe) == ["True"]


def test_an_unknown_type_is_still_refused_by_name() -> None:
    with pytest.raises(UnknownEventType, match="NoSuchEvent"):
        event_from("NoSuchEvent", 1, {})


def test_a_package_event_type_missing_from_the_map_is_refused_at_declaration() -> None:
    """A new event type in events/ that is not listed fails when its module is imported,
    not later in a process that decodes it without having imported it."""
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True)
    class Unlisted(Event):
        value: int

    Unlisted.__module__ = "events.clock"  # as if declared there
    with pytest.raises(TypeError, match="EVENT_MODULES"):
        event("UnlistedTestEvent")(Unlisted)
