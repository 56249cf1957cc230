"""The challenge password prompts in the interactive shell, on a real pty: control characters
typed at `Password:` (Ctrl-L) are not part of the password the CA receives, and Ctrl-C there
puts `% Aborted.` on a line of its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine import Engine
from engine.ca.decide import Approval
from engine.frontends import secret_text
from engine.ports import FakeClock
from tests.support.pty_support import Screen, spawn_shell
from tests.trustpoint.tp_support import CAFactory, authenticate, declare, identity_and_key

pytestmark = pytest.mark.integration

PROMPT = "RP/0/RP0/CPU0:myrouter#"
CHALLENGE = "s3cr3t-pw"


@pytest.fixture
def clock() -> FakeClock:
    """Today's time, shared by the CA and the device's set-up: the shell runs on the real
    clock, and the CA refuses a request signed far from its own time."""
    return FakeClock(time.time_ns() // 1000 - 60_000_000)


def test_control_characters_are_dropped_from_a_typed_secret() -> None:
    assert secret_text("s3c\x0cr3t\x01-pw\t\x7f") == "s3cr3t-pw"
    assert secret_text("pässwörd") == "pässwörd"


def test_the_dropped_characters_are_exactly_unicodes_control_characters() -> None:
    import unicodedata

    every = [chr(i) for i in range(0x110000)]
    dropped = {ch for ch in every if secret_text(ch) == ""}
    assert dropped == {ch for ch in every if unicodedata.category(ch) == "Cc"}


def _shell_at_enroll(device: Engine, ca_factory: CAFactory, device_dir: Path) -> Screen:
    _, server = ca_factory(Approval.AUTO, challenge=CHALLENGE, http=True)
    identity_and_key(device)
    declare(device, url=server.url)
    assert authenticate(device).ok
    device.close()
    screen = Screen(spawn_shell(device_dir))
    screen.expect(PROMPT)
    screen.send("crypto ca enroll myca\r")
    screen.expect("Password:")
    return screen


def test_ctrl_l_at_the_password_prompt_does_not_change_what_is_sent(
        device: Engine, ca_factory: CAFactory, device_dir: Path) -> None:
    screen = _shell_at_enroll(device, ca_factory, device_dir)
    try:
        screen.send(CHALLENGE[:3] + "\x0c" + CHALLENGE[3:] + "\r")
        screen.expect("Re-enter Password:")
        screen.send("\x0c" + CHALLENGE + "\r")
        after = screen.expect(PROMPT)
        assert "do not match" not in after, after
        # The CA checks the challenge password: it issued, so it received CHALLENGE exactly.
        assert "%PKI-6-CERTRET: Certificate received" in after, after
    finally:
        screen.child.terminate(force=True)


def test_ctrl_c_at_a_password_prompt_aborts_on_a_line_of_its_own(
        device: Engine, ca_factory: CAFactory, device_dir: Path) -> None:
    screen = _shell_at_enroll(device, ca_factory, device_dir)
    try:
        screen.send("x\r")
        screen.expect("Re-enter Password:")
        screen.send("\x03")
        assert screen.expect(PROMPT).replace("\r", "").startswith("\n% Aborted.\n")
    finally:
        screen.child.terminate(force=True)
