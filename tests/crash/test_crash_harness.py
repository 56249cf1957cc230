"""The crash harness (tools/crash/run.py): its checker finds a loss when there is one, and CI
runs 50 trials of SIGKILLed `trustledger exec` and `ca serve` under scepclient load."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from engine import Engine
from engine.ports import FakeClock

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tools" / "crash" / "run.py"


@functools.cache
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


TRANSCRIPT = """\
RP/0/RP0/CPU0:ios#configure
RP/0/RP0/CPU0:ios(config)#hostname h1
RP/0/RP0/CPU0:ios(config)#commit
RP/0/RP0/CPU0:h1(config)#end
RP/0/RP0/CPU0:h1#crypto key generate rsa general-keys k1
How many bits in the modulus [2048]:1024
[OK]
RP/0/RP0/CPU0:h1#configure
RP/0/RP0/CPU0:h1(config)#hostname h2
RP/0/RP0/CPU0:h1(config)#commit
"""


def test_only_closed_commands_count_as_acknowledged() -> None:
    """`commit` of h2 is the last echo (killed while it ran): not acknowledged."""
    acked = harness().device_acknowledged(TRANSCRIPT, finished=False)
    assert acked.hostnames == {"h1"} and acked.generated == {"k1"} and not acked.zeroized


ZEROIZES = """\
RP/0/RP0/CPU0:h1#crypto key zeroize rsa k1
% The RSA keys named 'k1' will be removed.
% No trustpoint holds a router certificate issued for these keys.
Do you really want to remove these keys? [yes/no]:yes
RP/0/RP0/CPU0:h1#crypto key zeroize rsa k2
% The RSA keys named 'k2' will be removed.
Do you really want to remove these keys? [yes/no]:yes
% Could not write the event log: No space left on device. Nothing was changed.
RP/0/RP0/CPU0:h1#crypto key zeroize rsa k3
Do you really want to remove these keys? [yes/no]:no
RP/0/RP0/CPU0:h1#crypto key zeroize rsa k4
% The RSA keys named 'k4' will be removed.
Do you really want to remove these keys? [yes/no]:yes
"""


def test_a_zeroize_answered_yes_without_an_error_after_it_is_acknowledged() -> None:
    """The warnings before the question are `%` lines too; only a `%` after the answer is a
    failure. k4's echo is the last one (killed while it ran): not acknowledged."""
    acked = harness().device_acknowledged(ZEROIZES, finished=False)
    assert acked.zeroized == {"k1"}


def test_the_checker_reports_what_the_log_does_not_hold(tmp_path: Path) -> None:
    run = harness()
    with Engine.open(tmp_path / "d", clock=FakeClock()) as eng:
        for line in ("configure", "hostname h1", "commit", "end"):
            assert eng.execute(line).ok
    report = run.Report()
    claimed = run.Acked(frozenset({"h1", "h2"}), frozenset({"k1"}), frozenset())
    run.check_device(tmp_path / "d", claimed, report, 7)
    assert report.lost == ["trial 7: device lost the acknowledged commit of hostname h2",
                           "trial 7: device lost the acknowledged key generation k1"]
    assert not report.unopenable


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(shutil.which("scepclient") is None, reason="needs micromdm scepclient")
def test_fifty_trials_lose_nothing() -> None:
    done = subprocess.run([sys.executable, str(RUN), "--trials", "50"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=1200, check=False)
    last = done.stdout.strip().splitlines()[-1]
    assert last == "50 trials, 0 lost, 0 unopenable", done.stdout + done.stderr
    assert done.returncode == 0
