"""`trustledger` — the command line.

    trustledger shell [--data DIR]            interactive IOS XR-style shell (a script on stdin
                                              when stdin is not a terminal)
    trustledger exec [--data DIR] -f FILE     run a batch script [--continue]
    trustledger log verify DIR                walk the hash chain (non-zero exit on damage),
                                              check every snapshot against it
    trustledger log scrub DIR                 check every segment, beside a writer (opening reads
                                              only the tail; non-zero exit on damage)
    trustledger log show DIR [--from SEQ] [--json]
    trustledger replay DIR --until SEQ|ISO-TIME [--show CMD]...  (exit 1 if a CMD was refused)
    trustledger validate [--data DIR] CHAIN.pem [--purpose P] [--at TIME] [--name NAME] [--json]
                                              decide whether to trust a peer's chain (exit 0
                                              valid, 1 invalid, 2 bad input)
    trustledger demo                          the reference example session, end to end
    trustledger diagrams -o DIR               draw each state machine (DOT + SVG, graphviz)
    trustledger ca ...                        the built-in CA (see `trustledger ca -h`)
    trustledger audit ...                     audit key, checkpoints, proofs, export, verify
                                              (see engine/auditcli.py)
    trustledger log export [DIR] [-o FILE|-]  the log as a self-describing stream
    trustledger log import [--data DIR] [FILE|-]  append such a stream (engine/logexport.py)

shell, exec, log verify|show|export|import and replay take `--store postgresql://... --device
ID` (or $TRUSTLEDGER_STORE, or the data directory's STORE file naming them): the device's log
is then its stream in that PostgreSQL store; the data directory keeps the keystore,
snapshots and the audit trail's files (engine/storebinding.py).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import io
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from engine.devicelog import DeviceLog
from engine.errors import OperatorError, Reason
from engine.folds import UnfoldedEvent
from engine.logsetup import configure as configure_logging
from events.filelog import FileEventLog, LogError, VerifyReport, verify

if TYPE_CHECKING:
    from engine.sharedlog import SharedLog
    from engine.storebinding import Binding


def default_data_dir() -> Path:
    env = os.environ.get("TRUSTLEDGER_DATA")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "trustledger"


def terminal_columns() -> int:
    """shutil.get_terminal_size().columns without importing shutil: $COLUMNS if it is a
    positive number, else the width of the terminal on stdout, else 80."""
    with contextlib.suppress(KeyError, ValueError):
        columns = int(os.environ["COLUMNS"])
        if columns > 0:
            return columns
    with contextlib.suppress(AttributeError, ValueError, OSError):
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        if columns > 0:
            return columns
    return 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written, and every option's default after its help text (unless the
    text already says it, or there is none to say: no value, a flag that is off).

    Its width is `terminal_columns()` less 2, as argparse's own, which asks shutil: argparse
    builds a formatter for every argument added, and shutil (with zlib, bz2 and lzma) would
    cost each start-up ~1.5 ms for one number (issue 12)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        default = action.default
        if (text is None or "default" in text or default in (None, False)
                or default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """The house parser: `HelpFormatter` unless told otherwise; its subparsers are Parsers
    too (argparse makes subparsers of the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


class _Version(argparse.Action):
    """`trustledger --version`: the installed distribution's version (importlib.metadata is
    loaded only when asked: a `show` never pays for it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"trustledger {version('trustledger')}")
        except PackageNotFoundError:
            print("trustledger (not installed: run from a checkout)")
        parser.exit(0)


DATA_HELP = "data directory (default: $TRUSTLEDGER_DATA, else ~/.local/state/trustledger)"
LOG_DIR_HELP = ("a data directory (its log/ subdirectory) or a log directory (default: "
                "$TRUSTLEDGER_DATA, else ~/.local/state/trustledger)")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; `command` is the subcommand word the caller will parse, if
    known. Only that subcommand gets its arguments (and the `ca` group is loaded only for
    `ca`: see `_register_ca`): the others are listed in `trustledger -h` with the same help
    line, and never parsed. Building every subparser's arguments costs a few ms of each
    start-up (issue 12)."""
    p = Parser(
        prog="trustledger",
        description="A router-side PKI engine: Cisco IOS XR CA interoperability, "
                    "event-sourced.")
    p.add_argument("--version", action=_Version, help="print the installed version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, add_arguments) in SUBCOMMANDS.items():
        if command in (name, None) or command not in (*SUBCOMMANDS, "ca", "audit", "fleet"):
            add_arguments(sub.add_parser(name, help=text))
        else:
            sub.add_parser(name, help=text, add_help=False)
    _register_ca(sub, command)
    _register_audit(sub, command)
    _register_fleet(sub, command)
    return p


STORE_HELP = ("the device's log is its stream in this PostgreSQL store (default: "
              "$TRUSTLEDGER_STORE, else what DIR/STORE records); no password is recorded: "
              "give it in PGPASSWORD or ~/.pgpass (one in the URL shows in the process list)")
DEVICE_HELP = "the device ID (its stream) in --store (default: what DIR/STORE records)"


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, metavar="URL", help=STORE_HELP)
    p.add_argument("--device", default=None, metavar="ID", help=DEVICE_HELP)


def _adopt_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adopt", action="store_true",
                   help="bind a new data directory to a device whose log already has events "
                        "(its keys and audit key stay in its first data directory)")


