"""The embedding API as README's "Embedding" section shows it to another frontend: its
example runs as printed, answers and a Prompter answer questions, and a closed engine refuses
to run anything (it once appended to its log without holding the writer lock)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import Engine
from engine.errors import Reason
from engine.ports import FakeClock
from events.filelog import LogLocked

REPO = Path(__file__).resolve().parents[2]


def readme_examples() -> list[str]:
    """The python blocks of README's "Embedding" section, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Embedding\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_examples_run_as_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    examples = readme_examples()
    assert len(examples) >= 2
    monkeypatch.chdir(tmp_path)
    for example in examples:
        code = example.replace("/var/lib/trustledger", str(tmp_path / "device"))
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.splitlines()[:5] == ["['ConfigurationCommitted']", "True [OK]", "True []",
                                    "False NOT_FOUND", "Key label:edge-key"]


def test_a_closed_engine_runs_nothing(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "d", clock=FakeClock(1_800_000_000_000_000))
    engine.close()
    for call in (lambda: engine.execute("show running-config"), engine.run_due,
                 engine.catch_up, engine.perform_due, engine.cosign_latest):
        with pytest.raises(ValueError, match="closed"):
            call()
    engine.close()  # a second close does nothing
    with Engine.open(tmp_path / "d") as again:
        assert again.state.seq == 0


def test_a_closed_engine_appended_without_the_lock(tmp_path: Path) -> None:
    """The old engine appended after close(): another writer could hold the log by then."""
    first = Engine.open(tmp_path / "d", clock=FakeClock(1_800_000_000_000_000))
    first.close()
    with Engine.open(tmp_path / "d") as second:
        with pytest.raises(LogLocked):
            Engine.open(tmp_path / "d")
        for line in ("configure", "hostname stale"):
            with pytest.raises(ValueError):
                first.execute(line)
        assert second.state.hostname != "stale"
    with Engine.open(tmp_path / "d") as third:
        assert third.state.seq == 0


def test_close_gives_the_lock_back_when_writing_the_audit_trail_out_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine.open(tmp_path / "d", clock=FakeClock(1_800_000_000_000_000), audit=True)
    assert engine.audit is not None

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine.audit, "write_out", full_disk)
    with pytest.raises(OSError):
        engine.close()
    with Engine.open(tmp_path / "d") as again:  # not LogLocked
        assert again.state.seq == engine.state.seq


def test_answers_run_out_and_a_prompter_takes_over(tmp_path: Path) -> None:
    engine = Engine.in_memory(clock=FakeClock(1_800_000_000_000_000))
    result = engine.execute("configure")
    result = engine.execute("hostname edge1")
    result = engine.execute("end", answers=[])
    assert result.error is not None and result.error.reason is Reason.NO_INPUT
    assert result.output.endswith("% No answer to 'Uncommitted changes found, commit them? "
                                  "[yes]:': input ended.\n")

    class Operator:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def ask(self, prompt: str, secret: bool) -> str | None:
            self.asked.append(prompt)
            return "yes"

    engine.ports.prompter = operator = Operator()
    result = engine.execute("end")
    assert result.ok and [r.type for r in result.events] == ["ConfigurationCommitted"]
    assert operator.asked == ["Uncommitted changes found, commit them? [yes]:"]
    assert result.prompt == "RP/0/RP0/CPU0:edge1#"


def test_a_cas_directory_is_named_as_one(tmp_path: Path) -> None:
    """`shell --data CADIR` said the CA's first event was 'written by a newer trustledger?'."""
    from engine.ca.service import BuiltinCA
    from engine.folds import UnfoldedEvent

    BuiltinCA.init(tmp_path / "ca", subject="CN=Test CA").close()
    with pytest.raises(UnfoldedEvent) as refused:
        Engine.open(tmp_path / "ca")
    assert str(refused.value) == (f"% {tmp_path / 'ca'} is not a device's data directory: its "
                                  "log is a CA's (seq 1 is CAInitialized); `trustledger ca` "
                                  "commands use it.")
    with pytest.raises(UnfoldedEvent):  # the same again: the refusal left no lock behind
        Engine.open(tmp_path / "ca")
