"""Explicit fold tables: every event type belongs to one aggregate's table, importing
engine.state alone gives the complete device folds, and a log holding an event type its
aggregate does not fold refuses to open (and `replay` and `log verify` refuse it too),
naming the type and the seq."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import events.audit
import events.ca
import events.clock
import events.device
import events.keys
import events.renewal
import events.revocation
import events.rollover
import events.trustpoint
import events.trustpool
import events.validation
import events.witness
from engine.audit.witness_service import WITNESS_FOLDS
from engine.ca.state import CA_FOLDS
from engine.cli import main
from engine.engine import Engine
from engine.folds import UnfoldedEvent
from engine.ports import FakeClock
from engine.state import device_folds, folds_fingerprint
from events.ca import ChallengeMinted
from events.filelog import FileEventLog
from events.registry import Event, known_types
from events.store import PendingEvent
from tests.core.engine_support import open_engine


def declared(module: object) -> set[str]:
    return {t.type_name for t in vars(module).values()
            if isinstance(t, type) and issubclass(t, Event) and t is not Event}


def test_every_event_type_is_in_exactly_one_aggregate_table() -> None:
    device = {t.type_name for t in device_folds().types}
    ca = {t.type_name for t in CA_FOLDS.types}
    assert device == declared(events.device) | declared(events.keys) | declared(
        events.trustpoint) | declared(events.trustpool) | declared(events.clock) | declared(
        events.renewal) | declared(events.revocation) | declared(events.validation) | declared(
        events.audit) | declared(events.rollover)
    assert ca == declared(events.ca) | declared(events.audit)
    assert device & ca == declared(events.audit)  # the audit key: every log has one
    witness = {t.type_name for t in WITNESS_FOLDS.types}
    assert witness == declared(events.witness)
    assert not witness & (device | ca)
    # Every type the engine's event modules declare (tests register LogTest* types of their own).
    assert device | ca | witness == {n for n, t in known_types().items()
                                     if t.__module__.startswith("events.")}
    for table in (device_folds(), CA_FOLDS, WITNESS_FOLDS):
        for t in table.types:
            assert callable(table.by_name[t.type_name])


def test_the_written_out_folds_fingerprint_is_this_builds() -> None:
    """Snapshots are written and checked with `FOLDS_FINGERPRINT`, written out so that an open
    from a snapshot loads no fold: it must be what the folds compute. A changed FOLD_VERSION,
    a folded event type added or removed or a new schema version of one changes the
    computed value; then this fails until the constant in engine/state.py is updated."""
    from engine.state import FOLDS_FINGERPRINT

    computed = folds_fingerprint().hex()
    assert FOLDS_FINGERPRINT.hex() == computed, (
        f"engine/state.py FOLDS_FINGERPRINT is stale: set it to {computed}")


def test_importing_engine_state_alone_gives_every_fold() -> None:
    probe = (
        "import sys, engine.state as s\n"
        "from engine.state import DeviceState, evolve\n"
        "from events.keys import PublicKeyImported\n"
        "assert 'engine.commands' not in sys.modules\n"
        "ev = PublicKeyImported('k', 'rsa', 'general', 2048, b'x', 'spki')\n"
        "st = evolve(DeviceState(), ev, 5)\n"
        "print(len(st.keys.imported), s.folds_fingerprint().hex())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", folds_fingerprint().hex()]


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """A device data directory whose log holds, after a commit, an event of the CA's (which
    the device does not fold)."""
    clock = FakeClock()
    e = open_engine(tmp_path, clock)
    e.execute("configure")
    e.execute("hostname r1")
    e.execute("end", answers=["yes"])
    e.close()
    with FileEventLog.open(tmp_path / "log") as log:
        [rec] = log.append([PendingEvent(ChallengeMinted(b"\0" * 32, 0), "device", clock.us)])
    (tmp_path / "foreign-seq").write_text(str(rec.seq))
    return tmp_path


def test_a_device_log_with_an_unfolded_type_refuses_to_open(foreign: Path) -> None:
    seq = int((foreign / "foreign-seq").read_text())
    with pytest.raises(UnfoldedEvent) as e:
        Engine.open(foreign, clock=FakeClock())
    assert (e.value.type_name, e.value.seq) == ("ChallengeMinted", seq)
    assert e.value.message.startswith(
        f"% The device log holds an event of type ChallengeMinted at seq {seq}, which this "
        "build does not fold")


def test_replay_and_log_verify_refuse_it_too(foreign: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    seq = int((foreign / "foreign-seq").read_text())
    refusal = f"% The device log holds an event of type ChallengeMinted at seq {seq},"
    assert main(["replay", str(foreign), "--until", str(seq + 5)]) == 2
    assert refusal in capsys.readouterr().err
    assert main(["log", "verify", str(foreign)]) == 2
    assert refusal in capsys.readouterr().err
