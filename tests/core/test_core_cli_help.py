"""Every option and positional argument of every `trustledger` command has a help text, and
`--help` shows defaults."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import _parser

REPO = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser,
              path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                          argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions}
            for name, child in action.choices.items():
                assert name in helped, f"`{' '.join((*path, name))}` has no help line"
                yield from _commands(child, (*path, name))


def test_every_argument_of_every_command_has_help() -> None:
    commands = list(_commands(_parser()))
    names = {" ".join(p) for p, _ in commands}
    # The walk reaches the nested groups (guards against a walk that silently stops early).
    assert {"shell", "exec", "log verify", "log show", "replay", "demo", "ca init",
            "ca serve", "ca requests", "ca sign"} <= names
    missing = [f"{' '.join(path) or 'trustledger'}: {a.option_strings or a.dest}"
               for path, parser in commands for a in parser._actions
               if not isinstance(a, argparse._SubParsersAction)
               and (a.help is None or not a.help.strip())]
    assert missing == []


@pytest.mark.parametrize(("argv", "expected"), [
    (["ca", "serve"], ["--host HOST           address to listen on (default: 127.0.0.1)",
                       "DIR                   the CA's directory (made by `ca init`)"]),
    (["ca", "challenge"], ["--valid-minutes N  minutes until the password expires (default: "
                           "60)"]),
    (["log", "show"], ["--from SEQ   first event to show, by sequence number (default: 1)"]),
])
def test_help_shows_defaults(argv: list[str], expected: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", *argv, "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True,
                          env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    for line in expected:
        assert line in done.stdout


def test_ca_serve_strict_help_names_everything_strict_refuses() -> None:
    """`--strict` also refuses a first request signed by another key than the one it asks a
    certificate for (engine/ca/decide.py `Policy.same_key_only`): its help must say so."""
    [serve] = [p for path, p in _commands(_parser()) if path == ("ca", "serve")]
    [strict] = [a for a in serve._actions if "--strict" in a.option_strings]
    assert strict.help is not None
    assert "badAlg" in strict.help and "another key" in strict.help


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`trustledger --version` said 'the following arguments are required: COMMAND'."""
    from importlib.metadata import version

    from engine.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr() == (f"trustledger {version('trustledger')}\n", "")
