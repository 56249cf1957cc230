"""`trustledger fleet ...`: views across every device of a PostgreSQL store (engine/fleet/).

    trustledger fleet certificates --store URL [--expiring 30d] [--issuer DN] [--json]
    trustledger fleet trustpoints --store URL [--state STATE] [--json]
    trustledger fleet devices --store URL [--json]
    trustledger fleet follow --store URL      keep the views current until Ctrl-C
    trustledger fleet release DEVICE --store URL   lift a quarantine once the log is repaired

`$TRUSTLEDGER_STORE` stands for `--store`. Each query first folds whatever the store holds
beyond the views' position (so it never answers from stale views), then answers.

Exit status: 0 answered (a quarantined log, engine/fleet/follower.py, is named in one `%`
line on stderr); 2 a usage error (a `%` line: a bad duration, state, DN or URL, no store
given); 1 the store failed (down, not a trustledger store). `fleet follow` outlives a store
that goes away: it says so once and retries with back-off until it is back. `fleet release`:
0 released; 1 the log still fails its re-check, or the store failed; 2 a usage error or a
log that is not quarantined (each a `%` line; nothing changed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.cli import CommandLineError, Parser
from engine.errors import Reason
from engine.fleet.names import issuer_key
from engine.fleet.queries import STATES

FLEET_HELP = "views across a fleet's devices in a PostgreSQL store"
STORE_HELP = "the store, postgresql://USER@HOST:PORT/DB (default: $TRUSTLEDGER_STORE)"


def register(sub: Any) -> None:
    fl = sub.add_parser("fleet", help=FLEET_HELP)
    fsub = fl.add_subparsers(dest="fleet_command", required=True, metavar="VIEW",
                             parser_class=_ViewParser)
    c = fsub.add_parser("certificates", help="installed certificates, soonest expiry first")
    c.add_argument("--expiring", metavar="DURATION", default=None,
                   help="only those expiring within DURATION (30d, 12h, 2w), expired ones too")
    c.add_argument("--issuer", metavar="DN", default=None,
                   help="only those issued by DN (labels and case do not matter)")
    t = fsub.add_parser("trustpoints", help="every device's trustpoints and their state")
    t.add_argument("--state", metavar="STATE", default=None,
                   help=f"only trustpoints in STATE ({'|'.join(STATES)})")
    d = fsub.add_parser("devices", help="one line per device (and CA) log")
    f = fsub.add_parser("follow", help="keep the views current (LISTEN/NOTIFY); Ctrl-C stops")
    r = fsub.add_parser(
        "release", help="lift a log's quarantine once it was repaired (re-checked first)",
        description="Re-check the quarantined log DEVICE up to the views' position (chain, "
        "hashes, and a device's fold) and, if it is whole, fold it into the views again and "
        "lift its quarantine; refused with a % line, changing nothing, if it still fails. "
        "`fleet devices` lists the quarantined logs (Status).")
    r.add_argument("device", metavar="DEVICE", help="the quarantined log (as fleet devices "
                   "names it)")
    for p in (c, t, d, f, r):
        p.add_argument("--store", metavar="URL", default=None, help=STORE_HELP)
    for p in (c, t, d):
        p.add_argument("--json", action="store_true", help="one JSON object")


class _ViewParser(Parser):
    """A view's parser: an argument it does not take is its usage error (`usage: trustledger
    fleet devices ...`), not the top level's (argparse leaves extras to the top parser)."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def run(args: argparse.Namespace) -> int:
    url = store_url(args.store)
    ask, render = _question(args)  # usage errors before the store is touched
    import psycopg

    from engine.fleet.follower import FleetFollower, NotAStore
    from engine.folds import UnfoldedEvent
    from events.filelog import LogError
    from events.pgstore import redacted

    try:
        with FleetFollower(url) as follower:
            if args.fleet_command == "follow":
                return _follow(follower, url)
            if args.fleet_command == "release":
                return _release(follower, args.device)
            follower.catch_up()
            answer = follower.answer(ask, time.time_ns() // 1000)
            held = follower.quarantined()
    except NotAStore as err:
        print(f"% {err}", file=sys.stderr)
        return 1
    except UnfoldedEvent as err:  # a device's log holds what this build cannot fold
        print(err.message, file=sys.stderr)
        return 1
    except LogError as err:  # the store cannot be reached, or refused (events/pgstore.py)
        print(err.render() if err.sentence else f"% {err.text}", file=sys.stderr)
        return 1
    except psycopg.Error as err:
        print(f"% The store {redacted(url)} failed: {_first_line(err)}.", file=sys.stderr)
        return 1
    sys.stdout.write(render(answer))
    if held:
        print(quarantine_warning(held), file=sys.stderr)
    return 0


def _release(follower: Any, device: str) -> int:
    """`fleet release DEVICE`: catch the views up, then lift DEVICE's quarantine if its log
    now re-checks whole (engine/fleet/follower.py `release`)."""
    from engine.fleet.follower import ReleaseRefused

    follower.catch_up()
    try:
        seq, position = follower.release(device)
    except ReleaseRefused as err:
        print(f"% {err.text}" + (" Repair its log (`trustledger log verify --store URL "
                                 f"--device {device}` says where), then release it again."
                                 if err.still_bad else ""), file=sys.stderr)
        return 1 if err.still_bad else 2
    print(f"Released {device}: its log re-checked whole and folded to seq {seq} (views at "
          f"position {position}); its later events are folded as any log's.")
    return 0


NAMED_AT_MOST = 10  # quarantined logs the `%` line names; `fleet devices` lists them all


