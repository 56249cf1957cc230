"""No path around the kernel (issue 11 item 1): the CA service and the device engine append only
what a handler driven by the runtime decided, and fold only what they read back from a log.
A method that made keys, drew serials, decided or folded by hand beside `drive` (as `ca init`,
`ca rollover` and the open-time audit key once did) fails here, naming itself. And the states
a CRL revokes in come from the trustpoint table, not a list of its own (issue 11 item 2)."""

from __future__ import annotations

import ast
from pathlib import Path

from engine.machines.trustpoint import LIFECYCLE, Lifecycle
from engine.revocation.own import REVOCABLE

ROOT = Path(__file__).resolve().parents[2]


def calls_by_function(path: Path) -> dict[str, list[ast.Call]]:
    """Every call in the module, by the name of the function (or method) it is in."""
    found: dict[str, list[ast.Call]] = {}

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef) else where
            if isinstance(child, ast.Call):
                found.setdefault(where, []).append(child)
            visit(child, inner)

    visit(ast.parse(path.read_text()), "<module>")
    return found


def called(call: ast.Call) -> str:
    """`f` for f(...), `attr` for x.attr(...); the receiver too for x.y.append: "y.append"."""
    fn = call.func
    if isinstance(fn, ast.Name):
        return fn.id
    if isinstance(fn, ast.Attribute):
        base = fn.value
        owner = base.attr if isinstance(base, ast.Attribute) else (
            base.id if isinstance(base, ast.Name) else "")
        return f"{owner}.{fn.attr}" if owner else fn.attr
    return ""


def where_called(path: Path, names: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for function, calls in calls_by_function(path).items():
        for call in calls:
            if called(call) in names:
                out.setdefault(called(call), set()).add(function)
    return out


def test_the_ca_service_decides_and_folds_only_through_the_kernel() -> None:
    service = ROOT / "engine" / "ca" / "service.py"
    by_hand = {"decide_init", "decide_rollover", "create_audit_key", "generate",
               "keys.generate", *(f"{p}{f}" for p in ("", "profile.")
                                  for f in ("random_serial", "ca_certificate", "ra_certificate"))}
    assert where_called(service, by_hand) == {}
    # Folding: only what is read back from a log (open's replay, another writer's events).
    assert where_called(service, {"evolve"}) == {"evolve": {"_catch_up", "replay"}}
    # Appending: only a driven command's batch (`_batch(decided, actor)`).
    for function, calls in calls_by_function(service).items():
        for call in calls:
            if called(call) in ("log.append", "_log.append"):
                assert [called(a) for a in call.args if isinstance(a, ast.Call)] == \
                    ["_batch"], f"{function} appends what no handler decided"


def test_the_device_appends_only_what_a_handler_returned() -> None:
    engine = ROOT / "engine" / "engine.py"
    assert where_called(engine, {"store.append"}) == {
        "store.append": {"_apply", "_append_system"}}
    assert where_called(engine, {"create_audit_key", "new_audit_key", "builtins_event",
                                 "generate"}) == {}


def test_a_crl_revokes_in_the_states_the_table_revokes_from() -> None:
    sources = {s for e in LIFECYCLE.edges if e.trigger in ("revoke", "revoke_installed")
               for s in e.sources}
    assert REVOCABLE == sources == {Lifecycle.ENROLLED, Lifecycle.REVOKED,
                                    Lifecycle.ENROLLING}
    own = (ROOT / "engine" / "revocation" / "own.py").read_text()
    assert "Lifecycle.ENROLLED" not in own  # no list of states of its own
