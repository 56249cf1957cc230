"""`trustledger ca ...`: the built-in CA's command line.

    trustledger ca init DIR [--subject DN] [--key rsa:2048|rsa:4096|ecdsa:p256] [--days N]
                            [--cert-days N] [--ra] [--store URL --device ID]
    trustledger ca serve DIR [--host 127.0.0.1] [--port N] [--challenge-file FILE |
                             --challenge PW] [--strict] [--approval auto|manual | --manual]
                             [--public-url URL] [--workers N] [--log-json]
                             [--store URL --device ID]
                             [--ldap-url ldap://HOST:PORT/DN [--bind-dn DN --password-file F]]
    trustledger ca challenge DIR [--valid-minutes N]   (the password alone on the last line)
    trustledger ca requests DIR [--all]
    trustledger ca approve DIR TXID
    trustledger ca reject DIR TXID [--reason TEXT]
    trustledger ca revoke DIR SERIAL [--reason R]
    trustledger ca list DIR
    trustledger ca show DIR SERIAL|TXID                 (one certificate or request in full)
    trustledger ca rollover DIR [--days N]              (the next CA key and certificate:
                                                         engine/ca/rollover_cli.py)
    trustledger ca publish-crl DIR --ldap ldap://HOST:PORT/DN [--bind-dn DN --password-file F]

`--store URL --device ID` keeps the CA's log in a PostgreSQL store (its ID there); DIR
records them (DIR/STORE, no password) and every other `ca` command finds the log there.

A transaction ID or a serial may be given whole or as a unique prefix, in any case
(engine/ca/lookup.py), except to `revoke`, which needs the whole serial; serials print as the
router prints them. `ca serve` prints one line per request event on standard output
(engine/ca/console.py), JSON lines with `--log-json`.
    trustledger ca sign DIR --csr FILE [--out FILE] [--days N]
    (init, serve, sign and rollover also take --clock ISO-TIME)

`ca sign` signs a PKCS#10 request carried from a device (cut-and-paste enrollment): FILE holds
what the device printed (PEM between BEGIN/END CERTIFICATE REQUEST lines, other lines
ignored), bare base64 or DER; `-` reads standard input. The certificate (PEM) goes to standard
output or to `--out FILE`; `--days` overrides the CA's certificate validity.

`ca serve --ldap-url ldap://HOST:PORT/DN` (an RFC 4516 URL, spaces as %20) names a directory
entry: issued certificates carry it as a second name of their CRL distribution point (after
the HTTP one), and every new CRL is written to the entry's certificateRevocationList;binary
(engine/ca/ldap_publish.py); serving starts only once the current CRL is there. A CRL the
directory refuses later is logged and tried again every 30 seconds. `ca publish-crl --ldap`
writes the current CRL once (creating the entry, objectClass cRLDistributionPoint, if absent).
`--bind-dn DN --password-file F` bind as DN with the first line of F; without them the bind
is anonymous.

`ca serve --workers N` serves HTTP from N worker processes while the serving process stays
the one writer of the CA's log; `--workers 1` serves from one process. The default is one
per CPU but one (`default_workers`): the serving process is busy itself, so on 2 CPUs the
default is one process.

The static challenge password of `ca serve` comes from `--challenge-file FILE` (its first
line) or `--challenge PW`, else from `$TRUSTLEDGER_CA_CHALLENGE`. Other local users can read a
process's command line (/proc/PID/cmdline, `ps`), so `--challenge` shows them the password;
a file (mode 0600) or the environment (readable by the same user and root only) does not.
The variable is removed from the environment once read, so worker processes do not inherit it.

`--days` is the CA certificate's validity (default 3650), `--cert-days` that of the
certificates it issues (default 365). Approval: `--approval auto` (default) issues at once to a
request with a valid challenge password (static `--challenge`, or one-time from `ca challenge`)
or a renewal signed by a current certificate for the same subject and subjectAltNames (once
per certificate); `--approval manual` (shorthand `--manual`) answers PENDING until
`ca approve` / `ca reject`.

`--clock ISO-TIME` (init, serve, sign) starts the CA's clock at that time (UTC unless the time
names its zone); it then runs on, for that run only: a test or a what-if session can issue,
renew and publish CRLs weeks ahead. It is not recorded as an event: every decision's time is
already in the log (each event's time, and the validity dates inside the certificates and CRLs
it signs), so replay never reads the clock, and an offset recorded in the log would carry a
test's clock over into the next run. `ca serve --clock` says so on its first line.
`sign --clock` while a server runs is refused: the server's clock decides.

While `ca serve` runs it holds the CA log's write lock. `challenge`, `approve`, `reject`,
`revoke` and `sign` then go through the server's loopback admin endpoint (engine/ca/admin.py);
`requests` and `list` read the log read-only. Without a running server they act on DIR directly.

The integrator's `trustledger` calls `register(subparsers)`; every leaf sets `func`, so
`args.func(args)` runs the command and returns the exit status. `python -m engine.ca.cli ...`
works stand-alone.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine import logsetup
from engine.ca import admin, ldap_publish, lookup, offline, rollover_cli
from engine.ca.console import MESSAGE_TYPES, Console, console_logger, router_serial
from engine.ca.decide import Approval
from engine.ca.errors import CAError, NotACA
from engine.ca.keyfile import KEY_SPECS
from engine.ca.profile import REASONS
from engine.ca.service import (
    DEFAULT_CA_DAYS,
    DEFAULT_CERTIFICATE_DAYS,
    DEFAULT_SUBJECT,
    BuiltinCA,
    CALocked,
)
from engine.ca.state import CRL, CAState, IssuedCertificate, Request, RequestStatus
from engine.certids import fingerprint_lines
from engine.errors import Reason
from engine.ports import EngineClock, SystemClock, from_micros, to_micros
from engine.storebinding import Binding, BindingError, resolve

Handler = Callable[[argparse.Namespace], int]
DIR_HELP = "the CA's directory (made by `ca init`)"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the `ca` command and its subcommands to a `trustledger` parser."""
    ca = subparsers.add_parser("ca", help="the built-in SCEP CA",
                               description="The built-in SCEP CA (RFC 8894).")
    sub = ca.add_subparsers(dest="ca_command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="create a CA in DIR")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    _store_options(p)
    p.add_argument("--subject", default=DEFAULT_SUBJECT, metavar="DN",
                   help=f"CA subject, RFC 4514 or /-separated (default {DEFAULT_SUBJECT!r})")
    p.add_argument("--key", default="rsa:2048", choices=KEY_SPECS,
                   help="CA key type: RSA with that modulus, or ECDSA on P-256")
    p.add_argument("--days", type=_days, default=DEFAULT_CA_DAYS, metavar="N",
                   help=f"CA certificate validity in days (default {DEFAULT_CA_DAYS})")
    p.add_argument("--cert-days", type=_days, default=DEFAULT_CERTIFICATE_DAYS,
                   metavar="N", help="validity of issued certificates in days "
                                     f"(default {DEFAULT_CERTIFICATE_DAYS})")
    _clock_option(p)
    p.add_argument("--ra", action="store_true",
                   help="separate RA signing and encryption certificates (like Windows NDES)")
    p.set_defaults(func=_init)

    _add_serve(sub)

    p = sub.add_parser("challenge", help="mint a one-time challenge password")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument("--valid-minutes", type=_positive, default=60, metavar="N",
                   help="minutes until the password expires")
    p.set_defaults(func=_challenge)

    p = sub.add_parser("requests", help="list pending requests (--all: every request)")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument("--all", action="store_true",
                   help="every request ever received, whatever became of it")
    p.set_defaults(func=_requests)

    for name, func, what in (("approve", _approve, "a pending request, or a rejected one"),
                             ("reject", _reject, "a pending request, or an approved one whose "
                                                 "certificate is not issued yet")):
        p = sub.add_parser(name, help=f"{name} {what}")
        p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
        p.add_argument("txid", metavar="TXID",
                       help="its transaction ID, or a unique prefix (see `ca requests`)")
        if name == "reject":
            p.add_argument("--reason", default="", metavar="TEXT",
                           help="why, recorded and sent to the client (default: "
                                "'rejected by the operator')")
        p.set_defaults(func=func)

    p = sub.add_parser("revoke", help="revoke a certificate and issue a new CRL")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument("serial", metavar="SERIAL",
                   help="the whole hex serial as `ca list` prints it (no prefix: a "
                        "revocation cannot be undone)")
    p.add_argument("--reason", default="unspecified", metavar="R",
                   help=f"RFC 5280 reason: {', '.join(REASONS)}")
    p.set_defaults(func=_revoke)

    p = sub.add_parser("list", help="list issued certificates")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="one certificate or request in full")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument("id", metavar="SERIAL|TXID",
                   help="a certificate's serial or a request's transaction ID, or a unique "
                        "prefix of either")
    p.set_defaults(func=_show)

    _add_rollover(sub)
    _add_publish_crl(sub)

    p = sub.add_parser("sign", help="sign a PKCS#10 request carried from a device (offline)")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument("--csr", required=True, metavar="FILE",
                   help="the request as the device printed it (PEM), base64 or DER; - = stdin")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write the certificate (PEM) here instead of standard output")
    _clock_option(p)
    p.add_argument("--days", type=_days, metavar="N",
                   help="validity in days (default: the CA's --cert-days)")
    p.set_defaults(func=_sign)


