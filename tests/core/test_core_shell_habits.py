"""IOS XR habits in the interactive shell, on a real pty (issue 14 items 4, 5, 8): output
modifiers after `|`, Ctrl-Z as `end`, Ctrl-C at a question, `?` and Tab; and the same rules
in batch mode where they do not need a terminal."""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from engine.frontends import PastedLines, async_message, run_batch
from engine.ports import FakeClock
from events.store import PendingEvent
from tests.core.engine_support import open_engine
from tests.support.peer_support import tcp_server
from tests.support.pty_support import Screen, shell_env, spawn_shell

EXEC, CONFIG = "RP/0/RP0/CPU0:r1#", "RP/0/RP0/CPU0:r1(config)#"


def batch(tmp_path: Path, script: str) -> str:
    out = io.StringIO()
    with open_engine(tmp_path, FakeClock()) as eng:
        run_batch(eng, iter(script.splitlines(keepends=True)), out, keep_going=True)
    return out.getvalue()


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Screen]:
    """The shell on a pty, on a device named r1 with one trustpoint and two key pairs."""
    setup = tmp_path / "setup.txt"
    setup.write_text("configure\nhostname r1\ncrypto ca trustpoint myca\n"
                     "enrollment url http://127.0.0.1:9/\ncommit label base\nend\n"
                     "crypto key generate ecdsa nistp256 edge-key\n"
                     "crypto key generate ecdsa nistp256 spare\n")
    data = tmp_path / "d"
    done = pexpect.run(f"{sys.executable} -m engine.cli exec --data {data} -f {setup}",
                       env=shell_env(), encoding="utf-8", withexitstatus=True, timeout=30)
    assert done[1] == 0, done[0]
    child = spawn_shell(data)
    screen = Screen(child)
    screen.expect(EXEC)
    yield screen
    child.terminate(force=True)


def test_output_modifiers_on_the_pty(shell: Screen) -> None:
    shell.send("show running-config | include url\r")
    shell.expect(" enrollment url http://127.0.0.1:9/\r\n" + EXEC)
    shell.send("show running-config | ?")
    for line in ("begin    Begin with the line that matches",
                 "count    Count the number of lines in the output",
                 "exclude  Exclude lines that match",
                 "include  Include lines that match",
                 "section  Filter a section of output"):
        shell.expect(line)
    shell.send("\x15")  # Ctrl-U: clear the line offered again
    shell.send("show running-config | sec\t")  # Tab completes a modifier
    shell.send("trustpoint\r")
    shell.expect("show running-config | section trustpoint")
    shell.expect("crypto ca trustpoint myca\r\n enrollment url http://127.0.0.1:9/\r\n"
                 + EXEC)
    shell.send("show running-config | include (\r")
    shell.expect("^\r\n% Invalid regular expression: missing ), unterminated "
                       "subpattern.")
    shell.send("show running-config | count\r")
    shell.expect("Number of lines which match regexp = ")


def test_ctrl_z_is_end_with_the_commit_question(shell: Screen) -> None:
    shell.send("configure\r")
    shell.expect(CONFIG)
    shell.send("hostname r2\r")
    shell.expect(CONFIG)
    shell.send("\x1a")  # Ctrl-Z
    shell.expect("Uncommitted changes found, commit them? [yes]:")
    shell.send("yes\r")
    shell.expect("RP/0/RP0/CPU0:r2#")


def test_ctrl_v_types_a_question_mark_into_an_ldap_url(shell: Screen) -> None:
    """`?` opens help; after Ctrl-V (as on IOS) it is typed, as an LDAP URL needs."""
    shell.send("configure\r")
    shell.expect(CONFIG)
    shell.send("crypto ca trustpoint myca\r")
    shell.send("query url ldap://127.0.0.1/o=x\x16?cn\x16?base\r")
    shell.send("commit\r")
    shell.send("end\r")
    shell.expect(EXEC)
    shell.send("show running-config | include query\r")
    shell.expect(" query url ldap://127.0.0.1/o=x?cn?base\r\n" + EXEC)


