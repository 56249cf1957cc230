"""Start-up: what a `show` loads, and that what it no longer loads up front still works.

`trustledger exec` of a `show` imports neither the SCEP client (engine.scep_client, httpx),
nor the SCEP/CMS core (asn1crypto), nor the built-in CA, nor structlog, nor importlib.metadata
(the `crc32c` package's __init__ loads it; events/crc.py does not). Issue 12's start-up row;
the timing is tools/bench/startup_bench.py's, never a test's. Each check runs a fresh
interpreter and reads its `sys.modules`: behaviour, not timing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import SUBCOMMANDS, _parser
from engine.grammar import GRAMMAR, Handler

REPO = Path(__file__).resolve().parents[2]
NOT_FOR_A_SHOW = ("httpx", "httpcore", "engine.scep_client", "engine.adapters.http_deadline",
                  "asn1crypto", "engine.scep.cms", "engine.ca", "structlog",
                  "importlib.metadata", "logging", "certifi", "importlib.resources",
                  "unicodedata",  # a password prompt's filter needs no Unicode database
                  "ctypes",  # the log's asynchronous fdatasync (events/fdsync.py), for writers
                  "cryptography.hazmat.primitives.serialization",
                  "cryptography.hazmat.primitives.ciphers.aead",
                  # handlers declared with GRAMMAR.declare(runs=...) and what they import
                  "engine.commands.run", "engine.revocation.fetch", "engine.revocation.verify",
                  "engine.revocation.transport", "engine.revocation.index", "ldap3",
                  "engine.revocation.ldap", "engine.audit.cosignature",
                  "engine.trustpool.bundle", "engine.trustpool.fetch",
                  "engine.scep.caps", "engine.scep.algorithms",
                  "engine.audit.witness_client", "engine.audit.witness", "http",
                  "engine.validation.validate", "engine.validation.decide",
                  "engine.validation.chain", "engine.validation.verdict",
                  # the views of the folded state: a handler imports the one it builds
                  "engine.views.state",
                  # sealing and key generation: opening needs only engine.keytidy
                  "engine.keystore",
                  # certificates are parsed where one is there, not at every open
                  "cryptography.x509", "engine.pki", "projections.trustpoints",
                  "projections.trustpool", "projections.certfmt",
                  # a job's work, loaded when a job runs (the due functions run at every open)
                  "engine.renewal.exchange", "engine.rollover.fetch",
                  # a snapshot at the head: no fold table, no event class (events.registry)
                  "engine.device_folds", "events.audit", "events.ca", "events.clock",
                  "events.device", "events.keys", "events.renewal", "events.revocation",
                  "events.rollover", "events.trustpoint", "events.trustpool",
                  "events.validation", "events.witness",
                  # argparse's width without shutil; text wrapped and secrets read when asked
                  "shutil", "textwrap", "getpass",
                  # checking a pasted public key: `crypto key import` only
                  "engine.keyimport")
PROBE = """
import sys
from engine.cli import main
status = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.startswith({names!r}))
print("LOADED", status, ",".join(loaded))
"""


def _trustledger(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRUSTLEDGER_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-c", PROBE.format(names=NOT_FOR_A_SHOW),
                           *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=env, cwd=REPO, check=False)


def _device(tmp_path: Path) -> Path:
    data = tmp_path / "device"
    setup = tmp_path / "setup.txt"
    setup.write_text("configure\nhostname r1\ncrypto ca trustpoint myca\n"
                     " enrollment url http://127.0.0.1:1\ncommit\nend\n"
                     "configure\nhostname r2\ncommit\nend\n")
    assert _trustledger("exec", "--data", data, "-f", setup).returncode == 0
    return data


def _show(tmp_path: Path, data: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "show.txt"
    script.write_text("show running-config\n")
    return _trustledger("exec", "--data", data, "-f", script)


def test_a_show_loads_no_http_client_cms_ca_or_structlog(tmp_path: Path) -> None:
    done = _show(tmp_path, _device(tmp_path))
    assert "hostname r2" in done.stdout and "crypto ca trustpoint myca" in done.stdout
    assert done.stdout.splitlines()[-1] == "LOADED 0 ", done.stdout


VIEWS_PROBE = """
import sys
from engine.cli import main
status = main(sys.argv[1:])
from engine.views import View
def below(cls):
    return [c for sub in cls.__subclasses__() for c in (sub, *below(sub))]
