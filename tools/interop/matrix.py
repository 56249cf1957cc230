"""The interop matrix: cells, their outcomes, and running one.

A cell is one peer doing one thing against one of our ends (our CA, or our client against a
peer's CA). It is a function `(Workspace) -> str`: it returns what it saw when everything
happened as RFC 8894 says it should, and raises

- `Failed(detail)` when our side is wrong (a refusal it should not make, a wrong failInfo, a
  5xx, a certificate that does not verify, an unclear transcript): the cell is red and the pytest
  test fails;
- `PeerFault(detail, bug)` when the peer is at fault and the cell has checked that our side
  answered correctly: the cell is red, with the peer's bug named.

A cell whose peer bug is known in advance declares it (`known_peer_bug`): the pytest module marks
it xfail(strict=True, raises=PeerFault), so the suite stays green while the peer is broken, turns
red if the peer starts working (strict), and still fails on any `Failed` (our bug). Any other
exception (a timeout, a peer that is not installed) is a red cell too.

Each cell gets its own Workspace (temporary directories, free ports); every process it starts
is stopped when the cell ends, whatever happened.
"""

from __future__ import annotations

import importlib
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.interop.support import Failed, PeerFault, Workspace

CellFunc = Callable[[Workspace], str]


@dataclass(frozen=True)
class Cell:
    peer: str  # one word: scepclient, certmonger, strongswan, scepserver, openssl
    case: str  # one word
    run: CellFunc
    known_peer_bug: str | None = None  # the peer's bug that keeps this cell red, if known

    @property
    def id(self) -> str:
        return f"{self.peer}-{self.case}"


@dataclass(frozen=True)
class Outcome:
    cell: Cell
    passed: bool
    detail: str
    peer_bug: str | None = None  # set when the peer is at fault (our side checked correct)
    kept: Path | None = None  # the cell's directory, when kept

    def line(self) -> str:
        return (f"{'PASS' if self.passed else 'FAIL'} {self.cell.peer} {self.cell.case}: "
                f"{self.detail}" + (f" [peer bug: {self.peer_bug}]" if self.peer_bug else ""))


CELLS: list[Cell] = []
PEER_MODULES = ("cells_scepclient", "cells_certmonger", "cells_strongswan", "cells_shell",
                "cells_openssl")  # the order


def cell(peer: str, case: str, *, known_peer_bug: str | None = None,
         ) -> Callable[[CellFunc], CellFunc]:
    """Register the decorated function as the cell `peer case` (in definition order)."""
    def register(func: CellFunc) -> CellFunc:
        assert " " not in peer and " " not in case, (peer, case)
        assert all(c.id != f"{peer}-{case}" for c in CELLS), (peer, case)
        CELLS.append(Cell(peer, case, func, known_peer_bug))
        return func
    return register


def all_cells() -> list[Cell]:
    """Every cell, grouped by peer as the issue lists them."""
    for name in PEER_MODULES:  # importing a module registers its cells
        importlib.import_module(f"tools.interop.{name}")
    return list(CELLS)


def run_cell(c: Cell, base: Path | None = None, *, keep: bool = False) -> Outcome:
    """Run one cell in a fresh temporary directory under `base` (removed unless `keep`)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"ix-{c.case[:12]}-", dir=base))
    kept = tmp if keep else None
    try:
        with Workspace(tmp, keep=keep) as ws:
            detail = c.run(ws)
        return Outcome(c, True, detail, kept=kept)
    except PeerFault as e:
        return Outcome(c, False, e.detail, e.bug, kept=kept)
    except Failed as e:
        return Outcome(c, False, e.detail, kept=kept)
    except Exception as e:  # a timeout, a missing peer: red, with what happened
        last = traceback.extract_tb(e.__traceback__)[-1]
        return Outcome(c, False, f"error: {type(e).__name__}: {e} "
                                 f"({Path(last.filename).name}:{last.lineno})", kept=kept)