def test_ctrl_c_at_a_question_aborts_and_changes_nothing(shell: Screen) -> None:
    shell.send("crypto key zeroize ecdsa spare\r")
    shell.expect("Do you really want to remove these keys? [yes/no]:")
    shell.send("\x03")  # Ctrl-C
    shell.expect("% Aborted.")
    shell.expect(EXEC)
    shell.send("show crypto key mypubkey ecdsa | include label\r")
    shell.expect("Key label:spare")
    shell.send("configure\r")
    shell.send("hostname r3\r")
    shell.send("end\r")
    shell.expect("Uncommitted changes found, commit them? [yes]:")
    shell.send("\x03")
    shell.expect("% Aborted.")
    shell.expect(CONFIG)  # still configuring, the change still pending
    shell.send("show configuration\r")
    shell.expect("hostname r3")


def test_a_pasted_block_runs_line_by_line(shell: Screen) -> None:
    """A terminal in bracketed-paste mode hands a pasted block over whole: it was one line
    with newlines in it (`% Control characters are not allowed.`). Each line is a command or
    the answer to the question before it; text after the last newline stays to be edited."""
    shell.send("\x1b[200~configure\r\nhostname r9\r\nend\nno\n"
               "show running-config hostname\nshow cl\x1b[201~")
    shell.expect("Uncommitted changes found, commit them? [yes]:no\r\n")
    shell.expect(EXEC + "show running-config hostname\r\nhostname r1\r\n")
    shell.expect(EXEC)
    shell.send("ock\r")
    shell.expect("show clock")
    shell.expect(" UTC ")
    shell.send("\x1b[200~crypto key zeroize ecdsa spare\ny\nshow crypto key mypubkey ecdsa "
               "| include label\n\x1b[201~")
    shell.expect("Do you really want to remove these keys? [yes/no]:y\r\n")
    shell.expect("Key label:edge-key\r\n" + EXEC)
    shell.send("\x1b[A\r")  # Up: the history has the pasted lines too
    shell.expect("show crypto key mypubkey ecdsa | include label")
    shell.expect("Key label:edge-key\r\n")


