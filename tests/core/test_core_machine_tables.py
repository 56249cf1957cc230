"""engine/machines/table.py: the lookup the folds use is what the `transitions` machine says,
a table whose lookup would be ambiguous is refused, and folding never imports `transitions`."""

from __future__ import annotations

import enum
import subprocess
import sys

import pytest

from engine.machines.diagrams import MACHINES
from engine.machines.table import Edge, IllegalTransition, Table


@pytest.mark.parametrize("name", list(MACHINES))
def test_the_folds_lookup_is_the_machine(name: str) -> None:
    table = MACHINES[name]
    lookup = {(s, t): d for s, t, d in table.pairs}
    assert table.machine_destinations() == lookup
    for state in table.states:
        for trigger in {e.trigger for e in table.edges}:
            if (state, trigger) in lookup:
                assert table.destination(state, trigger) is lookup[state, trigger]
            else:
                with pytest.raises(IllegalTransition, match=trigger):
                    table.destination(state, trigger)


class Light(enum.Enum):
    RED = "red"
    GREEN = "green"


class LightModel:
    def __init__(self) -> None:
        self.state: enum.Enum = Light.RED
        self.subject: bool | None = None

    def allowed(self) -> bool:
        return bool(self.subject)

    def trigger(self, name: str) -> bool:
        raise NotImplementedError


def test_one_destination_per_trigger_and_source() -> None:
    with pytest.raises(ValueError, match="go from RED leads to two states"):
        Table("light", list(Light), Light.RED, [
            Edge("go", (Light.RED,), Light.GREEN, conditions=("allowed",)),
            Edge("go", (Light.RED,), None, unless=("allowed",))], LightModel())


def test_guards_are_checked_by_the_machine() -> None:
    table = Table("light", list(Light), Light.RED,
                  [Edge("go", (Light.RED,), Light.GREEN, conditions=("allowed",))],
                  LightModel())
    assert table.fire(Light.RED, True, "go") == ("go", Light.GREEN)
    assert table.fire(Light.RED, False, "go") is None
    assert table.fire(Light.GREEN, True, "go") is None  # no such edge
    assert table.fire(Light.RED, False, "go", "go") is None
    with pytest.raises(ValueError, match="light has no trigger 'stop'"):
        table.fire(Light.RED, True, "stop", "go")


def test_folding_does_not_import_transitions() -> None:
    code = ("import sys, engine.state, engine.trustpoints, engine.commands, engine.ca.state; "
            "print('transitions' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_model_no_table_built_refuses_to_fire() -> None:
    """`trigger` is declared once on the base model and bound by a Table's machine: a model
    that no Table holds says so instead of silently doing nothing."""
    import pytest

    from engine.machines.table import Model

    with pytest.raises(TypeError, match="not the model of a Table"):
        Model().trigger("enroll")
