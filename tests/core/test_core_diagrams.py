"""`trustledger diagrams -o DIR` and the diagrams committed in docs/machines/: each is drawn
from the machine decide uses, and a committed one that no longer matches its table fails here
(the DOT source is compared, not the SVG bytes, so graphviz versions do not matter)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.cli import main
from engine.machines import diagrams
from engine.machines.diagrams import MACHINES, dot_source
from engine.machines.table import Edge, Table
from engine.machines.trustpoint import Lifecycle, TrustpointModel

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "machines"
HAS_DOT = shutil.which("dot") is not None


@pytest.mark.parametrize("name", list(MACHINES))
def test_the_committed_diagram_is_of_the_current_table(name: str) -> None:
    committed = (COMMITTED / f"{name}.dot").read_text()
    assert committed == dot_source(MACHINES[name]), (
        f"docs/machines/{name}.dot is stale: run `trustledger diagrams -o docs/machines`")


@pytest.mark.parametrize("name", list(MACHINES))
def test_the_committed_svg_draws_every_state_and_trigger(name: str) -> None:
    """The SVG was drawn from a DOT of this table: graphviz writes every node's and every
    label's text into it, whatever its version."""
    svg = (COMMITTED / f"{name}.svg").read_text().replace("&#45;", "-")  # graphviz escapes -
    table = MACHINES[name]
    for state in table.states:
        assert f">{state.value or 'exec'}</text>" in svg, state
    for edge in table.edges:
        assert f">{edge.trigger}" in svg, edge.trigger


def test_a_changed_table_changes_the_dot() -> None:
    """What makes the staleness test able to fail: one edge more, another DOT."""
    table = MACHINES["trustpoint"]
    grown = Table("trustpoint", list(Lifecycle), Lifecycle.DECLARED,
                  [*table.edges, Edge("expire", (Lifecycle.ENROLLED,), Lifecycle.AUTHENTICATED)],
                  TrustpointModel())
    assert "expire" in dot_source(grown) and dot_source(grown) != dot_source(table)


def test_guards_are_drawn_on_their_edges() -> None:
    session = dot_source(MACHINES["session"])
    assert '"config" -> "exec" [label="exit [!has_changes]\\nend [!has_changes]\\nabort"];' \
        in session
    assert "approve [issuable]" in dot_source(MACHINES["ca_request"])


@pytest.mark.skipif(not HAS_DOT, reason="graphviz's dot is not installed")
def test_the_command_writes_dot_and_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    assert main(["diagrams", "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    for name in MACHINES:
        dot, svg = tmp_path / "out" / f"{name}.dot", tmp_path / "out" / f"{name}.svg"
        assert str(dot) in printed and str(svg) in printed
        assert dot.read_text() == (COMMITTED / f"{name}.dot").read_text()
        assert svg.read_text().lstrip().startswith("<?xml") and "</svg>" in svg.read_text()


def test_without_graphviz_one_percent_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagrams.shutil, "which", lambda name: None)
    assert main(["diagrams", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == ("% graphviz's `dot` is not installed (Debian: apt-get install graphviz).\n")
    assert list(tmp_path.iterdir()) == []
