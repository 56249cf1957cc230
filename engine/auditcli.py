"""`trustledger audit ...`: the log's audit key, checkpoints, proofs, export and the outsider's
verifier (engine/audit/).

    trustledger audit key DIR                 the audit key, as `audit verify --key` takes it
    trustledger audit checkpoint DIR          sign a checkpoint of the log now, print it
    trustledger audit prove DIR --seq N       inclusion proof of event N (C2SP tlog-proof)
    trustledger audit prove DIR --from-size A consistency proof from tree size A
    trustledger audit export DIR [--until SEQ|TIME] -o FILE
                                              events and their checkpoint, self-contained
    trustledger audit verify FILE --key KEY [--checkpoint OLDER] [--witness-key KEY]...
                                              check a bundle with the public key alone

key, checkpoint, prove and export take `--store URL --device ID` as `trustledger log` does
(a data directory bound to a store finds them in DIR/STORE): the events are the store's,
the checkpoints the data directory's (DIR/audit/).

Exit status: 0 when everything holds; 1 when `verify` finds a failure (it names the first
failing seq and why); 2 when the command cannot run (a `%` line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.audit.bundle import verify_bundle
from engine.audit.cosignature import CosignatureVerifier, parse_cosignature_key
from engine.audit.export import (
    checkpoint_until,
    consistency_text,
    export_bundle,
    find_key,
    inclusion_text,
    latest_checkpoint,
    tree_of,
)
from engine.audit.note import Ed25519Verifier, NoteError, parse_verifier_key
from engine.audit.outfile import write_out
from engine.audit.witness_service import KEY_FILE
from engine.cli import (
    LOG_DIR_HELP,
    CommandLineError,
    _report_recovery,
    _store_arguments,
    _until,
    device_log,
    log_source,
    report_pending_repair,
)
from engine.errors import Reason, TrustledgerError
from engine.reportcli import register as register_report
from engine.witnesscli import register as register_witness

AUDIT_HELP = "signed checkpoints, proofs, export and verification of a log; witnesses; the report"


def register(sub: Any) -> None:
    au = sub.add_parser("audit", help=AUDIT_HELP)
    asub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    k = asub.add_parser("key", help="print the log's audit key (C2SP verifier key)")
    k.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                   help=LOG_DIR_HELP)
    _store_arguments(k)
    k.set_defaults(func=cmd_key)
    c = asub.add_parser("checkpoint", help="sign a checkpoint of the device's log now")
    c.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                   help="the device's data directory (default: $TRUSTLEDGER_DATA, else "
                        "~/.local/state/trustledger)")
    _store_arguments(c)
    c.set_defaults(func=cmd_checkpoint)
    p = asub.add_parser("prove", help="inclusion or consistency proof against the latest "
                                      "checkpoint")
    p.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                   help=LOG_DIR_HELP)
    _store_arguments(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, metavar="N", help="the event to prove included")
    which.add_argument("--from-size", type=int, metavar="A",
                       help="the older tree size to prove consistent with")
    p.set_defaults(func=cmd_prove)
    e = asub.add_parser("export", help="write a self-contained bundle for `audit verify`")
    e.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                   help=LOG_DIR_HELP)
    _store_arguments(e)
    e.add_argument("--until", metavar="SEQ|TIME",
                   help="export up to the newest checkpoint at or before this seq or ISO time "
                        "(default: the latest checkpoint)")
    e.add_argument("-o", "--out", type=Path, required=True, metavar="FILE",
                   help="the bundle file to write (replaced atomically)")
    e.set_defaults(func=cmd_export)
    v = asub.add_parser("verify", help="check a bundle with the audit public key alone")
    v.add_argument("file", type=Path, metavar="FILE", help="a bundle from `audit export`")
    v.add_argument("--key", required=True, metavar="KEY",
                   help="the audit key (`audit key` prints it), or a file holding it")
    v.add_argument("--checkpoint", type=Path, metavar="OLDER",
                   help="an older checkpoint you kept (a file): the log must extend it")
    v.add_argument("--witness-key", action="append", default=[], metavar="KEY",
                   help="require this witness's cosignature on the checkpoint (repeatable; "
                        "`audit witness key` prints it), or a file holding it")
    v.set_defaults(func=cmd_verify)
    register_witness(asub)  # engine/witnesscli.py
    register_report(asub)  # engine/reportcli.py


def run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except CommandLineError:
        raise
    except TrustledgerError as err:
        print(err.render(), file=sys.stderr)
        return 2


def cmd_key(args: argparse.Namespace) -> int:
    with log_source(args.dir, args.store, args.device).open() as log:
        report_pending_repair(log)
        key = find_key(log)
    print(key.verifier().key_string())
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from engine.cli import default_data_dir
    from engine.engine import Engine
    from engine.storebinding import STORE_FILE

    root: Path = args.dir or default_data_dir()

    stored = (root / STORE_FILE).is_file() or args.store is not None or args.device is not None
    if not stored and not (root / "log").is_dir():
        raise CommandLineError(Reason.NOT_FOUND, f"{root} is not a device's data directory "
                               f"(it has no {root / 'log'}).")
    with log_source(root, args.store, args.device).open() as log:
        first = next(log.read_rows(), None)
    if (root / KEY_FILE).exists() or (first is not None and first[1] == "witness"):
        raise CommandLineError(Reason.INVALID_VALUE, f"{root} is a witness's directory: a "
                               "witness signs no checkpoint of its own log.")
    if first is not None and first[1] == "ca":
        raise CommandLineError(Reason.INVALID_VALUE, f"{root} is a CA's directory: the CA "
                               "signs a checkpoint itself after every certificate issued or "
                               "revoked and every CRL.")
    with Engine.open(root, audit=True, log=device_log(root, args.store, args.device)) as eng:
        _report_recovery(eng)
        trail = eng.audit
        assert trail is not None  # audit=True: the key exists
        latest = trail.latest
        if latest is None or latest.checkpoint.size != trail.size:
            trail.checkpoint()
        said = eng.cosign_latest()  # the configured witnesses (audit witness url ...): waited for
        assert trail.latest is not None
        note = trail.latest.note
        trail.persist()
    sys.stderr.write(said)
    sys.stdout.write(note.decode())
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    with log_source(args.dir, args.store, args.device).open() as log:
        report_pending_repair(log)
        key = find_key(log)
        note, cp = latest_checkpoint(log, key)
        tree, chains = tree_of(log, cp)
        if args.seq is not None:
            text = inclusion_text(tree, chains, note, cp, args.seq)
        else:
            text = consistency_text(tree, note, cp, args.from_size)
    sys.stdout.write(text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out: Path = args.out
    with log_source(args.dir, args.store, args.device).open() as log:
        report_pending_repair(log)
        key = find_key(log)
        if args.until:
            max_seq, max_at = _until(args.until)
            note, cp = checkpoint_until(log, key, max_seq, max_at)
        else:
            note, cp = latest_checkpoint(log, key)
        count = write_out(out, lambda f: export_bundle(log, key, note, cp, f))
    print(f"seq 1-{count} and the checkpoint of tree size {cp.size} written to {out}")
    return 0


def _key(text: str) -> Ed25519Verifier:
    try:
        return parse_verifier_key(text)
    except NoteError as first:
        path = Path(text)
        if path.is_file():
            try:
                return parse_verifier_key(path.read_text(encoding="utf-8").strip())
            except (NoteError, UnicodeDecodeError) as e:
                raise CommandLineError(Reason.INVALID_VALUE,
                                       f"{path} does not hold an audit key: {e}.") from None
        raise CommandLineError(Reason.INVALID_VALUE,
                               f"--key is not an audit key ({first}).") from None


def _witness_key(text: str) -> CosignatureVerifier:
    path = Path(text)
    try:
        return parse_cosignature_key(path.read_text(encoding="utf-8").strip()
                                     if path.is_file() else text)
    except (NoteError, UnicodeDecodeError) as e:
        raise CommandLineError(Reason.INVALID_VALUE,
                               f"--witness-key is not a witness key ({e}).") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CommandLineError(Reason.NOT_FOUND, f"{what} {path}: no such file.") from None
    except IsADirectoryError:
        raise CommandLineError(Reason.INVALID_VALUE, f"{what} {path} is a directory.") from None


def cmd_verify(args: argparse.Namespace) -> int:
    key = _key(args.key)
    older = _read(args.checkpoint, "Checkpoint") if args.checkpoint is not None else None
    witnesses = [_witness_key(text) for text in args.witness_key]
    report = verify_bundle(_read(args.file, "Bundle"), key, older, witnesses)
    sys.stdout.write(report.text())
    return 0 if report.ok else 1
