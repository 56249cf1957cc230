"""The configuration session machine (engine/machines/session.py): given a session in a mode
(with or without uncommitted changes), when a mode command runs, then the session is in the mode
the table says, or the command is refused with the `%` line operators know and nothing changes.
The grammar offers the mode commands exactly where the table has them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import Engine
from engine.config import ConfigTree
from engine.grammar import GRAMMAR, Mode
from engine.machines import session as machine
from engine.machines.session import SESSION, TABLE
from engine.ports import FakeClock
from engine.session import Session

EXEC, CONFIG, TRUSTP = Mode.EXEC, Mode.CONFIG, Mode.TRUSTP


def _exec(e: Engine) -> None:
    pass


def _config(e: Engine) -> None:
    assert e.execute("configure").ok


def _config_changed(e: Engine) -> None:
    _config(e)
    assert e.execute("hostname r9").ok


def _trustp_changed(e: Engine) -> None:
    _config(e)
    assert e.execute("crypto ca trustpoint t1").ok


def _trustp(e: Engine) -> None:
    _trustp_changed(e)
    assert e.execute("commit").ok  # committed: in the submode, nothing pending


GIVEN: dict[str, tuple[Callable[[Engine], None], Mode, bool]] = {
    "exec": (_exec, EXEC, False),
    "config": (_config, CONFIG, False),
    "config-changed": (_config_changed, CONFIG, True),
    "trustp": (_trustp, TRUSTP, False),
    "trustp-changed": (_trustp_changed, TRUSTP, True),
}

WHEN = {  # trigger: the line that fires it
    "configure": "configure",
    "trustpoint": "crypto ca trustpoint t2",
    "exit": "exit",
    "end": "end",
    "commit": "commit",
    "abort": "abort",
    "rollback": "rollback configuration last 1",
}

INVALID = "% Invalid input detected at '^' marker."
CASES = [(g, t) for g in GIVEN for t in WHEN]


def engine_in(given: str) -> Engine:
    e = Engine.in_memory(clock=FakeClock())
    _config(e)
    assert e.execute("hostname r1").ok and e.execute("end", answers=["yes"]).ok  # a commit
    GIVEN[given][0](e)
    assert e.session.mode is GIVEN[given][1]
    assert bool(e.session.pending()) is GIVEN[given][2]
    return e


@pytest.mark.parametrize(("given", "trigger"), CASES, ids=[f"{g}-{t}" for g, t in CASES])
def test_mode_commands_from_every_mode(given: str, trigger: str) -> None:
    e = engine_in(given)
    mode, changed = e.session.mode, bool(e.session.pending())
    if mode is EXEC and trigger == "exit":
        assert e.execute("exit").ok and e.session.mode is EXEC  # the frontend's: it ends
        return
    if mode in machine.SUBMODES and not SESSION.allows(mode, trigger) and SESSION.allows(
            CONFIG, trigger):
        mode = CONFIG  # a line the submode does not know but config does: an exit first
    legal = SESSION.allows(mode, trigger)
    guarded = legal and SESSION.fire(mode, e.session, trigger) is None
    r = e.execute(WHEN[trigger], answers=["cancel"])
    if not legal:
        assert not r.ok and r.events == []
        assert r.output.splitlines()[-1] == INVALID  # the grammar has it where the table has
        assert e.session.mode is mode and bool(e.session.pending()) is changed
    elif guarded:  # uncommitted changes: the question, and "cancel" stays
        assert "Uncommitted changes found, commit them? [yes]:" in r.output
        assert e.session.mode is mode and bool(e.session.pending()) is changed
    else:
        assert r.ok, r.output
        assert e.session.mode is SESSION.destination(mode, trigger)


def test_rollback_outside_exec_is_refused_by_the_machine() -> None:
    """The grammar offers rollback in exec only (`do` runs it there); its handler asks the
    machine all the same, and a session in config mode is refused."""
    from engine.commands.configuration import rollback_last
    from engine.engine import Ctx
    from engine.errors import OperatorError
    from engine.parser import parse

    e = engine_in("config-changed")
    match = parse(GRAMMAR, EXEC, "rollback configuration last 1")
    assert match is not None
    ctx = Ctx(e.state, e.session, 0, "admin", match, GRAMMAR)
    with pytest.raises(OperatorError) as err:
        next(rollback_last(ctx))
    assert err.value.message == "% Rollback is an exec command; 'end' first."


@pytest.mark.parametrize(("given", "answer", "then", "commits"), [
    ("config-changed", "yes", EXEC, 1), ("config-changed", "no", EXEC, 0),
    ("trustp-changed", "yes", EXEC, 1), ("trustp-changed", "no", EXEC, 0),
])
def test_end_with_changes_asks(given: str, answer: str, then: Mode, commits: int) -> None:
    e = engine_in(given)
    r = e.execute("end", answers=[answer])
    assert r.ok and e.session.mode is then and e.session.target is None
    assert len(r.events) == commits


def test_the_grammar_offers_mode_commands_where_the_table_has_them() -> None:
    for trigger, pattern in [("commit", "commit"), ("abort", "abort"), ("end", "end"),
                             ("configure", "configure"), ("exit", "exit")]:
        modes = {m for c in GRAMMAR.commands if c.name.split()[0] == pattern
                 for m in c.modes}
        extra = {EXEC} if trigger == "exit" else set()  # exit at exec ends the frontend
        assert modes == set(SESSION.sources(trigger)) | extra, trigger


def test_every_legal_edge_moves_a_session_where_the_table_says() -> None:
    running = Engine.in_memory().state.config
    for edge in TABLE:
        for source in edge.sources:
            s = Session()
            if source is not EXEC:
                s.configure(running)
            if source in machine.SUBMODES:
                s.enter(source, ("crypto ca x",))
            assert s.mode is source
            _fire(s, edge.trigger, running)
            assert s.mode is (edge.dest or source), (edge.trigger, source)
            assert len(s.modes) == {EXEC: 1, CONFIG: 2}.get(s.mode, 3)


def _fire(s: Session, trigger: str, running: ConfigTree) -> None:
    if trigger == "configure":
        s.configure(running)
    elif trigger == "commit":
        s.commit(running)
    elif trigger in ("exit", "end", "abort"):
        getattr(s, trigger)()
    elif trigger != "rollback":  # rollback changes no mode
        s.enter(next(m for m, t in machine.ENTERS.items() if t == trigger), ("y",))