def _add_rollover(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rollover", help="make the CA's next key and certificate (GetNextCACert)")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument("--days", type=_days, metavar="N",
                   help="validity after the current CA certificate expires (default: as long "
                        "as the current one)")
    _clock_option(p)
    p.set_defaults(func=_rollover)


def _add_publish_crl(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("publish-crl", help="write the current CRL to an LDAP directory entry")
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument("--ldap", required=True, metavar="URL",
                   help="the entry, ldap://HOST[:PORT]/DN (spaces as %%20)")
    _bind_options(p)
    p.set_defaults(func=_publish_crl)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the SCEP server", epilog=(
        f"Without --challenge-file or --challenge, ${CHALLENGE_ENV} (if set) is the static "
        "challenge password. --challenge is the easy way and the leaky one: other local users "
        "see a command line (ps, /proc/PID/cmdline), not a 0600 file or the environment."))
    p.add_argument("dir", type=Path, metavar="DIR", help=DIR_HELP)
    _store_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_port, default=8080, help="TCP port; 0: any free port")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--challenge-file", type=Path, metavar="FILE",
                        help="read the static challenge password from the first line of FILE "
                             "(keep it mode 0600)")
    secret.add_argument("--challenge", metavar="PW",
                        help="static challenge password, given on the command line: other "
                             "local users see it in the process list (/proc/PID/cmdline); "
                             f"prefer --challenge-file or ${CHALLENGE_ENV}")
    p.add_argument("--strict", action="store_true",
                   help="refuse DES, 3DES and SHA-1 with badAlg, and a first request "
                        "signed by another key than the one it asks a certificate for "
                        "with badRequest")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--approval", choices=[a.value for a in Approval], default="auto",
                      help="auto: issue at once to authorized requests; manual: PENDING "
                           "until `ca approve`")
    mode.add_argument("--manual", dest="approval", action="store_const", const="manual",
                      help="same as --approval manual")
    p.add_argument("--public-url", metavar="URL", type=_public_url,
                   help="base URL clients reach this server at (for the CRL distribution "
                        "point; default: the bound address)")
    p.add_argument("--log-json", action="store_true",
                   help="the console's event lines (pending, issued, rejected, refused, "
                        "renewed, CRL published, ...) as one JSON object per line")
    p.add_argument("--ldap-url", metavar="URL",
                   help="also publish each CRL to this LDAP entry, ldap://HOST[:PORT]/DN "
                        "(spaces as %%20), and name it in issued certificates' CDP")
    _bind_options(p)
    _clock_option(p)
    p.add_argument("--workers", type=_positive, default=default_workers(usable_cpus()),
                   metavar="N",
                   help="HTTP worker processes (default: one per CPU this process may run on "
                        f"but one, here {default_workers(usable_cpus())}); 1 serves from this "
                        "process alone")
    p.set_defaults(func=_serve)


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, metavar="URL",
                   help="keep the CA's log in this PostgreSQL store (recorded, without a "
                        "password, in DIR/STORE: the other `ca` commands find it there; "
                        "default: $TRUSTLEDGER_STORE with --device)")
    p.add_argument("--device", default=None, metavar="ID",
                   help="the CA log's ID in --store (default: what DIR/STORE records)")


