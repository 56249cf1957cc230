"""The one direction of imports (pyproject.toml, [tool.importlinter]): events <- engine core
<- projections <- application (engine.engine) <- frontends/CLI.

lint-imports checks the contract (tools/test.sh runs it; so does the test below). These tests
keep the contract whole: every module of engine/ sits in a layer, and every view a handler may
return has a renderer.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

from engine.views import View, config, state
from projections.render import _RENDERERS, render

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [{m for m in re.split(r"[:|\s]+", layer) if m} for layer in contract["layers"]]


def test_every_engine_module_sits_in_one_layer() -> None:
    children = {f"engine.{p.stem}" for p in (ROOT / "engine").glob("*.py")
                if p.name != "__init__.py"}
    children |= {f"engine.{p.parent.name}" for p in (ROOT / "engine").glob("*/__init__.py")}
    placed = [m for layer in _layers() for m in layer]
    assert sorted(m for m in placed if placed.count(m) > 1) == []
    assert children - set(placed) == set(), "place each new engine module in a layer"


def test_the_layers_run_from_the_frontends_down_to_the_store() -> None:
    layers = _layers()
    assert "engine.cli" in layers[0]
    assert [layers.index(next(la for la in layers if m in la)) for m in
            ("engine.frontends", "engine.engine", "projections", "engine.commands", "events")] \
        == [1, 2, 3, 4, 5]


def test_every_view_has_a_renderer() -> None:
    """`_RENDERERS` is keyed by class name (projections.render): every view module's views
    have a line, and each name is one view's only."""
    kinds = [c.__name__ for module in (config, state) for c in vars(module).values()
             if isinstance(c, type) and issubclass(c, View) and c.__module__ == module.__name__]
    assert sorted(kinds) == sorted(_RENDERERS)


def test_only_a_view_is_rendered_by_its_class_name() -> None:
    """Another class of a view's name is not rendered as that view."""
    class RunningConfigView:  # not a View
        pass

    with pytest.raises(TypeError, match="no renderer for RunningConfigView"):
        render(RunningConfigView())


def test_text_renders_as_itself() -> None:
    assert render("% Enrollment cancelled.") == "% Enrollment cancelled."


def test_contract_is_kept() -> None:
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_core_alone_never_renders_a_view() -> None:
    """Without the application's renderer plugged in, the runtime prints text and refuses a
    view: turning data into text is projections' job."""
    from engine.effects import Say
    from engine.runtime import Ports, perform

    ports = Ports()
    perform(Say("% text\n"), ports)
    assert ports.out == ["% text\n"]
    with pytest.raises(TypeError, match="no renderer"):
        perform(Say(state.LoggingView(())), ports)
    ports.render = render
    perform(Say(state.LoggingView(())), ports)
    assert ports.out[-1].startswith("Syslog logging: enabled")
