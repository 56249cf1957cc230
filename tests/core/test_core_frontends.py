"""Frontends: golden transcripts of batch runs, and the real interactive shell on a pty."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pexpect
import pytest

from engine.frontends import run_batch
from engine.ports import FakeClock
from tests.core.engine_support import open_engine

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parents[2]


def batch(tmp_path: Path, script: str, keep_going: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    with open_engine(tmp_path, FakeClock()) as eng:
        status = run_batch(eng, iter(script.splitlines(keepends=True)), out, keep_going)
    return status, out.getvalue()


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.script")))
def test_golden_transcript(tmp_path: Path, name: str) -> None:
    script = (GOLDEN / f"{name}.script").read_text()
    status, text = batch(tmp_path, script, keep_going=True)
    expected = GOLDEN / f"{name}.transcript"
    if os.environ.get("TRUSTLEDGER_REGOLD"):
        expected.write_text(text)
    assert text == expected.read_text()
    assert status == 1  # the script holds deliberate errors (exec "commit", "comment" alone)


def test_batch_stops_at_the_first_error_unless_continue(tmp_path: Path) -> None:
    script = "configure\nhostname bad_name\nhostname ok\ncommit\ndo show running-config hostname\n"
    status, text = batch(tmp_path / "a", script)
    assert status == 1 and "hostname ok" not in text
    status, text = batch(tmp_path / "b", script, keep_going=True)
    assert status == 1 and text.endswith("RP/0/RP0/CPU0:ok(config)#do show running-config "
                                         "hostname\nhostname ok\n")


def test_a_question_takes_the_next_line_and_empty_means_default(tmp_path: Path) -> None:
    status, text = batch(tmp_path, "configure\nhostname r5\nend\n\nshow running-config hostname\n")
    assert status == 0
    assert "Uncommitted changes found, commit them? [yes]:\n" in text
    assert text.endswith("RP/0/RP0/CPU0:r5#show running-config hostname\nhostname r5\n")


@pytest.mark.usefixtures("cli_locale")
def test_exec_and_shell_read_scripts(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("configure\nhostname r7\ncommit\nend\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = pexpect.run(f"{sys.executable} -m engine.cli exec --data {tmp_path / 'd'} -f {script}",
                        env=env, encoding="utf-8", withexitstatus=True, timeout=30)
    out, status = child
    assert status == 0 and "RP/0/RP0/CPU0:r7(config)#end" in out
    piped = pexpect.run(f"sh -c '{sys.executable} -m engine.cli shell --data {tmp_path / 'd'} "
                        f"< {script}'", env=env, encoding="utf-8", withexitstatus=True,
                        timeout=30)
    assert piped[1] == 0 and "RP/0/RP0/CPU0:r7#configure" in piped[0]


@pytest.fixture
def shell(tmp_path: Path, cli_locale: str) -> pexpect.spawn:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PROMPT_TOOLKIT_NO_CPR": "1",
           "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "engine.cli", "shell", "--data",
                                           str(tmp_path)], env=env, encoding="utf-8",
                          timeout=15, dimensions=(40, 200))
    child.expect_exact("RP/0/RP0/CPU0:ios#")
    yield child
    child.terminate(force=True)


def test_interactive_shell(shell: pexpect.spawn) -> None:
    shell.send("conf t\r")
    shell.expect_exact("RP/0/RP0/CPU0:ios(config)#")
    shell.send("hostn\t")  # Tab completes the keyword
    shell.send("r1\r")
    shell.expect_exact("RP/0/RP0/CPU0:ios(config)#hostname r1")
    shell.expect_exact("RP/0/RP0/CPU0:ios(config)#")
    shell.send("show conf?")  # ? lists, then the line is offered again
    shell.expect_exact("configuration  Contents of the configuration")
    shell.send("\r")
    shell.expect_exact("hostname r1")
    shell.send("end\r")
    shell.expect_exact("Uncommitted changes found, commit them? [yes]:")
    shell.send("yes\r")
    shell.expect_exact("RP/0/RP0/CPU0:r1#")  # the prompt follows the committed hostname
    shell.send("conf\t")  # after a question, Tab still completes on the command line
    shell.send("\r")
    shell.expect_exact("RP/0/RP0/CPU0:r1(config)#")
    shell.send("end\r")
    shell.expect_exact("RP/0/RP0/CPU0:r1#")
    shell.send("sh runnin-config\r")
    shell.expect_exact("% Invalid input detected at '^' marker.")
    shell.send("sh run\r")
    shell.expect_exact("hostname r1")
    shell.send("exit\r")
    shell.expect(pexpect.EOF)


def test_exit_at_the_exec_prompt_ends_a_script(tmp_path: Path) -> None:
    status, text = batch(tmp_path, "configure\nhostname r1\ncommit\nend\nexit\nhostname never\n")
    assert status == 0 and "never" not in text and text.endswith("RP/0/RP0/CPU0:r1#exit\n")


@pytest.mark.integration
def test_demo_keeps_its_data_with_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main job: the reference session against the built-in CA; --dir keeps the device
    so a newcomer can open it afterwards, and a used directory is refused."""
    from engine.demo import run_demo

    monkeypatch.delenv("TRUSTLEDGER_RUN", raising=False)

    out = io.StringIO()
    assert run_demo(out, tmp_path / "demo") == 0
    text = out.getvalue()
    assert "%PKI-6-CERTRET: Certificate received from Certificate Authority for " in text
    assert "State               :enrolled" in text
    with open_engine(tmp_path / "demo" / "device") as again:
        assert again.state.hostname == "myrouter"
        assert again.state.trustpoints["myca"].certificates
        # made at the first open, as the shell makes it: `audit key DIR` works afterwards
        assert again.audit is not None and "/ios/" in again.audit.key.origin
    assert run_demo(io.StringIO(), tmp_path / "demo") == 2
    assert f"! kept: trustledger shell --data {tmp_path / 'demo' / 'device'}" in text


@pytest.mark.integration
def test_the_demo_started_by_run_sh_names_it_in_its_hints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`trustledger` is on PATH only in an activated venv: after `sh tools/run.sh demo
    --dir D` the hints say `sh tools/run.sh shell --data D/device`, which works as typed."""
    from engine.demo import run_demo

    monkeypatch.setenv("TRUSTLEDGER_RUN", "sh tools/run.sh")
    out = io.StringIO()
    assert run_demo(out, tmp_path / "demo") == 0
    text = out.getvalue()
    assert f"! kept: sh tools/run.sh shell --data {tmp_path / 'demo' / 'device'}  |  " in text
    assert f"sh tools/run.sh ca serve {tmp_path / 'demo' / 'ca'} --port " in text
