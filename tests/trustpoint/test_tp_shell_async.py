"""Asynchronous messages in the interactive shell (issue 14 item 6), on a real pty: a poll that
runs while the operator is typing prints its `%PKI-...` message on lines of its own above the
prompt, broken between words at the terminal's width, then the prompt and the half-typed line
are drawn again and the line goes on as typed."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pexpect
import pytest

from engine import Engine
from engine.ca.decide import Approval
from tests.support.peer_support import tcp_server
from tests.support.pty_support import Screen, spawn_shell
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    configure,
    declare,
    enroll,
    identity_and_key,
)

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
    server.stop()
    # The poll goes to a "CA" that holds it until the half line is on the screen, then hangs
    # up: the poll fails then, not at the scheduler's first tick (1 s after start, which a
    # busy machine's prompt and keystrokes did not always beat).
    typed = threading.Event()

    def hold_then_hang_up(conn: socket.socket) -> None:
        typed.wait(60)

    with tcp_server(hold_then_hang_up, threaded=True) as port:
        url = f"http://127.0.0.1:{port}"
        configure(device, "crypto ca trustpoint myca", f"enrollment url {url}")
        device.close()  # (its clock is in 2025: the shell's real clock finds the poll overdue)
        _half_line_survives(spawn_shell(device_dir, columns=COLUMNS), url, typed)


def _half_line_survives(child: pexpect.spawn, url: str, typed: threading.Event) -> None:
    try:
        screen = Screen(child)
        screen.expect(PROMPT)
        screen.send("show runn")  # half a line, typed before the poll fails
        screen.expect("show runn")
        typed.set()
        screen.expect("%PKI-4-POLL_FAILED: ")
        message = "%PKI-4-POLL_FAILED: " + screen.expect(PROMPT + "show runn")
        lines = message.replace("\r", "").split("\n")
        assert lines[-1] == "" and all(0 < len(ln) < COLUMNS for ln in lines[:-1]), lines
        assert len(lines) > 2  # it was long enough to need a break
        screen.send("ing-config | include url\r")
        screen.expect(f" enrollment url {url}\r\n{PROMPT}")
        screen.send("show logging | include POLL_FAILED\r")
        screen.expect(" UTC: pki[0]: ")
        logged = screen.expect("\r\n" + PROMPT)
        # Broken only between words: the log's one line has the same words, in order.
        assert " ".join(message.split()) in " ".join(logged.split())
    finally:
        typed.set()
        child.terminate(force=True)