print("VIEWS", status, ",".join(sorted(c.__name__ for c in below(View))))
"""


def test_a_show_running_config_defines_only_the_configuration_views(tmp_path: Path) -> None:
    """Each view is a frozen dataclass, paid for where it is defined: `show running-config`
    defines those of engine/views/config.py, none of the ~13 views of the folded state."""
    data = _device(tmp_path)
    script = tmp_path / "show.txt"
    script.write_text("show running-config\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", VIEWS_PROBE, "exec", "--data", str(data),
                           "-f", str(script)], capture_output=True, text=True, timeout=60,
                          env=env, cwd=REPO, check=False)
    assert "hostname r2" in done.stdout, done.stderr
    assert done.stdout.splitlines()[-1] == (
        "VIEWS 0 CommitChangesView,CommitListView,RunningConfigView,TargetConfigView")


def test_a_log_line_still_comes_configured_on_stderr_when_structlog_loads_late(
        tmp_path: Path) -> None:
    """A repaired log: the engine's warning loads structlog then, set up as at start-up
    (redaction first, stderr, warning level), and the transcript on stdout stays clean."""
    data = _device(tmp_path)
    [segment] = (data / "log").glob("*.seg")
    with segment.open("ab") as f:
        f.write(b"\x00\x01\x02\x03\x04")  # a torn last write after the acknowledged ones
    done = _show(tmp_path, data)
    assert "%LOG-4-RECOVERED: cut" in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if "event log repaired at open" in ln]
    assert "[warning" in line and "repaired=" in line
    assert "repaired" not in done.stdout and "hostname r2" in done.stdout
    assert "structlog" in done.stdout.splitlines()[-1].removeprefix("LOADED 0 ").split(",")


def test_every_handler_declared_by_name_resolves_to_a_function() -> None:
    """`GRAMMAR.declare(..., runs="module:function")`: a misspelt name would fail only when an
    operator first ran the command; here it fails every run of the suite."""
    import engine.commands  # noqa: F401  (declares every command)

    named = {c.handler.target: c.handler for c in GRAMMAR.commands
             if isinstance(c.handler, Handler)}
    assert "engine.commands.run.crl:request" in named
    for target, handler in named.items():
        assert callable(handler.resolve()), target


def test_the_log_levels_are_the_standard_librarys() -> None:
    """engine.logsetup names the levels itself so that a `show` does not import `logging`."""
    import logging

    from engine.logsetup import LEVELS

    assert logging.getLevelNamesMapping() == LEVELS


def test_certids_labels_are_cryptographys_name_oids() -> None:
    """engine.certids keys IOS's labels by dotted OID so that it does not load
    cryptography.x509: they must be the OIDs cryptography names."""
    from cryptography.x509.oid import NameOID

    from engine.certids import _SHORT
    from engine.pki import UNSTRUCTURED_ADDRESS

    named = {NameOID.COMMON_NAME: "cn", NameOID.ORGANIZATIONAL_UNIT_NAME: "ou",
             NameOID.ORGANIZATION_NAME: "o", NameOID.LOCALITY_NAME: "l",
             NameOID.STATE_OR_PROVINCE_NAME: "st", NameOID.COUNTRY_NAME: "c",
             NameOID.EMAIL_ADDRESS: "ea", NameOID.SERIAL_NUMBER: "serialNumber",
             NameOID.UNSTRUCTURED_NAME: "unstructuredName",
             UNSTRUCTURED_ADDRESS: "unstructuredAddress", NameOID.DOMAIN_COMPONENT: "dc",
             NameOID.TITLE: "title"}
    assert {oid.dotted_string: label for oid, label in named.items()} == _SHORT


def test_keyformats_are_cryptographys_serialization_enums() -> None:
    """engine.keyformats takes them from where cryptography defines them, without loading
    the serialization package: they must be the very objects that package exports."""
    from cryptography.hazmat.primitives import serialization

    from engine import keyformats

    for name in keyformats.__all__:
        assert getattr(keyformats, name) is getattr(serialization, name), name


def test_the_builtin_bundle_is_certifis_without_importing_certifi() -> None:
    """The bundle found beside the package is the file `certifi.where()` names, and the
    version recorded with it is the package's."""
    import certifi

    from engine.trustpool.builtin import certifi_bundle

    shipped = certifi_bundle()
    assert shipped.data == Path(certifi.where()).read_bytes()
    assert shipped.describe() == f"certifi {certifi.__version__}"


