"""The `trustledger audit` group: a checkpoint witness (engine/audit/witness*.py) and the
auditor's HTML report (projections/audit_report.py).

    trustledger audit report DIR -o FILE               one static HTML page (no script)

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
from engine.errors import OperatorError, Reason


def register(audit_sub: Any) -> None:
    """Add `witness` and `report` to the `audit` group's subparsers."""
    rp = audit_sub.add_parser("report", help="the device log as one static HTML page: "
                                             "timeline, state machines, trustpoint lifecycles")
    rp.add_argument("dir", type=Path, metavar="DIR",
                    help="a device's data directory (or its log directory)")
    rp.add_argument("-o", "--out", type=Path, required=True, metavar="FILE",
                    help="the HTML file to write")
    w = audit_sub.add_parser("witness", help="a checkpoint witness (C2SP tlog-witness)")
    wsub = w.add_subparsers(dest="witness_command", required=True, metavar="ACTION")
    wi = wsub.add_parser("init", help="make a witness directory with a new Ed25519 key")
    wi.add_argument("dir", type=Path, metavar="DIR")
    wi.add_argument("--name", default=DEFAULT_NAME,
                    help=f"the witness's key name (default: {DEFAULT_NAME})")
    wk = wsub.add_parser("key", help="print the witness's verifier key")
    wk.add_argument("dir", type=Path, metavar="DIR")
    wf = wsub.add_parser("follow", help="co-sign checkpoints of these logs")
    wf.add_argument("dir", type=Path, metavar="DIR")
    wf.add_argument("keys", nargs="+", metavar="LOGKEY",
                    help="a log's verifier key, as `trustledger audit key` prints it")
    ws = wsub.add_parser("serve", help="answer add-checkpoint requests over HTTP")
    ws.add_argument("dir", type=Path, metavar="DIR")
    ws.add_argument("--host", default="127.0.0.1")
    ws.add_argument("--port", type=int, default=0, help="(default: an ephemeral port)")
    ws.add_argument("--follow", action="append", default=[], metavar="LOGKEY",
                    help="follow this log too (repeatable)")


def run(args: argparse.Namespace) -> int:
    if args.audit_command == "report":
        return report(args.dir, args.out)
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


def report(d: Path, out: Path) -> int:
    """Write the audit report of the device log in `d` to `out` (whole, or not at all)."""
    from engine.machines.diagrams import MACHINES, dot_source, svg_of
    from engine.machines.trustpoint import LIFECYCLE
    from engine.ports import SystemClock
    from events.filelog import FileEventLog
    from projections.audit_report import collect, lifecycle_dot, render

    log_dir = d / "log" if (d / "log").is_dir() else d
    if not (log_dir / "LOCK").exists() and not any(log_dir.glob("*.seg")):
        raise OperatorError(Reason.NOT_FOUND, f"{d} holds no event log.")
    with FileEventLog.open(log_dir, readonly=True) as log:
        first = next(log.read(), None)
        if first is not None and first.stream != "device":
            raise OperatorError(Reason.INVALID_VALUE, f"{d} holds a {first.stream} log, not "
                                "a device's: the report reads a device's.")
        data = collect(log.read())
    diagrams = {name: svg_of(dot_source(table), name).decode()
                for name, table in MACHINES.items()}
    machine = dot_source(LIFECYCLE)
    paths = {name: svg_of(lifecycle_dot(machine, path), name).decode()
             for name, path in data.paths.items()}
    page = render(data, diagrams, paths, source=str(log_dir.resolve()),
                  made_at=SystemClock().now_us())
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    print(f"{out}: {len(data.rows)} events, {len(data.paths)} trustpoint(s)")
    return 0
