"""A CA log holding an event type the CA does not fold refuses to open, read-write or
read-only, and `log verify` refuses it too, naming the type and its seq."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ca.errors import CAError
from engine.ca.service import BuiltinCA
from engine.cli import main
from engine.ports import to_micros
from events.filelog import FileEventLog
from events.keys import PublicKeyRemoved
from events.store import PendingEvent
from tests.ca.ca_support import T0, make_ca


@pytest.fixture
def foreign(tmp_path: Path) -> tuple[Path, int]:
    make_ca(tmp_path / "ca").close()
    with FileEventLog.open(tmp_path / "ca" / "log") as log:
        [rec] = log.append([PendingEvent(PublicKeyRemoved("k", "rsa", "zeroize"), "ca",
                                         to_micros(T0))])
    return tmp_path / "ca", rec.seq


@pytest.mark.parametrize("readonly", [False, True])
def test_the_ca_refuses_to_open_it(foreign: tuple[Path, int], readonly: bool) -> None:
    root, seq = foreign
    with pytest.raises(CAError) as e:
        BuiltinCA.open(root, readonly=readonly)
    assert e.value.message.startswith(
        f"% The CA log holds an event of type PublicKeyRemoved at seq {seq}, which this build "
        "does not fold")


def test_log_verify_refuses_it(foreign: tuple[Path, int],
                               capsys: pytest.CaptureFixture[str]) -> None:
    root, seq = foreign
    assert main(["log", "verify", str(root)]) == 2
    assert (f"% The CA log holds an event of type PublicKeyRemoved at seq {seq},"
            in capsys.readouterr().err)