def _shell_arguments(sh: argparse.ArgumentParser) -> None:
    sh.add_argument("--data", type=Path, default=None, metavar="DIR", help=DATA_HELP)
    _store_arguments(sh)
    _adopt_argument(sh)
    sh.add_argument("--continue", dest="keep_going", action="store_true",
                    help="batch input: go on after an error")


def _exec_arguments(ex: argparse.ArgumentParser) -> None:
    ex.add_argument("--data", type=Path, default=None, metavar="DIR", help=DATA_HELP)
    _store_arguments(ex)
    _adopt_argument(ex)
    ex.add_argument("-f", "--file", required=True, help="script file ('-' for stdin)")
    ex.add_argument("--continue", dest="keep_going", action="store_true",
                    help="go on after an error (exit status is still non-zero)")


def _log_arguments(lg: argparse.ArgumentParser) -> None:
    lsub = lg.add_subparsers(dest="log_command", required=True, metavar="ACTION")
    lv = lsub.add_parser("verify", help="walk the chain; print events, head seq and hash")
    lv.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                    help=LOG_DIR_HELP)
    _store_arguments(lv)
    lc = lsub.add_parser("scrub", help="check every segment beside a writer (opening reads "
                                       "only what follows the head marker and the snapshot)")
    lc.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                    help=LOG_DIR_HELP)
    ls = lsub.add_parser("show", help="dump events, readable or JSON lines")
    ls.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                    help=LOG_DIR_HELP)
    ls.add_argument("--from", dest="from_seq", type=int, default=1, metavar="SEQ",
                    help="first event to show, by sequence number")
    ls.add_argument("--json", action="store_true",
                    help="one JSON object per line, every field (hashes in hex)")
    _store_arguments(ls)
    le = lsub.add_parser("export", help="the log as a self-describing stream (chain, hashes "
                                        "and seqs kept) for `log import`")
    le.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                    help=LOG_DIR_HELP)
    le.add_argument("-o", "--out", default="-", metavar="FILE",
                    help="write the stream to FILE ('-': stdout)")
    _store_arguments(le)
    li = lsub.add_parser("import", help="append an exported stream to a log that it "
                                        "continues (an empty one, or one at its first seq - 1)")
    li.add_argument("file", nargs="?", default="-", metavar="FILE",
                    help="the stream ('-': stdin)")
    li.add_argument("--data", type=Path, default=None, metavar="DIR",
                    help="import into this data directory's own file log (without --store), "
                         "or bind it to --store's device")
    _store_arguments(li)


def _replay_arguments(rp: argparse.ArgumentParser) -> None:
    rp.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                    help=LOG_DIR_HELP)
    _store_arguments(rp)
    rp.add_argument("--until", required=True, metavar="SEQ|TIME",
                    help="a seq number, or an ISO-8601 time (UTC)")
    rp.add_argument("--show", action="append", default=None, metavar="CMD",
                    help="a show command to run against that state (repeatable; default: "
                         "show running-config, show configuration commit list)")


def _validate_arguments(va: argparse.ArgumentParser) -> None:
    va.add_argument("--data", type=Path, default=None, metavar="DIR", help=DATA_HELP)
    _store_arguments(va)
    _adopt_argument(va)
    va.add_argument("chain", metavar="CHAIN.pem",
                    help="the peer's chain, its own certificate first (PEM or DER; '-': stdin)")
    va.add_argument("--purpose", default="any", choices=("ike", "tls-server", "tls-client",
                                                         "any"), help="what the peer's "
                    "certificate is to be used for")
    va.add_argument("--at", default=None, metavar="TIME",
                    help="validate at this ISO-8601 time (UTC unless it says; default: now "
                         "on the engine clock)")
    va.add_argument("--name", default=None, metavar="NAME",
                    help="the peer's name: DNS name, IP address, user@fqdn or a DN")
    va.add_argument("--json", action="store_true", help="the verdict as one JSON object")


def _demo_arguments(dm: argparse.ArgumentParser) -> None:
    dm.add_argument("--dir", type=Path, default=None,
                    help="keep the CA and the device data in DIR (new or empty; default: a "
                         "temporary directory, removed at the end)")


def _diagrams_arguments(dg: argparse.ArgumentParser) -> None:
    dg.add_argument("-o", "--out", type=Path, required=True, metavar="DIR",
                    help="directory for NAME.dot and NAME.svg (made if missing)")


SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "shell": ("interactive IOS XR-style shell", _shell_arguments),
    "exec": ("run a batch script of CLI lines", _exec_arguments),
    "log": ("audit the event log", _log_arguments),
    "replay": ("the state as it was at a seq or a time", _replay_arguments),
    "validate": ("decide whether to trust a peer's certificate chain (recorded; exit 0 valid, "
                 "1 invalid, 2 bad input)", _validate_arguments),
    "demo": ("the reference example session against the built-in CA", _demo_arguments),
    "diagrams": ("draw each state machine as DOT and SVG (graphviz)", _diagrams_arguments),
}
"""The subcommands (but `ca`), in `trustledger -h` order: help line, and what adds their
arguments."""


CA_HELP = "the built-in SCEP CA"  # what engine.ca.cli.register says of `ca`


