"""Asynchronous messages in the interactive shell (issue 14 item 6), on a real pty: a poll that
runs while the operator is typing prints its `%PKI-...` message on lines of its own above the
prompt, broken between words at the terminal's width, then the prompt and the half-typed line
are drawn again and the line goes on as typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine
from engine.ca.decide import Approval
from tests.support.pty_support import Screen, spawn_shell
from tests.trustpoint.tp_support import CAFactory, authenticate, declare, enroll, identity_and_key

pytestmark = pytest.mark.integration

PROMPT = "RP/0/RP0/CPU0:myrouter#"
COLUMNS = 60


def test_a_poll_message_prints_above_the_prompt_and_the_half_line_survives(
        device: Engine, ca_factory: CAFactory, device_dir: Path) -> None:
    ca, server = ca_factory(Approval.MANUAL)
    identity_and_key(device)
    declare(device, url=server.url, period=1, count=5)
    assert authenticate(device).ok
    assert enroll(device, password=ca.mint_challenge()).ok  # pending; the poll is due at once
    device.close()  # (its clock is in 2025: the shell's real clock finds the poll overdue)
    server.stop()  # the CA is down: the poll fails

    child = spawn_shell(device_dir, columns=COLUMNS)
    try:
        screen = Screen(child)
        screen.expect(PROMPT)
        screen.send("show runn")  # half a line, typed before the scheduler's first tick
        screen.expect("show runn")
        screen.expect("%PKI-4-POLL_FAILED: ")
        message = "%PKI-4-POLL_FAILED: " + screen.expect(PROMPT + "show runn")
        lines = message.replace("\r", "").split("\n")
        assert lines[-1] == "" and all(0 < len(ln) < COLUMNS for ln in lines[:-1]), lines
        assert len(lines) > 2  # it was long enough to need a break
        screen.send("ing-config | include url\r")
        screen.expect(f" enrollment url {server.url}\r\n{PROMPT}")
        screen.send("show logging | include POLL_FAILED\r")
        screen.expect(" UTC: pki[0]: ")
        logged = screen.expect("\r\n" + PROMPT)
        # Broken only between words: the log's one line has the same words, in order.
        assert " ".join(message.split()) in " ".join(logged.split())
    finally:
        child.terminate(force=True)
