"""`trustledger audit report DIR -o FILE`: the auditor's page (projections/audit_report.py),
one static HTML file: the timeline, each trustpoint's lifecycle, the machines' diagrams."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import OperatorError, Reason


def register(audit_sub: Any) -> None:
    """Add `report` to the `audit` group's subparsers."""
    rp = audit_sub.add_parser("report", help="the device log as one static HTML page: "
                                             "timeline, state machines, trustpoint lifecycles")
    rp.add_argument("dir", type=Path, metavar="DIR", nargs="?", default=None,
                    help="a device's data directory (or its log directory) (default: "
                         "$TRUSTLEDGER_DATA, else ~/.local/state/trustledger)")
    rp.add_argument("-o", "--out", type=Path, required=True, metavar="FILE",
                    help="the HTML file to write")
    from engine.cli import _store_arguments

    _store_arguments(rp)
    rp.set_defaults(func=lambda args: report(args.dir, args.out, args.store, args.device))


def report(d: Path | None, out: Path, store: str | None = None,
           device: str | None = None) -> int:
    """Write the audit report of the device log in `d` (None: the default data directory) to
    `out` (whole, or not at all)."""
    from engine.audit.outfile import write_out
    from engine.cli import default_data_dir, log_source
    from engine.machines.diagrams import MACHINES, dot_source, svg_of
    from engine.machines.trustpoint import LIFECYCLE
    from engine.ports import SystemClock
    from engine.state import device_folds
    from projections.audit_report import collect, lifecycle_dot, render

    device_folds()  # imports the feature modules, so their event types decode (lazy CLI)
    d = d or default_data_dir()
    src = log_source(d, store, device)  # a missing directory, or one with no log, is a `%`
    log_dir = d / "log" if (d / "log").is_dir() else d
    with src.open() as log:
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
    source = src.name if src.binding is not None else str(log_dir.resolve())
    page = render(data, diagrams, paths, source=source,
                  made_at=SystemClock().now_us())
    write_out(out, lambda f: f.write(page.encode("utf-8")))
    print(f"{out}: {len(data.rows)} events, {len(data.paths)} trustpoint(s)")
    return 0


def run(args: argparse.Namespace) -> int:
    return report(args.dir, args.out)