def _register_ca(sub: Any, command: str | None) -> None:
    """The `ca` group lives with the built-in CA (engine/ca/cli.py), whose import loads the
    whole CA (its HTTP stack, CMS, workers: ~80 ms). Only a command line whose command is `ca`
    (or an unknown one: None) pays for it; any other lists `ca` in `trustledger -h` with the
    same help line and is never parsed as `ca`."""
    if command not in ("ca", None):
        sub.add_parser("ca", help=CA_HELP, add_help=False)
        return
    try:
        from engine.ca.cli import register  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    register(sub)


def _register_audit(sub: Any, command: str | None) -> None:
    """`audit` lives in engine/auditcli.py, loaded only for its own command lines."""
    if command not in ("audit", None):
        sub.add_parser("audit", help="signed checkpoints, proofs, export and verification of "
                                     "a log; witnesses; the report", add_help=False)
        return
    from engine.auditcli import register

    register(sub)


def _register_fleet(sub: Any, command: str | None) -> None:
    """`fleet` lives in engine/fleetcli.py, loaded only for its own command lines."""
    if command not in ("fleet", None):
        sub.add_parser("fleet", help="views across a fleet's devices in a PostgreSQL store",
                       add_help=False)
        return
    from engine.fleetcli import register

    register(sub)


def command_word(argv: Sequence[str]) -> str | None:
    """The subcommand an argument list names: its first word that is not an option (the top
    level has only -h). None if there is none yet."""
    return next((a for a in argv if not a.startswith("-")), None)


class CommandLineError(OperatorError):
    """A mistake on the command line (a missing or wrong directory, a busy port): one `%` line
    on stderr and exit status 2, never a traceback."""


def _log_dir(d: Path) -> Path:
    """The log of a device or CA directory (DIR/log), or DIR itself if it is a log directory.
    A path that holds no log is an error: an audit of nothing must not say `chain : OK`."""
    if not d.exists():
        raise CommandLineError(Reason.NOT_FOUND, f"{d}: no such directory.")
    if not d.is_dir():
        raise CommandLineError(Reason.INVALID_VALUE, f"{d} is not a directory.")
    if (d / "log").is_dir():
        return d / "log"
    if not any(d.glob("*.seg")) and not (d / "LOCK").exists():  # what a log directory holds
        raise CommandLineError(Reason.NOT_FOUND, f"{d} holds no event log (neither "
                               f"{d / 'log'} nor log segments).")
    return d


class LogSource(NamedTuple):
    """Where a reading command (`log verify|show|export`, `replay`) finds a log: a file log
    directory (`log_dir`) or a device's stream in a shared store (`binding`); `data`: the
    data directory beside it (snapshots, CRLs, the audit trail), None if there is none. (A
    NamedTuple: every start-up defines it, and a frozen dataclass costs ~0.3 ms to define;
    issue 12.)"""

    data: Path | None
    log_dir: Path | None = None
    binding: Binding | None = None
    given: Path | None = None  # the directory as the command line named it

    def open(self) -> contextlib.AbstractContextManager[DeviceLog]:
        """The log, read-only."""
        if self.binding is not None:
            return self.shared(self.binding)
        assert self.log_dir is not None
        return FileEventLog.open(self.log_dir, readonly=True)

    def shared(self, binding: Binding) -> SharedLog:
        """The store's log, read-only, whatever its kind (a device's or a CA's)."""
        from engine.sharedlog import SharedLog
        from engine.storebinding import AUDIT_DIR

        return SharedLog.open(binding.url, binding.device, (self.data or Path(".")) / AUDIT_DIR,
                              kind=None, readonly=True)

    @property
    def name(self) -> str:
        if self.binding is not None:
            return f"device {self.binding.device} in {self.binding.shown}"
        return str(self.given if self.given is not None else self.log_dir)


def log_source(d: Path | None, store: str | None, device: str | None) -> LogSource:
    """The log a reading command means: DIR's own (a data or log directory), or the stream
    `--store`/`--device` (or DIR/STORE) names (engine/storebinding.py)."""
    from engine.storebinding import STORE_FILE

    explicit = store is not None or device is not None
    root = d if d is not None or explicit else default_data_dir()
    if root is not None and not explicit and not (root / STORE_FILE).is_file():
        log = _log_dir(root)
        return LogSource(root if log != root else root.parent, log, None, root)
    if root is not None and not root.is_dir():
        _log_dir(root)  # says what is wrong with it
    binding = _binding(root, store, device)
    if binding is None:
        assert root is not None
        log = _log_dir(root)
        return LogSource(root if log != root else root.parent, log, None, root)
    return LogSource(root, None, binding)


def _binding(root: Path | None, store: str | None, device: str | None) -> Binding | None:
    from engine.storebinding import BindingError, resolve

    try:
        return resolve(root, store, device)
    except BindingError as err:
        raise CommandLineError(err.reason, err.text) from None


def device_log(root: Path, store: str | None, device: str | None) -> DeviceLog | None:
    """The log `shell` and `exec` write: None for the data directory's own file log, else
    the device's stream in the store, the binding recorded in DIR/STORE at first use."""
    binding = _binding(root, store, device)
    if binding is None:
        return None
    from engine.sharedlog import SharedLog
    from engine.storebinding import AUDIT_DIR

    _refuse_own_log(root)
    log = SharedLog.open(binding.url, binding.device, root / AUDIT_DIR)
    try:
        _record(root, binding)  # once the store answered: a mistyped URL records nothing
    except BaseException:
        log.close()
        raise
    return log


