"""The interop matrix (tools/interop, issue 13 item 7) under pytest: one test per cell.

A cell that is red because our side is wrong fails its test. A cell kept red by a peer bug that
is known in advance is xfail(strict=True, raises=PeerFault): the suite stays green while the peer
is broken, an XPASS (the peer got fixed) fails it so we notice, and a `Failed` (our bug) in such a
cell still fails it. A peer fault found at run time in a cell not marked (e.g. strongSwan 5.9.8
refusing a PSS-signed CertRep, if our CA answers PSS in kind) is reported as xfail with the bug.
A missing peer is an error under CI ($CI set) and a skip on a developer machine.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tools.interop.matrix import Cell, all_cells, run_cell
from tools.interop.support import PeerFault, peers_dir

pytestmark = [pytest.mark.interop, pytest.mark.integration, pytest.mark.slow]

PEER_BINARIES = {"scepclient": ("scepclient",), "certmonger": ("certmonger", "getcert",
                                                              "dbus-run-session"),
                 "strongswan": ("pki",), "scepserver": ("scepserver", "socat", "unshare"),
                 "openssl": ("openssl",)}
NEEDS_SCRIPTS = {"certmonger", "strongswan", "scepserver"}  # ../shared/peers


def _missing(peer: str) -> str:
    missing = [b for b in PEER_BINARIES[peer] if shutil.which(b) is None]
    if missing:
        return f"peer not installed: {' '.join(missing)} (tools/install-peers.sh)"
    if peer in NEEDS_SCRIPTS:
        try:
            peers_dir()
        except RuntimeError as e:
            return str(e)
    return ""


def _param(c: Cell) -> object:
    marks = [pytest.mark.xfail(strict=True, raises=PeerFault, reason=c.known_peer_bug)
             ] if c.known_peer_bug else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("cell", [_param(c) for c in all_cells()])
def test_cell(cell: Cell) -> None:
    why = _missing(cell.peer)
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    outcome = run_cell(cell)
    print(outcome.line())
    if outcome.passed:
        return
    if outcome.peer_bug is not None:
        if cell.known_peer_bug:
            raise PeerFault(outcome.detail, outcome.peer_bug)
        pytest.xfail(outcome.line())
    pytest.fail(outcome.line(), pytrace=False)