def test_a_block_pasted_at_a_question_ends_at_its_blank_line(shell: Screen,
                                                             tmp_path: Path) -> None:
    """A key pasted with the blank line that ends it and a command after: the command runs
    at the prompt (it was read as part of the key: not base64)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    shell.send("crypto key import authentication rsa peer\r")
    shell.expect('End with a blank line or the word "quit" on a line by itself')
    shell.send("\x1b[200~" + pem + "\nshow running-config hostname\n\x1b[201~")
    after = shell.expect(EXEC + "show running-config hostname\r\nhostname r1\r\n")
    assert after.endswith("-----END PUBLIC KEY-----\r\n\r\n[OK]\r\n"), after[-200:]


def test_ctrl_d_in_a_configuration_mode_asks_about_uncommitted_changes(
        shell: Screen, tmp_path: Path) -> None:
    """Ctrl-D ended the session at once, dropping uncommitted changes without a word: it is
    `end` first (cancel stays; yes commits, then the session ends)."""
    shell.send("configure\rhostname r5\r")
    shell.expect(CONFIG + "hostname r5")
    shell.send("\x04")  # Ctrl-D
    shell.expect("Uncommitted changes found, commit them? [yes]:")
    shell.send("cancel\r")
    shell.expect(CONFIG)
    shell.send("\x04")
    shell.expect("Uncommitted changes found, commit them? [yes]:")
    shell.send("yes\r")
    shell.child.expect(pexpect.EOF, timeout=15)
    out = batch(tmp_path / "d", "show running-config hostname\n")
    assert "\nhostname r5\n" in out, out


def test_pasted_lines_split_at_any_line_end() -> None:
    pasted = PastedLines()
    assert pasted.paste("no line end") is None
    assert pasted.paste("a\r\nb\rc\n\nd") == "a"
    assert [pasted.next_line() for _ in range(4)] == ["b", "c", "", None]
    assert pasted.take_fragment() == "d" and pasted.take_fragment() == ""
    assert pasted.paste("x\ny\n") == "x"
    pasted.drop()
    assert pasted.next_line() is None and pasted.take_fragment() == ""


@pytest.mark.integration
def test_ctrl_c_stopping_a_command_shows_one_caret_c(tmp_path: Path) -> None:
    """The terminal echoes ^C itself (ECHOCTL) while a command runs: the shell printed a
    second one (`^C^C`)."""
    reached = threading.Event()

    def silent(conn: socket.socket) -> None:
        reached.set()
        time.sleep(5)

    with tcp_server(silent, threaded=True) as port:
        setup = tmp_path / "setup.txt"
        setup.write_text(f"configure\nhostname r1\ncrypto ca trustpoint slow\n"
                         f"enrollment url http://127.0.0.1:{port}\ncommit\nend\n")
        done = pexpect.run(f"{sys.executable} -m engine.cli exec --data {tmp_path / 'd'} "
                           f"-f {setup}", env=shell_env(), withexitstatus=True, timeout=30)
        assert done[1] == 0, done[0]
        child = spawn_shell(tmp_path / "d")
        try:
            shell = Screen(child)
            shell.expect(EXEC)
            shell.send("crypto ca authenticate slow\r")
            shell.expect("crypto ca authenticate slow")
            assert reached.wait(10)
            shell.send("\x03")
            shell.expect("^C")  # the terminal's echo
            after = shell.expect(EXEC)
            shell.send("show clock\r")
            after += shell.expect(" UTC ")
            assert "^C" not in after, after
        finally:
            child.terminate(force=True)


def test_help_and_tab_know_exit_end_trustpoints_and_key_labels(shell: Screen) -> None:
    shell.send("?")
    shell.expect("exit       Exit from the EXEC (end this session)")
    shell.send("\x15")
    shell.send("crypto ca authenticate m\t")  # Tab completes the trustpoint name
    shell.send("?")  # the completion ended with a space: `?` lists what follows the name
    shell.expect("crypto ca authenticate myca ?\r\n  <cr>\r\n")
    shell.send("\x15")
    shell.send("crypto key zeroize ecdsa ed\t")  # and a key label
    shell.expect("crypto key zeroize ecdsa edge-key")
    shell.send("?")
    shell.expect("crypto key zeroize ecdsa edge-key ?\r\n  <cr>\r\n")
    shell.send("\x15")
    shell.send("configure\r")
    shell.expect(CONFIG)
    shell.send("?")
    shell.expect("end       Exit from configure mode")
    shell.expect("exit      Exit from this submode")
    shell.send("\x15")
    shell.send("commit ?")
    shell.expect("comment  Assign a comment to this commit")
    shell.expect("label    Assign a label to this commit")


def test_modifiers_in_batch_mode_and_do_show(tmp_path: Path) -> None:
    text = batch(tmp_path, "configure\nhostname r1\ndomain name example.com\ncommit\n"
                           "do show running-config | exclude ^(!|Building|end)\n"
                           "do show running-config | begin domain\n"
                           "do show running-config | count name\n"
                           "show running-config | bogus\n")
    assert ("#do show running-config | exclude ^(!|Building|end)\n"
            "hostname r1\ndomain name example.com\n") in text
    assert "#do show running-config | begin domain\ndomain name example.com\n!\nend\n" in text
    assert "#do show running-config | count name\nNumber of lines which match regexp = 2\n" \
        in text
    column = len("RP/0/RP0/CPU0:r1(config)#show running-config | ")
    assert ("#show running-config | bogus\n" + " " * column + "^\n"
            "% Invalid input detected at '^' marker.\n") in text


def test_modifiers_chain_left_to_right_and_regexes_keep_their_bars(tmp_path: Path) -> None:
    """` | ` and a modifier keyword start the next modifier; any other `|` is the regex's."""
    text = batch(tmp_path, "configure\nhostname r1\ndomain name example.com\ncommit\nend\n"
                           "show running-config | include host|domain\n"
                           "show running-config | include host|domain | exclude dom\n"
                           "show running-config | i name | e host | count\n"
                           "show running-config | include domain | zzz\n"
                           "show running-config | include r1 | \n"
                           "show running-config | include r1 | include (\n"
                           "show running-config | include r1 | ?\n"
                           "show running-config | include r1 | e?\n")
    assert ("#show running-config | include host|domain\n"
            "hostname r1\ndomain name example.com\n" + EXEC) in text
    assert "#show running-config | include host|domain | exclude dom\nhostname r1\n" + EXEC \
        in text
    assert ("#show running-config | i name | e host | count\n"
            "Number of lines which match regexp = 1\n") in text
    # No modifier keyword after the bar: the regex `domain | zzz` (alternation), as in IOS.
    assert ("#show running-config | include domain | zzz\ndomain name example.com\n"
            + EXEC) in text
    assert "#show running-config | include r1 | \n% Incomplete command.\n" in text
    column = len(EXEC + "show running-config | include r1 | include ")
    assert ("#show running-config | include r1 | include (\n" + " " * column + "^\n"
            "% Invalid regular expression: missing ), unterminated subpattern.\n") in text
    assert ("#show running-config | include r1 | ?\n"
            "  begin    Begin with the line that matches\n") in text
    assert text.endswith("#show running-config | include r1 | e?\n"
                         "  exclude  Exclude lines that match\n")
    with open_engine(tmp_path, FakeClock()) as eng:
        assert eng.complete("show running-config | include r1 | ex") == "exclude "
        assert eng.complete("show running-config | include a|b") is None  # the regex's bar