def device_dir(given: Path | None, store: str | None, device: str | None,
               adopt: bool = False) -> tuple[Path, DeviceLog | None]:
    """`data_dir` and `device_log` for `shell`, `exec` and `validate`, in an order that makes
    no directory for a store URL or device ID that cannot be used, or a store that does not
    answer: a new data directory is created once the store has answered. A data directory
    not yet bound (no DIR/STORE) is refused for a device whose log already has events unless
    `adopt`: that device's keys and audit key are in the directory it was first used with."""
    from engine.storebinding import STORE_FILE

    root = given or default_data_dir()
    if (store is not None or device is not None) and not (root / STORE_FILE).is_file():
        binding = _binding(root if root.is_dir() else None, store, device)
        if binding is not None:
            from events.pgstore import PostgresEventStore

            if root.is_dir():
                _refuse_own_log(root)  # the more basic refusal first
            with PostgresEventStore.open(binding.url, binding.device) as probe:
                held = probe.head[0]
            if held and not adopt:
                raise CommandLineError(Reason.NOT_ALLOWED, (
                    f"Device {binding.device} in {binding.shown} already has {held} events: "
                    f"its keys and its audit key are in the data directory it was first used "
                    f"with, not in {root}. Use that directory, or --adopt to bind {root} to "
                    "it anyway (without those keys)."))
    root = data_dir(root)
    return root, device_log(root, store, device)


def _refuse_own_log(root: Path) -> None:
    from engine.storebinding import BindingError, refuse_own_log

    try:
        refuse_own_log(root)
    except BindingError as err:
        raise CommandLineError(err.reason, err.text) from None


def _record(root: Path, binding: Binding) -> None:
    from engine.storebinding import BindingError, record

    try:
        record(root, binding)
    except BindingError as err:
        raise CommandLineError(err.reason, err.text) from None


def data_dir(given: Path | None) -> Path:
    """The device's data directory for `shell` and `exec`, created (0700) if it does not exist
    yet, which is said on stderr; a file or a path that cannot be created or written is an
    error."""
    root = given or default_data_dir()
    if root.exists() and not root.is_dir():
        raise CommandLineError(Reason.INVALID_VALUE, f"Data directory {root} is not a directory.")
    if (root / "witness.key").exists():  # engine/audit/witness_service.py KEY_FILE
        raise CommandLineError(Reason.INVALID_VALUE, f"{root} is a witness's directory, not a "
                               "device's: `trustledger audit witness` commands use it.")
    if not root.exists():
        try:
            root.mkdir(mode=0o700, parents=True)
        except OSError as e:
            raise CommandLineError(Reason.NOT_ALLOWED, f"Cannot create data directory {root}: "
                                                       f"{e.strerror or e}.") from None
        print(f"% New data directory {root} created.", file=sys.stderr)
    if not os.access(root, os.W_OK | os.X_OK):
        raise CommandLineError(Reason.NOT_ALLOWED, f"Data directory {root} is not writable.")
    return root


def harden_stdio() -> None:
    """Whatever the locale says (strict UTF-8, ASCII): input bytes that are not UTF-8 are read
    (and then refused as input), and output the terminal cannot encode is escaped, never a
    UnicodeError."""
    for out in (sys.stdout, sys.stderr):
        if isinstance(out, io.TextIOWrapper):
            out.reconfigure(errors="backslashreplace")
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")


def cmd_log_verify(src: LogSource) -> int:
    from events.filelog import InterruptedAppend

    report = _verified(src)
    print(f"events    : {report.events}")
    print(f"head seq  : {report.head_seq}")
    print(f"head hash : {report.head_hash.hex()}")
    if report.damage is not None:  # an interrupted append too: the files are not clean
        label = "TORN TAIL" if isinstance(report.damage, InterruptedAppend) else "DAMAGED"
        print(f"{label:<10}: {report.damage}")
        return 1
    print("chain     : OK")
    with src.open() as log:
        _check_folded(log)
        # every check runs and says what it found: one kind of damage hides no other
        whole = [_verify_crl_blobs(src.data, log), _verify_checkpoints(log)]
        if src.data is not None:
            _verify_snapshots(src.data, log)
    return 0 if all(whole) else 1


def _verified(src: LogSource) -> VerifyReport:
    """The whole chain walked (a file log's pending repair said first)."""
    if src.binding is not None:
        with src.shared(src.binding) as log:
            return log.verify()
    assert src.log_dir is not None
    with contextlib.suppress(LogError), FileEventLog.open(src.log_dir, readonly=True) as log:
        report_pending_repair(log)
    return verify(src.log_dir)


def _verify_crl_blobs(data: Path | None, log: DeviceLog) -> bool:
    """Every CRL an event names is stored beside the log (DATA/crls, or a shared store's)
    and hashes to its name (engine/revocation/store.py): a missing or altered one is
    damage, named by its seq. Nothing to check where there is no such place."""
    from engine.messages import plural
    from engine.revocation.store import BlobMissing

    blobs = _crl_blobs_of(data, log)
    if blobs is None:
        return True
    checked: set[str] = set()
    for row in log.read_rows():
        if row[2] != "CrlFetched" or row[7]["sha256"] in checked:
            continue
        try:
            blobs.get(row[7]["sha256"])
        except BlobMissing as e:
            print(f"DAMAGED   : seq {row[0]} names the CRL {e.sha256}, which is {e.why}")
            return False
        checked.add(row[7]["sha256"])
    if checked:
        print(f"crls      : {plural(len(checked), 'stored CRL')} OK")
    return True