def ca_store(args: argparse.Namespace) -> Binding | None:
    """The store `--store`/`--device` (or DIR/STORE) name for the CA's log; None: DIR/log."""
    root = args.dir if args.dir.is_dir() else None
    try:
        return resolve(root, args.store, args.device)
    except BindingError as e:
        raise CAError(e.reason, e.text) from None


def _bind_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind-dn", metavar="DN",
                   help="bind to the directory as DN (default: anonymously)")
    p.add_argument("--password-file", type=Path, metavar="FILE",
                   help="the bind password: the first line of FILE (keep it mode 0600)")


def ldap_publisher(args: argparse.Namespace, url: str) -> ldap_publish.CrlPublisher:
    """The publisher of `--ldap-url`/`--ldap URL` with `--bind-dn`/`--password-file`."""
    target = ldap_publish.LdapTarget.parse(url)
    if (args.bind_dn is None) != (args.password_file is None):
        raise CAError(Reason.INCOMPLETE, "--bind-dn and --password-file go together (neither: "
                                         "an anonymous bind)")
    password = (None if args.password_file is None
                else _read_challenge_file(args.password_file, "bind password"))
    return ldap_publish.CrlPublisher(target, ldap_publish.Credentials(args.bind_dn, password))


def _clock_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clock", type=_iso_time, metavar="ISO-TIME",
                   help="start the CA's clock at this time (UTC unless it names a zone, e.g. "
                        "2027-01-15T09:00:00Z); it runs on from there, for this run only")


