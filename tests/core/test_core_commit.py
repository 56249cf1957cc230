"""IOS XR two-stage commit: target config, commit, abort, the question at end, rollback."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from engine.errors import Reason
from engine.ports import FakeClock
from tests.core.engine_support import open_engine, run


def test_config_edits_stay_in_the_target_until_commit() -> None:
    e = Engine.in_memory(clock=FakeClock())
    e.execute("configure")
    e.execute("hostname r1")
    assert e.state.config.line(("hostname",)) is None
    assert e.prompt == "RP/0/RP0/CPU0:ios(config)#"  # the prompt follows the running config
    assert e.execute("show configuration").output == (
        "Building configuration...\nhostname r1\nend\n")
    res = e.execute("commit")
    assert [r.type for r in res.events] == ["ConfigurationCommitted"]
    assert res.events[0].payload["commit_id"] == 1000000001
    assert e.prompt == "RP/0/RP0/CPU0:r1(config)#"


def test_end_asks_and_yes_commits_no_discards_cancel_stays() -> None:
    e = Engine.in_memory()
    run(e, "configure", "hostname r1")
    res = e.execute("end", answers=["cancel"])
    assert res.output == "Uncommitted changes found, commit them? [yes]:cancel\n"
    assert e.session.mode.value == "config" and res.events == []
    res = e.execute("end", answers=["no"])
    assert res.events == [] and e.state.config.line(("hostname",)) is None
    assert e.session.mode.value == ""
    run(e, "configure", "hostname r2")
    res = e.execute("end", answers=[""])  # empty answer takes the default: yes
    assert len(res.events) == 1 and e.state.hostname == "r2"


def test_end_says_what_it_takes_after_an_answer_it_does_not() -> None:
    """It asked again without a word, and 'cancel' was nowhere to be read."""
    e = Engine.in_memory()
    run(e, "configure", "hostname r1")
    res = e.execute("end", answers=["maybe", "c"])
    assert res.output == ("Uncommitted changes found, commit them? [yes]:maybe\n"
                          "% Please answer 'yes', 'no' or 'cancel' (stay in configuration "
                          "mode).\n"
                          "Uncommitted changes found, commit them? [yes]:c\n")
    assert e.session.mode.value == "config" and res.events == []


def test_exit_leaves_one_mode_and_asks_only_from_config() -> None:
    e = Engine.in_memory()
    run(e, "configure", "hostname r1", "exit")
    # the question consumed no answer: there was none, so the command failed cleanly
    assert e.session.mode.value == "config"
    res = e.execute("exit", answers=["yes"])
    assert res.ok and e.session.mode.value == "" and e.state.hostname == "r1"


def test_no_form_removes_and_abort_drops_everything() -> None:
    e = Engine.in_memory()
    run(e, "configure", "hostname r1", "domain name example.com", "commit")
    run(e, "no hostname", "domain name example.org")
    assert e.execute("show configuration").output == (
        "Building configuration...\nno hostname r1\ndomain name example.org\nend\n")
    res = e.execute("abort")
    assert res.ok and e.session.mode.value == ""
    assert e.state.hostname == "r1" and e.state.domain == "example.com"


def test_commit_with_nothing_pending_appends_nothing() -> None:
    e = Engine.in_memory()
    e.execute("configure")
    res = e.execute("commit")
    assert res.events == [] and "No configuration changes" in res.output


def test_commit_label_and_comment_are_recorded() -> None:
    e = Engine.in_memory()
    run(e, "configure", "hostname r1")
    res = e.execute("commit label first comment initial identity")
    assert res.events[0].payload["label"] == "first"
    assert res.events[0].payload["comment"] == "initial identity"
    assert "first" in e.execute("do show configuration commit list").output
    run(e, "hostname r2")
    dup = e.execute("commit label first")
    assert dup.error is not None and dup.error.reason is Reason.INVALID_VALUE


def test_rollback_last_and_to(tmp_path: Path) -> None:
    e = open_engine(tmp_path)
    run(e, "configure", "hostname r1", "commit", "hostname r2", "domain name a.example",
        "commit", "hostname r3", "commit", "end")
    assert (e.state.hostname, e.state.domain) == ("r3", "a.example")
    e.execute("rollback configuration last 1")
    assert e.state.hostname == "r2"
    res = e.execute("rollback configuration to 1000000001")
    assert res.ok, res.output
    assert (e.state.hostname, e.state.domain) == ("r1", "")
    assert res.events[0].payload["rollback_to"] == 1000000001
    listing = e.execute("show configuration commit list").output.splitlines()
    assert [row.split()[1] for row in listing[2:]] == [
        "1000000005", "1000000004", "1000000003", "1000000002", "1000000001"]
    changes = e.execute("show configuration commit changes 1000000005").output
    assert "hostname r1" in changes and "no domain name a.example" in changes
    bad = e.execute("rollback configuration last 9")
    assert bad.error is not None and bad.events == []
    missing = e.execute("show configuration commit changes 1000000099")
    assert missing.output == "% Commit ID 1000000099 not found.\n"


def test_submode_lines_fall_back_to_the_parent_mode() -> None:
    e = Engine.in_memory()
    e.execute("configure")
    e.session.modes.append((e.session.mode.__class__("config-trustp"), ("x",)))
    res = e.execute("hostname r9")  # not a trustpoint command: IOS leaves the submode
    assert res.ok and e.session.mode.value == "config"


def test_do_runs_exec_commands_from_config_mode() -> None:
    e = Engine.in_memory()
    run(e, "configure", "hostname r1", "commit")
    out = e.execute("do show running-config hostname").output
    assert out == "hostname r1\n"
    assert e.session.mode.value == "config"


def test_no_form_must_match_the_configured_line() -> None:
    e = Engine.in_memory()
    run(e, "configure", "crypto ca trustpoint t", "enrollment url http://127.0.0.1:1")
    res = e.execute("no enrollment terminal")
    assert res.error is not None and "nothing removed" in res.output
    assert e.session.target is not None
    assert e.session.target.line(("crypto ca trustpoint t", "enrollment")) is not None
    assert e.execute("no enrollment url http://127.0.0.1:1").ok
    assert e.session.target.line(("crypto ca trustpoint t", "enrollment")) is None


def test_show_configuration_nests_sections_once_and_removes_them_whole() -> None:
    e = Engine.in_memory()
    run(e, "configure", "hostname r1", "crypto ca trustpoint myca", "enrollment url http://a",
        "enrollment retry count 5", "exit", "crypto ca trustpoint b", "description hello")
    # In running-config order (trustpoints by name), as IOS XR shows a target configuration.
    assert e.execute("show configuration").output == (
        "Building configuration...\nhostname r1\ncrypto ca trustpoint b\n"
        " description hello\n!\ncrypto ca trustpoint myca\n"
        " enrollment url http://a\n enrollment retry count 5\n!\nend\n")
    run(e, "commit", "no crypto ca trustpoint myca", "crypto ca trustpoint b", "no description")
    assert e.execute("show configuration").output == (
        "Building configuration...\ncrypto ca trustpoint b\n no description hello\n!\n"
        "no crypto ca trustpoint myca\nend\n")
