"""`trustledger audit witness ...`: a checkpoint witness (engine/audit/witness*.py) run from
the command line.

    trustledger audit witness init DIR [--name NAME]   a new witness; prints its key
    trustledger audit witness key DIR                  prints its key (`--witness-key` form)
    trustledger audit witness follow DIR LOGKEY...     follow logs (`audit key` prints theirs)
    trustledger audit witness serve DIR [--host H] [--port P] [--follow LOGKEY]...

`serve` answers `POST http://H:P/add-checkpoint` and prints one line per request.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from engine.audit.witness import Decision
from engine.audit.witness_service import DEFAULT_NAME, WitnessService, init_witness, witness_key

DIR_HELP = "the witness directory (its key and its log)"


def register(audit_sub: Any) -> None:
    """Add `witness` to the `audit` group's subparsers."""
    w = audit_sub.add_parser("witness", help="a checkpoint witness (C2SP tlog-witness)")
    wsub = w.add_subparsers(dest="witness_command", required=True, metavar="ACTION")
    wi = wsub.add_parser("init", help="make a witness directory with a new Ed25519 key")
    wi.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    wi.add_argument("--name", default=DEFAULT_NAME,
                    help=f"the witness's key name (default: {DEFAULT_NAME})")
    wk = wsub.add_parser("key", help="print the witness's verifier key")
    wk.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    wf = wsub.add_parser("follow", help="co-sign checkpoints of these logs")
    wf.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    wf.add_argument("keys", nargs="+", metavar="LOGKEY",
                    help="a log's verifier key, as `trustledger audit key` prints it")
    ws = wsub.add_parser("serve", help="answer add-checkpoint requests over HTTP")
    ws.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    ws.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                                                        "127.0.0.1)")
    ws.add_argument("--port", type=_port, default=0, help="(default: an ephemeral port)")
    ws.add_argument("--follow", action="append", default=[], metavar="LOGKEY",
                    help="follow this log too (repeatable)")
    w.set_defaults(func=run)


def _port(text: str) -> int:
    """A TCP port, 0 (an ephemeral one) to 65535: anything else is a usage error."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return int(text)


def run(args: argparse.Namespace) -> int:
    what = args.witness_command
    if what == "init":
        print(init_witness(args.dir, args.name).key_string())
        return 0
    if what == "key":
        print(witness_key(args.dir).key_string())
        return 0
    with WitnessService(args.dir) as service:
        if what == "follow":
            for origin in service.follow(args.keys):
                print(f"following {origin}")
            return 0
        for origin in service.follow(args.follow):
            print(f"following {origin}")
        return _serve(service, args.host, args.port)


def _line(decision: Decision) -> str:
    cp = decision.checkpoint
    what = f"{cp.origin} size {cp.size}" if cp is not None else "-"
    if decision.cosigned is not None:
        return f"cosigned {what}"
    return f"refused {int(decision.status)} {what}: {decision.reason}"


def _serve(service: WitnessService, host: str, port: int) -> int:
    from engine.adapters.witness_http import serve_witness

    def report(decision: Decision) -> None:
        print(_line(decision), flush=True)

    server = serve_witness(service, host, port, report)
    print(f"witness {service.name} serving {server.url}/add-checkpoint", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()
    print("stopped", file=sys.stderr)
    return 0