def _port(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port), or argparse's usage error."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0-65535): {text!r}")
    return int(text)


def _public_url(text: str) -> str:
    """An http(s) base URL without a user name or password (it goes into every issued
    certificate's CRL distribution point, which routers record and show), or argparse's
    usage error; the message never repeats the URL."""
    from engine.grammar import ArgRefused, http_url, no_userinfo

    try:
        http_url(text)  # what an enrollment url must be: http(s), a host, a port that parses
    except ValueError:
        raise argparse.ArgumentTypeError("an http:// or https:// base URL with a host and a "
                                         "valid port is needed") from None
    try:
        no_userinfo(text)
    except ArgRefused as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _iso_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. "
                                         "2027-01-15T09:00:00Z)") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def ca_clock(args: argparse.Namespace) -> EngineClock | None:
    """The CA's clock for `--clock`: the system clock, offset to read that time now."""
    start: datetime | None = getattr(args, "clock", None)
    if start is None:
        return None
    clock = EngineClock(SystemClock())
    clock.offset_us = clock.offset_to(to_micros(start))
    return clock


CHALLENGE_ENV = "TRUSTLEDGER_CA_CHALLENGE"
MAX_CHALLENGE = 1024


def static_challenge(args: argparse.Namespace) -> str | None:
    """The static challenge password of `ca serve`: from --challenge-file or --challenge, else
    from $TRUSTLEDGER_CA_CHALLENGE (removed from the environment in any case: worker processes
    do not need it); None for none. CAError for a file that cannot be used."""
    from_env = os.environ.pop(CHALLENGE_ENV, None)
    if args.challenge_file is not None:
        return _read_challenge_file(args.challenge_file)
    if args.challenge is not None:
        password: str = args.challenge
    elif from_env is not None:
        password = from_env
    else:
        return None
    if not password:
        raise CAError(Reason.INVALID_VALUE, "the challenge password is empty")
    return password


