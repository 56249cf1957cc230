"""`clock set` from the CLI (issue 15), in `trustledger exec` and the interactive shell on a
pty: `?` help for each argument, `%` errors, and a pending enrollment walked forward — each
poll the clock passes runs, at its own time, and an approval between two `clock set`s is
picked up by the next one. Runs under LC_ALL=C and C.UTF-8."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import Engine
from engine.ca.decide import Approval
from engine.ca.service import BuiltinCA
from engine.messages import MONTHS
from engine.ports import FakeClock
from tests.support.pty_support import Screen, shell_env, spawn_shell
from tests.trustpoint.tp_support import CAFactory, authenticate, declare, enroll, identity_and_key

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cli_locale")]

PROMPT = "RP/0/RP0/CPU0:myrouter#"
DAY = 86_400_000_000


@pytest.fixture
def clock() -> FakeClock:
    """The set-up (device and CA) runs a day ahead of the real time: in the CLI, on the system
    clock, no poll is due before a `clock set` moves the device past it, however long the
    test takes on a busy machine."""
    return FakeClock((time.time_ns() // 1000 + DAY) // 1_000_000 * 1_000_000)


def clock_set(t: datetime) -> str:
    return f"clock set {t:%H:%M:%S} {t.day} {MONTHS[t.month - 1]} {t.year}"


def pending(device: Engine, ca_factory: CAFactory) -> tuple[BuiltinCA, datetime]:
    """A device (on disk, closed) whose enrollment is pending at a CA served over loopback
    HTTP; the first poll is due a minute after the returned time."""
    ca, server = ca_factory(Approval.MANUAL, http=True)
    identity_and_key(device)
    declare(device, url=server.url, period=1, count=10)
    assert authenticate(device).ok
    start = device.ports.clock.now()
    assert enroll(device, password=ca.mint_challenge()).ok
    device.close()
    return ca, start


def polls_shown(text: str) -> str:
    m = re.search(r"Polls +:(\d+ of \d+)", text)
    assert m is not None, text
    return m.group(1)


def exec_script(data: Path, tmp_path: Path, *lines: str) -> tuple[str, int]:
    script = tmp_path / "script.txt"
    script.write_text("".join(ln + "\n" for ln in lines))
    done = subprocess.run([sys.executable, "-m", "engine.cli", "exec", "--continue", "--data",
                           str(data), "-f", str(script)], capture_output=True, env=shell_env(),
                          timeout=60, check=False)
    return done.stdout.decode("ascii"), done.returncode  # ASCII even under LC_ALL=C


def test_exec_walks_a_pending_enrollment(device: Engine, ca_factory: CAFactory,
                                         device_dir: Path, tmp_path: Path) -> None:
    _, start = pending(device, ca_factory)
    ahead = start + timedelta(hours=1, minutes=3, seconds=30)
    out, status = exec_script(device_dir, tmp_path, clock_set(ahead),
                              "show crypto ca trustpoint myca | include Polls",
                              "clock set 25:00:00 1 December 2026",
                              "clock set 10:00:00 31 February 2026", "show clock")
    assert status == 1  # the two bad lines
    assert f"{PROMPT}{clock_set(ahead)}\n{ahead:%H:%M:%S}.000 UTC " in out
    # Polls at +1, +2 ... +10 minutes: the tenth times the enrollment out. Here it is the
    # approval that is missing, so all ten ran, each in its minute, and the walk stopped there.
    assert "%PKI-3-ENROLL_TIMEOUT: Certificate enrollment for trustpoint myca timed out " \
           "(no certificate after 10 polls)." in out
    assert "\n% Invalid input detected at '^' marker.\n" in out
    assert "\n% Invalid date: February 2026 has no day 31.\n" in out
    shown = out.rsplit(f"{PROMPT}show clock\n", 1)[1].strip()
    # The clock ran on from the time set (for as long as the script took).
    ran_on = datetime.strptime(shown, "%H:%M:%S.%f UTC %a %b %d %Y").replace(tzinfo=UTC)
    assert ahead <= ran_on < ahead + timedelta(seconds=30)


def test_the_shell_helps_and_walks_the_polls(device: Engine, ca_factory: CAFactory,
                                             device_dir: Path) -> None:
    ca, start = pending(device, ca_factory)
    child = spawn_shell(device_dir)
    try:
        screen = Screen(child)
        screen.expect(PROMPT)
        screen.send("clock set ?")
        screen.expect("hh:mm:ss  Current Time")
        screen.send("\x15clock set 10:00:00 ?")
        screen.expect("<1-31>  Day of the month")
        screen.expect("MONTH   Month of the year")
        screen.send("\x15clock set 10:00:00 1 dec ?")
        screen.expect("<1993-2035>  Year")
        screen.send("\x15clock set 10:00:00 1 Ju 2026\r")
        screen.expect("% Invalid input detected at '^' marker.")
        screen.expect(PROMPT)

        three = start + timedelta(minutes=3, seconds=30)
        screen.send(clock_set(three) + "\r")
        screen.expect(f"{three:%H:%M:%S}.000 UTC")
        screen.expect(PROMPT)
        screen.send("show crypto ca trustpoint myca | include Polls\r")
        screen.expect("\r\n  Polls")
        assert polls_shown("Polls" + screen.expect("\r\n")) == "3 of 10"

        ca.approve(next(r.transaction_id for r in ca.requests()))
        # Noon, so that the clock running on from it is on the same day when shown (at
        # start + 2 days, a test run at 23:59:5x showed the next day).
        later = (start + timedelta(days=2)).replace(hour=12, minute=0, second=0)
        screen.send(clock_set(later) + "\r")
        screen.expect("%PKI-6-CERTRET: Certificate received from Certificate Authority for "
                      "trustpoint myca")
        screen.expect(PROMPT)
        screen.send("show crypto ca trustpoint myca | include State\r")
        screen.expect("\r\nState")
        assert screen.expect("\r\n").split(":")[-1] == "enrolled"
        screen.send("show clock\r")
        screen.expect("show clock\r\r\n")
        assert screen.expect("\r\n").endswith(f" UTC {later:%a %b %d %Y}")
    finally:
        child.terminate(force=True)
