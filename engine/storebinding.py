"""Which event store a data directory's log lives in: its own file log (`DIR/log/`, the
embedded default) or a device's stream in a shared PostgreSQL store (`--store URL --device ID`,
or `$TRUSTLEDGER_STORE`).

Rules
-----
- The data directory stays the device's own: keystore (private keys never go to the shared
  store), snapshots, the audit trail's files (`DIR/audit/`). With a store it holds no log.
- At first use with `--store` the binding is recorded in `DIR/STORE` (0600), one JSON object
  `{"store": URL, "device": ID}`, so a later `--data DIR` alone finds them. The URL is
  recorded, shown and logged WITHOUT its password (`redact`): a password comes from the URL
  given each time, `PGPASSWORD` or `~/.pgpass` (libpq reads both), and never goes to disk.
- Flags that name another store or device than `DIR/STORE` records are refused with a `%`
  error and change nothing; so is `--store` on a directory whose own file log holds events
  (copy it with `trustledger log export DIR | trustledger log import --store URL --device ID`).
- A device ID is 1-128 printable ASCII characters without spaces (it is the stream's log id).

A `show` over a file log imports this module for its names only: json and urllib are loaded
by the functions that read or write a binding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import OperatorError, Reason

STORE_FILE = "STORE"
STORE_ENV = "TRUSTLEDGER_STORE"
AUDIT_DIR = "audit"  # DIR/audit/: the audit trail's files when the log is in a shared store
SCHEMES = ("postgresql", "postgres")


class BindingError(OperatorError):
    """The store, the device and the data directory do not agree (the text says how)."""


@dataclass(frozen=True)
class Binding:
    """A device's stream in a shared store. `url` is what connects (it may hold the password
    the operator typed); `shown` is the same URL without it, for files and messages."""

    url: str
    device: str

    @property
    def shown(self) -> str:
        return redact(self.url)


def redact(url: str) -> str:
    """`url` without a password (in the authority or as a `password=` parameter); a URL too
    malformed to parse loses everything between `user:` and the last `@` instead."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        import re

        url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1", url)
        return re.sub(r"^([^/]*//[^:/@]*):[^/]*@", r"\1@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{hosts}" if user else hosts
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k.lower() != "password"], quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_url(url: str) -> str:
    """`url` if it is a PostgreSQL URL; BindingError (naming it without a password) if not."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        scheme, _ = parts.scheme, parts.port  # .port: ValueError if it is not a number
    except ValueError:
        scheme = ""
    if scheme not in SCHEMES:
        raise BindingError(Reason.INVALID_VALUE, "--store must be a PostgreSQL URL "
                           f"(postgresql://USER@HOST:PORT/DATABASE), not {redact(url)!r}.")
    return url


def check_device(device: str) -> str:
    if not 1 <= len(device) <= 128 or not all("!" <= ch <= "~" for ch in device):
        shown = device if len(device) <= 40 else device[:40] + "..."
        raise BindingError(Reason.INVALID_VALUE, f"--device {shown!r}: a device ID is 1-128 "
                           "printable ASCII characters without spaces.")
    return device


def recorded(root: Path) -> Binding | None:
    """The binding `root/STORE` records (its URL has no password), or None."""
    import json

    path = root / STORE_FILE
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        url, device = obj["store"], obj["device"]
        if not isinstance(url, str) or not isinstance(device, str):
            raise TypeError("not strings")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BindingError(Reason.BAD_DATA, f"{path} is damaged ({e}): it should name the "
                           "store and the device this data directory belongs to.") from None
    return Binding(check_url(url), check_device(device))


def resolve(root: Path | None, store: str | None, device: str | None) -> Binding | None:
    """The store a command line means (None: the data directory's own file log), from
    `--store` (else, when `--device` is given, `$TRUSTLEDGER_STORE`), `--device` and what
    `root/STORE` records; a BindingError if they disagree. Writes nothing (see `record`)."""
    if store is None and device is not None:
        store = os.environ.get(STORE_ENV) or None
    url = store
    known = recorded(root) if root is not None else None
    if url is None:
        if device is not None and known is None:
            raise BindingError(Reason.INCOMPLETE, f"--device {device} needs --store URL (or "
                               f"${STORE_ENV}).")
        if known is not None and device is not None and device != known.device:
            raise _mismatch(root, known, known.shown, device)
        return known
    check_url(url)
    if device is None:
        if known is None:
            raise BindingError(Reason.INCOMPLETE, "--store needs --device ID (the device "
                               "whose log to use).")
        device = known.device
    check_device(device)
    if known is not None and (not same_store(url, known.url) or device != known.device):
        raise _mismatch(root, known, redact(url), device)
    return Binding(url, device)


def same_store(a: str, b: str) -> bool:
    """Whether two store URLs name the same database: compared by scheme (postgres and
    postgresql are one), user, host, port (5432 if none), database (the user's name if
    none); a password or options that do not change which database it is
    (`application_name`, `sslmode`, `connect_timeout`, ...) are ignored."""
    return _identity(a) == _identity(b)


def _identity(url: str) -> tuple[str, str, str, str]:
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(url)
    query = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
    user = query.get("user") or unquote(parts.username or "")
    host = query.get("host") or unquote(parts.hostname or "")  # %2F: a socket directory
    port = query.get("port") or (str(parts.port) if parts.port else "5432")
    dbname = query.get("dbname") or unquote(parts.path.lstrip("/")) or user
    return user, host, port, dbname


def _mismatch(root: Path | None, known: Binding, url: str, device: str) -> BindingError:
    return BindingError(Reason.INVALID_VALUE, f"Data directory {root} belongs to device "
                        f"{known.device} in {known.url}, not to device {device} in {url}: "
                        "refusing to mix them.")


def record(root: Path, binding: Binding) -> None:
    """Bind the data directory `root` to `binding` (first use): `root/STORE`, 0600, without
    the password. A directory whose own file log holds events is refused."""
    if recorded(root) is not None:
        return
    refuse_own_log(root)
    import json

    body = json.dumps({"store": binding.shown, "device": binding.device}) + "\n"
    tmp = root / (STORE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, root / STORE_FILE)


def refuse_own_log(root: Path) -> None:
    """BindingError if `root` keeps its own file log with events (it cannot use a store)."""
    log = root / "log"
    if log.is_dir() and any(log.glob("*.seg")):
        raise BindingError(Reason.NOT_ALLOWED, f"Data directory {root} keeps its own event log "
                           f"({log}): it cannot use --store. To move the device into the "
                           f"store with its keys (they stay in {root}; a new data directory "
                           f"would have none of them): `trustledger log export {root} | "
                           "trustledger log import --store URL --device ID`, move "
                           f"{log} aside, then use {root} with --store URL --device ID --adopt.")