def _read_challenge_file(path: Path, what: str = "challenge password") -> str:
    try:
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read(MAX_CHALLENGE + 1)
    except OSError as e:
        raise CAError(Reason.NOT_FOUND, f"cannot read {path}: {e.strerror}") from None
    if stat.S_ISREG(mode) and mode & 0o077:
        print(f"% warning: {path} is accessible by other users (mode "
              f"{stat.S_IMODE(mode):04o}); chmod 600 it", file=sys.stderr)
    first = data.split(b"\n", 1)[0].removesuffix(b"\r")
    if len(first) > MAX_CHALLENGE:
        raise CAError(Reason.INVALID_VALUE, f"{path}: the {what} is longer than "
                                            f"{MAX_CHALLENGE} bytes")
    try:
        password = first.decode("utf-8")
    except UnicodeDecodeError:
        raise CAError(Reason.INVALID_VALUE, f"{path} is not UTF-8 text") from None
    if not password:
        raise CAError(Reason.INVALID_VALUE, f"{path} holds no {what} (its first "
                                            "line is empty)")
    return password


def usable_cpus() -> int | None:
    """The CPUs this process may run on (its affinity mask: `taskset`, a container's cpuset),
    not the machine's count, which would oversubscribe a confined `ca serve`."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # a platform without affinity masks
        return os.cpu_count()


def default_workers(cpus: int | None) -> int:
    """`ca serve`'s worker processes when `--workers` is not given: one per CPU but one.

    The serving process (the decider: it decides, appends, signs every certificate) is busy
    itself: ~1.0 of each enrollment's ~2.7 ms of CPU (tools/bench/scep_bench.py), so one
    worker per CPU beside it oversubscribes the machine. With 2 CPUs that leaves 1: everything
    in one process, whose threads already use both CPUs (cryptography releases the GIL in RSA
    operations, ~40% of an enrollment). Measured on 2 shared CPUs, five runs: one process
    used less CPU per enrollment than the decider with 2 workers in every run (2.40-2.67 vs
    2.53-2.80 ms) and issued 0.90-1.38x as many certificates per second (median 1.05x)."""
    return max(1, (cpus or 1) - 1)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


MAX_DAYS = 36_500
"""A validity of at most 100 years: longer ones overflow dates (a rollover adds the old
certificate's lifetime) and no CA wants them."""


def _days(text: str) -> int:
    value = _positive(text)
    if value > MAX_DAYS:
        raise argparse.ArgumentTypeError(f"at most {MAX_DAYS} (100 years)")
    return value


def _init(args: argparse.Namespace) -> int:
    with BuiltinCA.init(args.dir, subject=args.subject, key=args.key, days=args.days,
                        certificate_days=args.cert_days, ra=args.ra,
                        clock=ca_clock(args), audit=True, store=ca_store(args)) as ca:
        cert = ca.ca_certificate
        print(f"CA initialized in {args.dir}")
        print(f"  subject:      {cert.subject.rfc4514_string()}")
        print(f"  key:          {args.key} ({args.dir / 'ca.key'}, mode 0600)")
        print(f"  certificate:  {args.dir / 'ca.pem'}")
        print(f"  valid until:  {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
        ra = ca.ra_certificates()
        if ra is not None:
            print(f"  RA signing:   {ra[0].subject.rfc4514_string()}")
            print(f"  RA encryption:{ra[1].subject.rfc4514_string()}")
        print("The CA certificate's fingerprint, as `crypto ca authenticate` shows it on the "
              "router:")
        for line in fingerprint_lines(cert.public_bytes(serialization.Encoding.DER)):
            print(line)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from engine.ca.server import serve  # the HTTP stack only for this command

    if not structlog.is_configured():  # `trustledger` configures it; stand-alone, we do
        logsetup.configure(default="info")
    challenge = static_challenge(args)
    publisher = None if args.ldap_url is None else ldap_publisher(args, args.ldap_url)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with BuiltinCA.open(args.dir, clock=ca_clock(args), audit=True,
                        store=ca_store(args)) as ca:
        ca.console = Console(console_logger(sys.stdout, as_json=args.log_json))
        _say_log_notice(ca)
        if publisher is not None:  # the directory has the current CRL before anyone asks
            publisher.publish(ca.current_crl())
            ca.ldap_url, ca.on_crl_published = publisher.target.cdp, publisher
        if args.clock is not None:
            print(f"CA clock set to {ca.clock.now():%Y-%m-%d %H:%M:%S} UTC for this run "
                  "(--clock; not recorded in the log)", flush=True)
        # The replayed state and everything imported live as long as the server: keep the
        # cyclic collector from walking them again and again under load.
        gc.freeze()
        server = serve(ca, args.host, args.port, approval=Approval(args.approval),
                       challenge=challenge, strict=args.strict, public_url=args.public_url,
                       workers=args.workers)
        try:
            print(f"SCEP server for {ca.ca_certificate.subject.rfc4514_string()} "
                  f"listening on {server.url}")
            print(f"  enrollment URLs: {server.scep_url}  {server.url}/cgi-bin/pkiclient.exe")
            print(f"  CRL:             {server.crl_url}")
            if ca.ldap_url is not None:
                print(f"  CRL (LDAP):      {ca.ldap_url}")
            for line in rollover_cli.generation_lines(ca.state, ca.clock.now_us()):
                print(f"  {line}")
            print(f"  approval: {args.approval}; static challenge: "
                  f"{'yes' if challenge else 'no'}; strict: "
                  f"{'yes' if args.strict else 'no'}; workers: "
                  + (", ".join(map(str, server.pool.pids())) if server.pool is not None
                     else "none (one process)"), flush=True)
            failed = server.pool.failed if server.pool is not None else threading.Event()
            while not stop.wait(0.5):
                if publisher is not None:
                    publisher.retry_due()
                ca.write_out_audit()
                if failed.is_set():
                    print("% the CA's decider failed (see the log above); stopped serving",
                          file=sys.stderr)
                    return 1
                if ca.unavailable is not None:  # restarting reopens (recovers) the log
                    said = ca.unavailable.message.rstrip(".")  # a sentence may end in '.'
                    print(f"{said}; stopped serving.", file=sys.stderr)
                    return 1
        finally:
            server.stop()
    return 0


def _rollover(args: argparse.Namespace) -> int:
    return rollover_cli.rollover(args, ca_clock(args))


def _on_ca(root: Path, local: Callable[[BuiltinCA], dict[str, Any]], action: str,
           remote_args: dict[str, Any], clock: EngineClock | None = None) -> dict[str, Any]:
    """Run a write command on DIR directly, or through the running server's admin endpoint
    (whose clock decides: a `--clock` of this command is refused then)."""
    try:
        ca = BuiltinCA.open(root, clock=clock, audit=True)
    except CALocked:
        if clock is not None:
            raise CAError(Reason.NOT_ALLOWED, f"{root} is being served (`ca serve`): its clock "
                                              "is the server's; leave out --clock, or stop the "
                                              "server") from None
        return admin.call(root, action, remote_args)
    with ca:
        _say_log_notice(ca)
        return local(ca)


def _say_log_notice(ca: BuiltinCA) -> None:
    """What opening the CA's log repaired, or (read-only) found to repair: one line."""
    if ca.log_notice:
        print(ca.log_notice, file=sys.stderr)


def _challenge(args: argparse.Namespace) -> int:
    minutes = args.valid_minutes
    result = _on_ca(args.dir, lambda ca: {
        "password": ca.mint_challenge(timedelta(minutes=minutes))}, "challenge",
        {"valid_minutes": minutes})
    print(f"One-time challenge password (valid for {minutes} minutes, usable once):")
    print(result["password"])
    return 0


def _resolved(root: Path, find: Callable[[CAState, str], str], typed: str) -> str:
    """The full transaction ID or serial `typed` names (see engine/ca/lookup.py), read from
    the CA's log read-only (a running server holds the write lock, not the readers)."""
    with BuiltinCA.open(root, readonly=True) as ca:
        return find(ca.state, typed)


def _approve(args: argparse.Namespace) -> int:
    args.txid = _resolved(args.dir, lookup.find_transaction, args.txid)

    def local(ca: BuiltinCA) -> dict[str, Any]:
        cert = ca.approve(args.txid)
        return {"serial": cert.serial if cert else None}

    result = _on_ca(args.dir, local, "approve", {"transaction_id": args.txid})
    if result.get("serial"):
        print(f"Request {args.txid} approved; certificate {router_serial(result['serial'])} "
              "issued.")
    else:
        print(f"Request {args.txid} approved; the certificate is issued when `ca serve` "
              "next runs.")
    return 0


def _reject(args: argparse.Namespace) -> int:
    args.txid = _resolved(args.dir, lookup.find_transaction, args.txid)

    def local(ca: BuiltinCA) -> dict[str, Any]:
        ca.reject(args.txid, args.reason)
        return {}

    _on_ca(args.dir, local, "reject", {"transaction_id": args.txid, "reason": args.reason})
    print(f"Request {args.txid} rejected.")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    args.serial = _resolved(args.dir, lookup.find_whole_serial, args.serial)
    result = _on_ca(args.dir, lambda ca: {"crl_number": ca.revoke(args.serial, args.reason)
                                          .number}, "revoke",
                    {"serial": args.serial, "reason": args.reason})
    print(f"Certificate {router_serial(args.serial)} revoked ({args.reason}); CRL number "
          f"{result['crl_number']} issued.")
    return 0


def _publish_crl(args: argparse.Namespace) -> int:
    publisher = ldap_publisher(args, args.ldap)
    crl = _current_crl(args.dir)
    publisher.publish(crl)
    print(f"CRL number {crl.number} (next update {_time(crl.next_update)} UTC) published to "
          f"{publisher.target.url}")
    return 0


def _current_crl(root: Path) -> CRL:
    """The CA's current CRL: re-issued first if it is due, unless a server holds the log (it
    keeps the CRL it serves current)."""
    try:
        with BuiltinCA.open(root) as ca:
            _say_log_notice(ca)
            return ca.current_crl()
    except CALocked:
        with BuiltinCA.open(root, readonly=True) as ca:
            crl = ca.state.crl
    assert crl is not None  # `init` issues the first one
    return crl


def _sign(args: argparse.Namespace) -> int:
    try:
        data = (sys.stdin.buffer.read(offline.MAX_CSR_FILE + 1) if args.csr == "-"
                else Path(args.csr).read_bytes())
    except OSError as e:
        raise CAError(Reason.NOT_FOUND, f"cannot read {args.csr}: {e.strerror}") from None
    der = offline.read_pasted_csr(data)
    offline.verified_request(der)  # refuse junk before touching the CA or its server
    result = _on_ca(args.dir, lambda ca: admin.issued_summary(ca.sign_offline(der,
                                                                             days=args.days)),
                    "sign", {"csr": base64.b64encode(der).decode("ascii"), "days": args.days},
                    ca_clock(args))
    pem = str(result["certificate"])
    summary = (f"Certificate {router_serial(result['serial'])} issued to {result['subject']} "
               f"(transaction {result['transaction_id']}), valid until "
               f"{_time(int(result['not_after']))} UTC"
               + ("" if result["crl_dp"] else "; no CRL distribution point (the CA's URL is "
                                                "known only while `ca serve` runs)"))
    if args.out is not None:
        try:
            args.out.write_text(pem)
        except OSError as e:
            raise CAError(Reason.INVALID_VALUE,
                          f"cannot write {args.out}: {e.strerror} (the certificate is issued; "
                          f"see `ca list`)") from None
        print(f"{summary}; written to {args.out}")
    else:
        print(summary, file=sys.stderr)
        print(pem, end="")
    return 0


def _time(us: int) -> str:
    return f"{from_micros(us):%Y-%m-%d %H:%M:%S}"


def _requests(args: argparse.Namespace) -> int:
    with BuiltinCA.open(args.dir, readonly=True) as ca:
        _say_log_notice(ca)
        reqs = ca.requests(None if args.all else RequestStatus.PENDING)
    if not reqs:
        print("No pending requests." if not args.all else "No requests.")
        return 0
    rows = [(r.transaction_id, r.status.value,
             MESSAGE_TYPES.get(r.message_type, str(r.message_type)), r.authorization,
             _time(r.received_at), r.subject_text) for r in reqs]
    _table(("TRANSACTION ID", "STATUS", "TYPE", "AUTHORIZED BY", "RECEIVED (UTC)", "SUBJECT"),
           rows)
    return 0


def _list(args: argparse.Namespace) -> int:
    with BuiltinCA.open(args.dir, readonly=True) as ca:
        _say_log_notice(ca)
        certs = ca.certificates()
        now = to_micros(ca.clock.now())
        for line in rollover_cli.generation_lines(ca.state, now):
            print(line)
    if not certs:
        print("No certificates issued.")
        return 0
    rows = []
    for c in certs:
        rows.append((router_serial(c.serial), _status(c, now), _time(c.not_after),
                     c.subject_text))
    _table(("SERIAL", "STATUS", "NOT AFTER (UTC)", "SUBJECT"), rows)
    return 0


def _status(c: IssuedCertificate, now: int) -> str:
    if c.revoked_at is not None:
        return f"revoked ({c.revocation_reason})"
    return "expired" if c.not_after < now else "valid"


def _show(args: argparse.Namespace) -> int:
    with BuiltinCA.open(args.dir, readonly=True) as ca:
        kind, key = lookup.find_any(ca.state, args.id)
        now = to_micros(ca.clock.now())
        if kind == "certificate":
            cert = ca.state.certificates[key]
            lines = _certificate_lines(cert, now)
            issuer = rollover_cli.issuer_line(ca.state, cert.ca_generation, now)
            print("\n".join([*lines[:6], issuer, *lines[6:]] if issuer else lines))
        else:
            reqs = [r for r in ca.requests() if r.transaction_id == key]
            print("\n\n".join("\n".join(_request_lines(r)) for r in reqs))
    return 0


def _certificate_lines(c: IssuedCertificate, now: int) -> list[str]:
    cert = x509.load_der_x509_certificate(c.certificate)
    lines = [f"Certificate {router_serial(c.serial)}",
             f"  Status          : {_status(c, now)}",
             f"  Subject         : {c.subject_text}",
             f"  Transaction ID  : {c.transaction_id}",
             f"  Not before (UTC): {_time(c.not_before)}",
             f"  Not after (UTC) : {_time(c.not_after)}"]
    if c.revoked_at is not None:
        lines.append(f"  Revoked (UTC)   : {_time(c.revoked_at)}")
    if c.renewed_by is not None:
        lines.append(f"  Renewed by      : {router_serial(c.renewed_by)}")
    lines += [f"  {line}" for line in fingerprint_lines(c.certificate)]
    lines.append(cert.public_bytes(serialization.Encoding.PEM).decode("ascii").rstrip())
    return lines


def _signer(r: Request) -> str:
    """Which key signed the pkiMessage: the requested one (RFC 8894 §2.3 SHOULD) or another,
    e.g. a client's throwaway identity key, named by its SubjectPublicKeyInfo's SHA-256."""
    if r.signer_key_sha256 == hashlib.sha256(r.public_key).digest():
        return "the requested key"
    return f"another key (SPKI SHA-256 {r.signer_key_sha256.hex().upper()})"


def _request_lines(r: Request) -> list[str]:
    lines = [f"Request {r.transaction_id}",
             f"  Status          : {r.status.value}",
             f"  Type            : {MESSAGE_TYPES.get(r.message_type, str(r.message_type))}",
             f"  Subject         : {r.subject_text}",
             f"  Received (UTC)  : {_time(r.received_at)}",
             f"  Authorized by   : {r.authorization}"]
    if r.decided_by:
        lines.append(f"  Approved by     : {r.decided_by}")
    if r.reject_reason:
        lines.append(f"  Reject reason   : {r.reject_reason}")
    if r.renewal_of is not None:
        lines.append(f"  Renews          : {router_serial(r.renewal_of)}")
    if r.signer_key_sha256:
        lines.append(f"  Signed with     : {_signer(r)}")
    if r.serial is not None:
        lines.append(f"  Certificate     : {router_serial(r.serial)}")
    return lines


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    from engine.cli import Parser

    parser = Parser(prog="trustledger")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ca", *argv] if argv is not None and argv[:1] != ["ca"]
                             else argv)
    func: Handler = args.func
    # Secrets redacted first (engine.keystore.redact_secrets); `serve` reports at INFO.
    logsetup.configure(default="info" if args.ca_command == "serve" else "warning")
    try:
        return func(args)
    except CAError as e:
        print(e.message, file=sys.stderr)
        return 2 if isinstance(e, NotACA) else 1  # the wrong directory: a command-line mistake


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