def quarantine_warning(held: Sequence[Any]) -> str:
    """One `%` line naming the quarantined logs (the views hold them only up to there): the
    first NAMED_AT_MOST, then how many more, so that a fleet with hundreds quarantined does
    not get a line of kilobytes on every query."""
    logs = ", ".join(f"{q.device} at seq {q.seq} ({q.reason})" for q in held[:NAMED_AT_MOST])
    more = len(held) - NAMED_AT_MOST
    if more > 0:
        logs += f", and {more} more log{'s' if more != 1 else ''}"
    return (f"% Quarantined, not folded from there on (see fleet devices): {logs}.")


def _question(args: argparse.Namespace) -> tuple[Callable[[Any], Sequence[Any]],
                                                  Callable[[Any], str]]:
    """What to ask the views and how to print the answer; usage errors raised here."""
    from engine.fleet import queries
    from projections import fleet as out

    cmd, as_json = args.fleet_command, getattr(args, "json", False)
    if cmd == "certificates":
        within = None if args.expiring is None else duration_us(args.expiring)
        issuer = args.issuer
        if issuer is not None:
            try:
                issuer_key(issuer)
            except ValueError as e:
                raise CommandLineError(Reason.INVALID_VALUE,
                                       f"Invalid issuer DN {issuer!r}: {e}.") from None

        def ask_certs(conn: Any) -> Sequence[Any]:
            return queries.certificates(conn, now_us=time.time_ns() // 1000,
                                        within_us=within, issuer=issuer)

        return ask_certs, out.json_certificates if as_json else out.render_certificates
    if cmd == "trustpoints":
        state = args.state
        if state is not None and state not in STATES:
            raise CommandLineError(Reason.INVALID_VALUE, f"Unknown trustpoint state {state!r}: "
                                   f"one of {', '.join(STATES)}.")
        return (lambda conn: queries.trustpoints(conn, state=state),
                out.json_trustpoints if as_json else out.render_trustpoints)
    return queries.devices, out.json_devices if as_json else out.render_devices


RETRY_S = (1.0, 30.0)  # `fleet follow` retries a lost store after 1 s, doubling up to 30 s


def _follow(follower: Any, url: str) -> int:
    """Keep the views current until Ctrl-C or SIGTERM. A store that goes away is said once
    (`% Lost the event store ...`); the follower retries with back-off (RETRY_S) and goes on
    from the views' position when the store is back."""
    from events.pgstore import redacted

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    told: set[str] = set()
    at = 0

    def tell(applied: Any = None) -> None:  # after each step: each log quarantined, once
        nonlocal at
        if applied is not None:
            at = applied.position
        held = follower.quarantined()
        told.intersection_update(q.device for q in held)  # a released log is told again
        new = [q for q in held if q.device not in told]
        if new:
            told.update(q.device for q in new)
            print(quarantine_warning(new), file=sys.stderr, flush=True)

    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the step in flight rolls back
            at = follower.position
            print(f"Following {redacted(url)} from position {at}; Ctrl-C stops.", flush=True)
            while not stop.is_set():
                try:
                    tell()
                    follower.follow(stop, on_step=tell)
                except _lost() as err:
                    follower.close()
                    follower = _until_back(url, err, stop)
                    if follower is None:
                        break
                    at = follower.position
                    print(f"The event store {redacted(url)} is back; following from "
                          f"position {at}.", file=sys.stderr, flush=True)
    finally:
        if follower is not None:
            follower.close()
    print(f"Stopped at position {at}.", flush=True)
    return 0


def _lost() -> tuple[type[Exception], ...]:
    """What says the store went away: our store's refusal, or psycopg's on a raw query."""
    import psycopg

    from events.pgstore import StoreUnavailable

    # A database turned read-only (a failover to a standby, maintenance) is waited out too.
    return (StoreUnavailable, psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction)


def _until_back(url: str, err: Exception, stop: threading.Event) -> Any:
    """Say once that the store was lost, then try to reconnect after 1 s, 2 s, 4 s ... up
    to RETRY_S[1] between tries; the new follower, or None if stopped meanwhile."""
    from engine.fleet.follower import FleetFollower
    from events.pgstore import redacted

    why = err.text if hasattr(err, "text") else f"Lost the event store {redacted(url)}: " \
        f"{_first_line(err)}."
    print(f"% {why.rstrip('.')}. Retrying every {RETRY_S[0]:g} s to {RETRY_S[1]:g} s until "
          "it is back; Ctrl-C stops.", file=sys.stderr, flush=True)
    wait = RETRY_S[0]
    while not stop.wait(wait):
        try:
            return FleetFollower(url)
        except _lost():
            wait = min(wait * 2, RETRY_S[1])
    return None


# -- arguments -------------------------------------------------------------------------------

_UNITS = {"d": 86_400, "h": 3_600, "w": 7 * 86_400}
_DURATION = re.compile(r"([0-9]{1,6})([dhw])")  # ASCII digits only (\d takes ٣)


def duration_us(text: str) -> int:
    """`30d`, `12h`, `2w` in microseconds; a usage error otherwise."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise CommandLineError(Reason.INVALID_VALUE, f"Invalid duration {text!r}: a number "
                               "and a unit, d (days), h (hours) or w (weeks), e.g. 30d.")
    return int(m[1]) * _UNITS[m[2]] * 1_000_000


def store_url(given: str | None) -> str:
    url = given or os.environ.get("TRUSTLEDGER_STORE", "")
    if not url:
        raise CommandLineError(Reason.INCOMPLETE, "No store: give --store "
                               "postgresql://USER@HOST:PORT/DB or set $TRUSTLEDGER_STORE.")
    from engine.storebinding import BindingError, check_url

    try:
        return check_url(url)  # the same check and message as every --store
    except BindingError as err:
        raise CommandLineError(err.reason, err.text) from None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0].rstrip(".") if text else type(err).__name__