def test_commit_database_by_label_and_last_n(tmp_path: Path) -> None:
    text = batch(tmp_path, "configure\nhostname r1\ncommit label first\nhostname r2\ncommit\n"
                           "end\nshow configuration commit changes last 2\n"
                           "rollback configuration to first\n"
                           "show configuration commit changes first\n"
                           "rollback configuration to nosuch\n")
    assert text.count("Building configuration...\n!! Commit ") == 3
    assert "label first\nhostname r1\nend\nBuilding configuration...\n!! Commit 1000000002" in text
    assert ("#rollback configuration to first\nLoading Rollback Changes.\n"
            "Loaded Rollback Changes.\nCommitting.\n1 item committed.\n"
            "Configuration successfully rolled back 1 commit.\nRP/0/RP0/CPU0:r1#") in text
    assert "#rollback configuration to nosuch\n% Commit label nosuch not found.\n" in text


def test_help_texts_of_show_configuration_are_their_own(tmp_path: Path) -> None:
    text = batch(tmp_path, "show configuration ?\nshow configuration commit changes ?\n"
                           "show running-config ?\n")
    assert ("#show configuration ?\n"
            "  commit  Commit database: the list of commits and what each changed\n") in text
    assert "  last                          Changes made by the last N commits\n" in text
    assert "  <1000000001-2000000000>|WORD  Commit ID or label\n" in text
    assert "  |     Output modifiers\n" in text


def test_help_of_rollback_configuration_is_its_own(tmp_path: Path) -> None:
    """It was `show configuration`'s ('Contents of the configuration (target, commits)')."""
    text = batch(tmp_path, "rollback ?\nconfigure\ndo rollback ?\n")
    assert text.count("  configuration  Roll back to the configuration of an earlier "
                      "commit\n") == 2
    assert "Contents of the configuration" not in text


def test_enrollment_url_the_client_cannot_use_is_refused_when_typed(tmp_path: Path) -> None:
    text = batch(tmp_path, "configure\ncrypto ca trustpoint t\nenrollment url ftp://ca/\n"
                           "enrollment url https://ca.example/scep\ncommit\n"
                           "do show running-config crypto ca trustpoint t\n")
    column = len("RP/0/RP0/CPU0:ios(config-trustp)#enrollment url ")
    assert ("(config-trustp)#enrollment url ftp://ca/\n" + " " * column + "^\n"
            "% Invalid input detected at '^' marker.\n") in text
    assert " enrollment url https://ca.example/scep\n!\n" in text


def test_running_config_closes_a_last_submode_with_one_bang(tmp_path: Path) -> None:
    text = batch(tmp_path, "configure\ncrypto ca trustpoint t\nenrollment terminal\ncommit\n"
                           "end\nshow running-config\n")
    assert text.endswith("crypto ca trustpoint t\n enrollment terminal\n!\nend\n")


def test_async_messages_are_cut_between_words_only() -> None:
    msg = "%PKI-4-POLL_FAILED: trustpoint myca: Unable to reach the CA at http://127.0.0.1:9/x"
    wrapped = async_message(msg + "\n", 40)
    assert all(len(line) <= 39 for line in wrapped.splitlines())
    assert wrapped.split() == msg.split() and wrapped.endswith("\n")


def test_a_url_an_older_build_accepted_is_shown_and_unused(tmp_path: Path) -> None:
    from engine.engine import Engine
    from events.device import ConfigurationCommitted

    eng = Engine.in_memory()
    tp = "crypto ca trustpoint old"
    eng.fold(eng.store.append([PendingEvent(ConfigurationCommitted(
        1000000001, "admin", "", "", (((tp,), None, tp),
                                      ((tp, "enrollment"), None, "enrollment url ftp://ca/"))),
        "device", 0, "admin", "cmd:1")]))
    assert "enrollment url ftp://ca/" in eng.execute("show running-config").output
    r = eng.execute("crypto ca authenticate old")
    assert r.output == ("% Trustpoint old has no enrollment method: configure 'enrollment url' "
                        "or 'enrollment terminal'.\n")