def _verify_checkpoints(log: DeviceLog) -> bool:
    """The audit trail's record of signed checkpoints holds exactly the bytes its AUDIT
    recorded (engine/audit/trail.py `verify_record`: the open reads only its newest); said
    only when it does not."""
    from engine.audit.trail import AuditMismatch, verify_record

    try:
        problem = verify_record(log.root)
    except AuditMismatch as e:
        problem = e.text
    if problem is not None:
        print(f"DAMAGED   : {problem}")
    return problem is None


def _check_folded(log: DeviceLog) -> None:
    """UnfoldedEvent for the first event whose aggregate (its stream) does not fold its type:
    opening that log would refuse it, so an audit must not call it good either."""
    from engine.audit.witness_service import WITNESS_FOLDS
    from engine.ca.state import CA_FOLDS
    from engine.folds import FoldTable
    from engine.state import device_folds

    tables: dict[str, FoldTable[Any]] = {"ca": CA_FOLDS, "witness": WITNESS_FOLDS}
    device = device_folds()
    for row in log.read_rows():
        tables.get(row[1], device).require(row[2], row[0])


def cmd_log_scrub(d: Path) -> int:
    """Every segment, as the scheduled scrub checks them (engine/scrub.py); a clean
    scrub is recorded in the log directory, so the shell's scheduler waits a day again."""
    import time

    from events.filelog import record_scrub, scrub

    root = _log_dir(d)
    report = scrub(root)
    print(f"segments  : {report.sealed} sealed and the newest")
    print(f"events    : {report.events}")
    if report.damage is not None:
        print(f"DAMAGED   : {report.damage}")
        return 1
    record_scrub(root, time.time_ns() // 1000, report)
    print("chain     : OK")
    return 0


def _verify_snapshots(data: Path, log: DeviceLog) -> None:
    """One line per snapshot: exactly the log folded to its seq, or why not. A bad snapshot
    is a cache opening will ignore, not damage to the log: the exit status stays 0."""
    from engine import snapshot

    directory = data / "snapshots"
    if not directory.is_dir():
        return
    checks = snapshot.verify(directory, log)
    for check in checks:
        if check.problem is None:
            print(f"snapshot  : {check.path.name} seq {check.seq} OK")
        else:
            print(f"snapshot  : {check.path.name} IGNORED: {check.problem} "
                  "(opening rebuilds the state from the log)")


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def cmd_log_show(src: LogSource, from_seq: int, as_json: bool) -> int:
    import json

    with src.open() as log:
        report_pending_repair(log)
        for r in log.read(from_seq):
            if as_json:
                print(json.dumps(_jsonable({
                    "seq": r.seq, "stream": r.stream, "type": r.type, "v": r.v,
                    "at": datetime.fromtimestamp(r.at / 1e6, UTC).isoformat(),
                    "actor": r.actor, "correlation": r.correlation, "payload": r.payload,
                    "prev": r.prev, "hash": r.hash})))
            else:
                at = datetime.fromtimestamp(r.at / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")
                body = json.dumps(_jsonable(r.payload), separators=(",", ":"))
                if len(body) > 120:
                    body = body[:117] + "..."
                print(f"{r.seq:>8} {at} {r.stream:<8} {r.type:<28} {r.actor:<10} {body}")
    return 0


def cmd_log_export(src: LogSource, out: str) -> int:
    """`log export`: the whole log as a stream (engine/logexport.py) on stdout or in FILE
    (written to FILE.tmp, then renamed: a failed export leaves no partial FILE), with the
    CRLs its events name (kept beside it: DATA/crls, or the store's)."""
    from engine.logexport import write_export
    from engine.messages import plural

    with src.open() as log:
        report_pending_repair(log)
        blobs = _crl_blobs_of(src.data, log)
        if out == "-":
            written = write_export(log, sys.stdout.buffer, src.name, blobs)
            sys.stdout.buffer.flush()
        else:
            path = Path(out)
            tmp = path.with_name(path.name + ".tmp")
            try:
                with open(tmp, "wb") as f:
                    written = write_export(log, f, src.name, blobs)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    for seq, name in written.missing:
        print(f"% seq {seq} names the CRL {name}, which is not stored beside the log: the "
              "stream does not carry it.", file=sys.stderr)
    count, crls = written.events, written.blobs
    with_crls = f" and {plural(crls, 'CRL')}" if crls else ""
    print(f"% Exported {plural(count, 'event')}{with_crls} of {src.name}.",
          file=sys.stderr)
    return 0


def _crl_blobs_of(data: Path | None, log: DeviceLog) -> Any:
    """The CRLs of `log` (engine/revocation/store.py `crl_blobs_of`) with the data directory's
    `crls/`, if there is one; None if kept nowhere."""
    from engine.revocation.store import CRL_DIR, FileCrlBlobs, crl_blobs_of

    return crl_blobs_of(log, FileCrlBlobs(data / CRL_DIR) if data is not None else None)


def cmd_log_import(args: argparse.Namespace) -> int:
    """`log import`: check the whole stream first, then append what the target log lacks
    (engine/logexport.py), its CRLs stored first; the target is the store's device
    (`--store`/`--device`, or what `--data DIR`'s STORE names) or `--data DIR`'s own file
    log."""
    from engine.logexport import ExportRefused, import_into, read_export
    from engine.messages import plural

    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as e:
        raise CommandLineError(Reason.NOT_FOUND, f"Cannot read {args.file}: "
                               f"{e.strerror or e}.") from None
    try:
        export = read_export(data)
        with _import_target(args, export.kind) as (log, where, blobs):
            snapshots = args.data / "snapshots" if isinstance(log, FileEventLog) else None
            done = import_into(log, export, where, blobs, snapshots)
    except ExportRefused as err:
        raise CommandLineError(err.reason, err.text) from None
    first, count = done.first, done.appended
    if count:
        print(f"% Imported seq {first}-{first + count - 1} into {where}.", file=sys.stderr)
    else:
        print(f"% Nothing imported: {where} already holds seq {export.first}-{export.last} "
              "of this stream.", file=sys.stderr)
    if done.blobs:
        print(f"% Stored the {plural(done.blobs, 'CRL')} the stream carries.", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _import_target(args: argparse.Namespace, kind: str) -> Iterator[tuple[Any, str, Any]]:
    """The log `log import` writes, opened for writing, inside one group commit (a shared
    store: one transaction; a file log: one fdatasync), how to name it, and where its CRLs
    go (DIR/crls; a store's: the store, and DIR/crls if given)."""
    from engine.revocation.store import CRL_DIR, FileCrlBlobs

    root = args.data
    if root is not None and root.exists() and not root.is_dir():
        raise CommandLineError(Reason.INVALID_VALUE, f"{root} is not a directory.")
    if root is None and args.store is None and args.device is None:
        raise CommandLineError(Reason.INCOMPLETE, "log import needs --store URL --device ID "
                               "(a store's device) or --data DIR (a data directory).")
    binding = _binding(root if root is not None and root.is_dir() else None, args.store,
                       args.device)
    if binding is None:
        assert root is not None
        with _new_dirs(root / "log") as log_dir, FileEventLog.open(log_dir) as log, \
                log.group_commit():
            yield log, str(log_dir), FileCrlBlobs(root / CRL_DIR)
        return
    from engine.sharedlog import StoreCrlBlobs
    from events.pgstore import PostgresEventStore

    if kind not in ("device", "ca"):
        raise CommandLineError(Reason.INVALID_VALUE, f"A {kind} log is not kept in a shared "
                               "store: import it into a data directory (--data DIR).")
    if root is not None and root.is_dir():
        _refuse_own_log(root)  # before the import: DIR could not be bound after it
    with PostgresEventStore.open(binding.url, binding.device, kind=kind) as store, \
            store.group_commit():
        local = FileCrlBlobs(root / CRL_DIR) if root is not None and root.is_dir() else None
        yield (store, f"device {binding.device} in {binding.shown}",
               StoreCrlBlobs(lambda: store, local))
    if root is not None:  # bound once the import is in: a refused one records nothing
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _record(root, binding)


@contextlib.contextmanager
def _new_dirs(path: Path) -> Iterator[Path]:
    """`path` made (0700 each, as `shell` makes a data directory's) for a block; if the
    block fails, the directories it made are removed again (a refused import leaves none)."""
    import shutil

    made = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(made):
        p.mkdir(mode=0o700)
    try:
        yield path
    except BaseException:
        if made:
            shutil.rmtree(made[-1], ignore_errors=True)
        raise


def _until(spec: str) -> tuple[int | None, int | None]:
    if spec.isdigit():
        return int(spec), None
    try:
        t = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        raise CommandLineError(Reason.INVALID_VALUE, f"--until {spec!r} is neither a seq nor "
                               "an ISO time.") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return None, int(t.timestamp() * 1_000_000)


def cmd_replay(src: LogSource, until: str, shows: Sequence[str] | None) -> int:
    """The state at a seq starts from the newest snapshot before it (snapshots are checked
    against the log as opening checks them) and folds the rows after it; at a time, from the
    start."""
    from engine.engine import Engine
    from engine.state import DeviceState, replay_rows

    max_seq, max_at = _until(until)
    last_at = [0]
    with src.open() as log:
        report_pending_repair(log)
        first = next(log.read(), None)
        if first is not None and first.stream != "device":
            raise CommandLineError(Reason.INVALID_VALUE,
                                   f"{src.name} holds a {first.stream} log, not a device's: replay "
                                   "rebuilds a device (`trustledger ca list` reads a CA).")
        if max_seq is not None:  # past the head: the head (whose time the shows need)
            max_seq = min(max_seq, log.head[0])
        start = _snapshot_before(src.data, log, max_seq) if max_seq and src.data else None
        state, rows = start or (DeviceState(), log.read_rows(typed=True))
        state = replay_rows(state, _rows_until(rows, max_seq, max_at, last_at))
    print(f"! state at seq {state.seq}")
    # Shows that depend on the time (certificate status, poll timers) see the replayed moment.
    from engine.revocation.store import CRL_DIR, FileCrlBlobs

    blobs = FileCrlBlobs(src.data / CRL_DIR) if src.data is not None else None
    eng = Engine.frozen(state, max_at if max_at is not None else last_at[0], blobs)
    refused = 0
    for line in shows or ["show running-config", "show configuration commit list"]:
        print(eng.prompt + line)
        res = eng.execute(line)
        sys.stdout.write(res.output)
        refused += not res.ok
    return 1 if refused else 0  # like `exec`: a refused line (read-only, bad syntax) is exit 1


def cmd_validate(args: argparse.Namespace) -> int:
    """`trustledger validate`: one validation, recorded in the device's log like one from
    an embedding program; the verdict in words (or JSON). Input that is not a chain, or a
    time that is not one, is a `%` line and exit 2, and records nothing."""
    import json

    from engine.engine import Engine
    from engine.trustpool.builtin import certifi_bundle
    from engine.validation.anchors import anchor_index
    from engine.views.state import VerdictView

    at = None if args.at is None else _iso_time(args.at)
    chain = _read_chain(args.chain)
    root, log = device_dir(args.data, args.store, args.device, args.adopt)
    with Engine.open(root, builtins=certifi_bundle, log=log) as eng:
        _report_recovery(eng)
        verdict = eng.validate_peer(chain.certs, args.purpose,
                                    at if at is not None else eng.ports.clock.now_us(),
                                    args.name)
        if args.json:
            print(json.dumps(verdict.as_dict(), sort_keys=True))
        else:
            from engine.pki import rfc4514  # IOS's labels, as `show crypto ca certificates`

            subjects = {fp: rfc4514(c.subject)
                        for fp, c in zip(chain.fingerprints, chain.certs, strict=True)}
            subjects.update(anchor_index(eng.state).subjects())
            sys.stdout.write(eng.ports.render(VerdictView(verdict, subjects)))
    return 0 if verdict.ok else 1


def _read_chain(path: str) -> Any:
    """The chain in the file `path` ('-': stdin), parsed; a `%` line (exit 2) if it cannot
    be read or is not a chain."""
    from engine.validation.chain import ChainMalformed, parse_chain

    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise CommandLineError(Reason.NOT_FOUND, f"Cannot read {path}: "
                               f"{e.strerror or e}.") from None
    try:
        return parse_chain(data)
    except ChainMalformed as e:
        raise CommandLineError(Reason.BAD_DATA, f"{path}: {e}.") from None


def _iso_time(text: str) -> int:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandLineError(Reason.INVALID_VALUE, f"--at {text!r} is not an ISO-8601 "
                               "time (e.g. 2026-12-01T10:00:00Z).") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return round(t.timestamp() * 1_000_000)


def cmd_diagrams(out: Path) -> int:
    from engine.machines.diagrams import DiagramError, write_diagrams

    try:
        written = write_diagrams(out)
    except DiagramError as err:
        raise CommandLineError(err.reason, err.text) from err
    for path in written:
        print(path)
    return 0


def _snapshot_before(data: Path, log: DeviceLog, seq: int) -> tuple[Any, Any] | None:
    """The newest usable snapshot before `seq` (so that the event at `seq`, whose time the
    replay shows, is folded) and the rows after it; None: replay from the start."""
    from engine import snapshot

    directory = data / "snapshots"
    try:
        return snapshot.load_with_tail(directory, log, None, upto=seq - 1)
    except snapshot.LogBehind:  # the log is short of a snapshot: the audit reads the log only
        return None


def _rows_until(rows: Iterator[Sequence[Any]], max_seq: int | None, max_at: int | None,
                last_at: list[int]) -> Iterator[Sequence[Any]]:
    """`rows` up to seq `max_seq` or time `max_at`; `last_at[0]`: the last one's time."""
    for row in rows:
        if (max_seq is not None and row[0] > max_seq) or (max_at is not None and row[4] > max_at):
            return
        last_at[0] = _moment_after(row)
        yield row


def _moment_after(row: Sequence[Any]) -> int:
    """The engine time right after the event in `row` (typed): its own time, except after a
    `clock set`, whose event is stamped just before the set and leaves the clock at the time
    typed."""
    from events.clock import ClockSet

    event = row[7]
    return event.set_to_us if isinstance(event, ClockSet) else int(row[4])


def cmd_shell(args: argparse.Namespace) -> int:
    from engine.engine import Engine
    from engine.frontends import run_batch, run_interactive
    from engine.trustpool.builtin import certifi_bundle

    keep_going = args.keep_going
    root, log = device_dir(args.data, args.store, args.device, args.adopt)
    with Engine.open(root, builtins=certifi_bundle, audit=True, log=log) as eng:
        _report_recovery(eng)
        if sys.stdin.isatty():
            return run_interactive(eng, root / "history")
        return run_batch(eng, iter(sys.stdin.readline, ""), sys.stdout, keep_going)


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """The garbage collector off for the block, then as it was. For start-up only (imports
    and opening the engine make many objects and few cycles: ~50 young collections, ~2% of
    an `exec` of one `show`, issue 12); never around a command's work, which may run long."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def cmd_exec(args: argparse.Namespace) -> int:
    with collections_paused():
        from engine.engine import Engine
        from engine.frontends import run_batch
        from engine.trustpool.builtin import certifi_bundle

    file, keep_going = args.file, args.keep_going
    with contextlib.nullcontext(sys.stdin) if file == "-" else _open_script(file) as script:
        root, log = device_dir(args.data, args.store, args.device, args.adopt)
        with collections_paused():
            eng = Engine.open(root, builtins=certifi_bundle, audit=True, log=log)
        with eng:
            _report_recovery(eng)
            return run_batch(eng, iter(script.readline, ""), sys.stdout, keep_going)


def _open_script(file: str) -> TextIO:
    """`exec -f FILE`'s script, opened before the data directory is: a file, or whatever
    reads as one (a pipe, `<(...)`, /dev/stdin); a directory or a missing path is one `%`."""
    if os.path.isdir(file):
        raise CommandLineError(Reason.INVALID_INPUT, f"Script {file}: is a directory.")
    try:
        return open(file, encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise CommandLineError(Reason.NOT_FOUND, f"Script {file}: no such file.") from None
    except OSError as e:
        raise CommandLineError(Reason.INVALID_INPUT,
                               f"Script {file}: cannot be read ({e.strerror}).") from None


def _report_recovery(eng: Any) -> None:
    if eng.recovered:
        print(f"%LOG-4-RECOVERED: {eng.recovered}", file=sys.stderr)
    for ignored in eng.snapshots_ignored:
        print(ignored.render(), file=sys.stderr)
    for notice in eng.notices:
        print(notice, file=sys.stderr)


def report_pending_repair(log: DeviceLog) -> None:
    """A read-only open found a torn tail it must not cut: say so (one line, stderr)."""
    notice = log.notice()
    if notice:
        print(notice, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    harden_stdio()
    words = sys.argv[1:] if argv is None else argv
    args = _parser(command_word(words)).parse_args(words)
    # The device's commands log through engine.logsetup.get_logger: structlog loads with the
    # first log line, not at start-up. The CA (and the demo that runs it) set it up now.
    configure_logging("info" if args.command == "ca" else "warning",
                      defer=args.command in ("shell", "exec", "log", "replay", "audit", "fleet"))
    try:
        return _dispatch(args)
    except CommandLineError as err:
        print(err.message, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head` stopped reading: say nothing, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush of stdout cannot fail
        return 128 + signal.SIGPIPE
    except OSError as err:  # the environment refused (a busy port, a permission, a full disk)
        print(f"% {_os_error(err, args)}", file=sys.stderr)
        return 2


def _os_error(err: OSError, args: argparse.Namespace) -> str:
    if err.errno == errno.EADDRINUSE and getattr(args, "ca_command", None) == "serve":
        return f"Cannot listen on {args.host}:{args.port}: the port is in use."
    where = f" ({err.filename})" if err.filename else ""
    return f"{err.strerror or err}{where}."


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "shell":
            return cmd_shell(args)
        if args.command == "exec":
            return cmd_exec(args)
        if args.command == "log":
            return _dispatch_log(args)
        if args.command == "replay":
            return cmd_replay(log_source(args.dir, args.store, args.device), args.until,
                              args.show)
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "demo":
            from engine.demo import run_demo

            return run_demo(sys.stdout, args.dir)
        if args.command == "diagrams":
            return cmd_diagrams(args.out)
        if args.command == "audit":
            from engine.auditcli import run

            return run(args)
        if args.command == "fleet":
            from engine.fleetcli import run as run_fleet

            return run_fleet(args)
        if args.command == "ca":
            from engine.ca.errors import CAError, NotACA

            _check_ca_dir(args)
            try:
                return int(args.func(args))
            except CAError as err:
                print(err.message, file=sys.stderr)
                return 2 if isinstance(err, NotACA) else 1
    except UnfoldedEvent as err:
        print(err.message, file=sys.stderr)
        return 2
    except LogError as err:
        print(err.render() if err.sentence else f"trustledger: {err.text}", file=sys.stderr)
        return 1 if _unreachable(err) else 2
    return 2


def _unreachable(err: LogError) -> bool:
    """A shared store that could not be reached or refused a statement (read-only,
    permissions): a runtime failure (exit 1, as `ca` and
    `fleet` say it), not a usage error (2). Only a command that loaded the store module
    can have met one."""
    pgstore = sys.modules.get("events.pgstore")
    return pgstore is not None and isinstance(err, (pgstore.StoreUnavailable,
                                                    pgstore.StoreRefused))


def _dispatch_log(args: argparse.Namespace) -> int:
    if args.log_command == "scrub":
        return cmd_log_scrub(args.dir or default_data_dir())
    if args.log_command == "import":
        return cmd_log_import(args)
    src = log_source(args.dir, args.store, args.device)
    if args.log_command == "verify":
        return cmd_log_verify(src)
    if args.log_command == "export":
        return cmd_log_export(src, args.out)
    return cmd_log_show(src, args.from_seq, args.json)


def _check_ca_dir(args: argparse.Namespace) -> None:
    d = getattr(args, "dir", None)
    if isinstance(d, Path) and d.exists() and not d.is_dir():
        raise CommandLineError(Reason.INVALID_VALUE, f"CA directory {d} is not a directory.")


def console() -> int:
    """The installed `trustledger` command (and `python -m engine.cli`): `main`, then the
    process ends. Whatever is still alive then goes with the process, so `gc.freeze()` first
    spares the interpreter's two full collections over it at exit (measured: ~15% of the CPU
    time of `exec` of one `show`, issue 12). Everything the command wrote is closed by then
    (the engine, the log and the keystore close in `with` blocks; the standard streams are
    flushed at exit as ever): no finalizer is waited for. Not in `main`, which tests and
    embedding programs call in a process that goes on."""
    status = main()
    gc.freeze()
    return status


if __name__ == "__main__":  # run as engine.cli, not __main__: modules that import
    # engine.cli (auditcli, ...) raise ITS CommandLineError, which `main` must catch
    from engine.cli import console as _console

    raise SystemExit(_console())
