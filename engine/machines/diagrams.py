"""`trustledger diagrams -o DIR`: each machine drawn from the `transitions` machine decide uses.

For every machine, DIR/NAME.dot is the DOT source (written here, byte for byte the same for
the same table, so a test can tell a committed diagram is stale without graphviz) and
DIR/NAME.svg is graphviz's `dot -Tsvg` drawing of it. An arrow is labelled with the triggers
that take it, each with its guards: `[has_changes]` must hold, `[!has_changes]` must not. The
initial state has a double border and an arrow from a dot.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from engine.errors import OperatorError, Reason
from engine.machines.ca_request import REQUESTS
from engine.machines.renewal import RENEWAL
from engine.machines.session import SESSION
from engine.machines.table import Table
from engine.machines.trustpoint import LIFECYCLE
from engine.machines.trustpool import TIMER

MACHINES: dict[str, Table[Any]] = {
    "trustpoint": LIFECYCLE,
    "ca_request": REQUESTS,
    "session": SESSION,
    "trustpool": TIMER,
    "renewal": RENEWAL,
}


class DiagramError(OperatorError):
    """Graphviz is missing or failed: the operator's to fix (one `%` line)."""

    def __init__(self, text: str) -> None:
        super().__init__(Reason.NOT_FOUND, text)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name(state: Any) -> str:
    return str(state.value) or "exec"  # Mode.EXEC's value is "" (no prompt suffix)


def dot_source(table: Table[Any]) -> str:
    """The machine as DOT, read from `table.machine` (its states, events and conditions)."""
    by_name = {s.name: s for s in table.states}
    lines = [f"digraph {_quote(table.name)} {{",
             "  rankdir=LR;",
             '  node [shape=box, style=rounded, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];',
             '  start [shape=point, label=""];',
             f"  start -> {_quote(_name(table.initial))};"]
    for state in table.states:
        extra = ", peripheries=2" if state is table.initial else ""
        lines.append(f"  {_quote(_name(state))} [label={_quote(_name(state))}{extra}];")
    arrows: dict[tuple[str, str], list[str]] = {}  # one arrow per (source, dest), in order
    for trigger, event in table.machine.events.items():
        for source, transitions in event.transitions.items():
            for t in transitions:
                dest = by_name[t.dest if t.dest is not None else source]
                guards = [("" if c.target else "!") + str(c.func) for c in t.conditions]
                label = trigger + (f" [{', '.join(guards)}]" if guards else "")
                arrows.setdefault((_name(by_name[source]), _name(dest)), []).append(label)
    for (source, dest), labels in arrows.items():
        text = "\\n".join(_quote(label)[1:-1] for label in labels)  # DOT's line break
        lines.append(f'  {_quote(source)} -> {_quote(dest)} [label="{text}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_diagrams(out: Path) -> list[Path]:
    """Write NAME.dot and NAME.svg for every machine into `out`; the files written."""
    _dot()  # nothing is written without graphviz
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in MACHINES.items():
        source = dot_source(table)
        (out / f"{name}.dot").write_text(source)
        (out / f"{name}.svg").write_bytes(svg_of(source, f"{name}.dot"))
        written += [out / f"{name}.dot", out / f"{name}.svg"]
    return written


def svg_of(source: str, name: str = "the diagram") -> bytes:
    """graphviz's `dot -Tsvg` drawing of a DOT source."""
    done = subprocess.run([_dot(), "-Tsvg"], input=source.encode(), capture_output=True,
                          check=False, timeout=60)
    if done.returncode != 0:
        raise DiagramError(f"dot failed on {name}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _dot() -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError("graphviz's `dot` is not installed (Debian: apt-get install "
                           "graphviz).")
    return dot