def test_help_lists_ca_the_same_whether_or_not_the_ca_is_loaded() -> None:
    """Only a `ca` command line loads engine.ca.cli; any other lists `ca` with the same line."""
    assert _parser("exec").format_help() == _parser().format_help()
    assert "the built-in SCEP CA" in _parser("exec").format_help()


LOADED_GROUPS = ("ca", "audit", "fleet")  # loaded for their own command lines only


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("word", [*SUBCOMMANDS, "ca", "audit", "fleet", "not-a-command"])
def test_only_the_named_subcommand_gets_its_arguments_and_help_stays_the_same(
        word: str) -> None:
    """A command line builds the arguments of the subcommand it names only (the others are
    listed, never parsed); `trustledger -h` and that subcommand's own help read as with the
    whole parser. An unknown word gets the whole parser (argparse names the choices)."""
    whole, named = _parser(), _parser(word)
    assert named.format_help() == whole.format_help()
    subs, all_subs = _subparsers(named), _subparsers(whole)
    assert list(subs) == list(all_subs)
    for name, sub in subs.items():
        if name == word or (word == "not-a-command" and name not in LOADED_GROUPS):
            assert sub.format_help() == all_subs[name].format_help()
        elif name not in LOADED_GROUPS:
            assert sub._actions == []  # not even -h: never parsed


def test_the_installed_command_freezes_what_is_left_before_the_process_exits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`trustledger` is `engine.cli:console`: main's status, after `gc.freeze()` (the exit's
    collections then skip what the command left; tools/bench/startup_bench.py's row)."""
    import gc
    import tomllib

    from engine import cli

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["trustledger"] == "engine.cli:console"
    monkeypatch.setattr(cli, "main", lambda: 3)
    try:
        assert gc.get_freeze_count() == 0
        assert cli.console() == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(("columns", "expected"), [("123", 123), ("0", 80), ("-4", 80),
                                                   ("wide", 80), (None, 80)])
def test_help_is_as_wide_as_shutil_would_say(monkeypatch: pytest.MonkeyPatch,
                                             columns: str | None, expected: int) -> None:
    """`terminal_columns` is shutil.get_terminal_size's columns (stdout here is no terminal:
    $COLUMNS, else 80), and the house help formatter is that less 2, as argparse's."""
    import shutil

    from engine.cli import HelpFormatter, terminal_columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(sys, "__stdout__", None)  # no terminal to ask, as under a pipe
    assert terminal_columns() == expected == shutil.get_terminal_size().columns
    assert HelpFormatter("trustledger")._width == expected - 2
    assert HelpFormatter("trustledger", width=40)._width == 40


@pytest.mark.parametrize("was_on", [True, False])
def test_collections_are_paused_for_the_block_then_as_they_were(was_on: bool) -> None:
    import gc

    from engine.cli import collections_paused

    (gc.enable if was_on else gc.disable)()
    try:
        with pytest.raises(RuntimeError), collections_paused():
            assert not gc.isenabled()
            raise RuntimeError("a failed open")
        assert gc.isenabled() == was_on
    finally:
        gc.enable()


def _loaded(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.splitlines()[-1].split(" ", 2)[-1].split(",")


def test_without_a_snapshot_each_event_module_loads_at_its_first_decode(
        tmp_path: Path) -> None:
    """The whole log folded by a process that had loaded no event module: each one is
    imported when the first event of its types is decoded (events.registry.EVENT_MODULES)."""
    import shutil

    data = _device(tmp_path)
    shutil.rmtree(data / "snapshots")
    done = _show(tmp_path, data)
    assert "hostname r2" in done.stdout and "crypto ca trustpoint myca" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("LOADED 0 "), done.stderr
    assert {"events.device", "events.audit", "events.trustpool"} <= set(_loaded(done))


def test_a_log_holding_a_type_this_build_does_not_know_still_refuses_to_open(
        tmp_path: Path) -> None:
    """After the snapshot, an event of a type no module of this build declares: the fresh
    process refuses the log, naming the type and its seq, and prints no configuration."""
    from events.filelog import FileEventLog
    from events.store import PendingEvent
    from tests.events.eventlog_support import Noted  # registered in this process only

    data = _device(tmp_path)
    with FileEventLog.open(data / "log") as log:
        [rec] = log.append([PendingEvent(Noted("from elsewhere"), "device",
                                         1_700_000_000_000_000)])
    done = _show(tmp_path, data)
    assert (f"% The device log holds an event of type LogTestNoted at seq {rec.seq}, which "
            "this build does not fold") in done.stdout + done.stderr
    assert "hostname r2" not in done.stdout
