"""Publishing the built-in CA's CRL to an LDAP directory entry (issue 16 item 4).

Where: one directory entry, named by an RFC 4516 URL `ldap://HOST[:PORT]/DN` (spaces in the
DN as %20). `LdapTarget.parse` reads it; `LdapTarget.cdp` is the URL put in issued
certificates beside the HTTP one (`ca serve --ldap-url`):

    ldap://HOST:PORT/DN?certificateRevocationList;binary?base?objectClass=cRLDistributionPoint

so a relying party reads the attribute with a base-scope search, as Windows and IOS CAs
publish it. A URL given with a query must ask for that attribute (with or without `;binary`)
at base scope; anything else names something we would not write.

What: `publish_crl` replaces the entry's `certificateRevocationList;binary` with the CRL's DER
(an ldap3 modify). An entry that does not exist yet is created with objectClass
`cRLDistributionPoint` (core.schema: STRUCTURAL, MUST cn), so its DN must start with `cn=`;
its parent must exist. The bind is simple (`--bind-dn` and a password from a file) or
anonymous; directories rarely let anonymous users write, and say so (strongerAuthRequired).

Errors: every failure is one `CAError` sentence naming the URL and what the directory said
(unreachable, refused credentials, no parent entry, ...); nothing is retried here. The
serving CA's `CrlPublisher` remembers a CRL it could not publish and tries it again later
(`retry_due`), never publishing an older CRL over a newer one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import ldap3
import structlog
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from engine.ca.errors import CAError
from engine.ca.state import CRL
from engine.errors import PeerReason, Reason

ATTRIBUTE = "certificateRevocationList;binary"
OBJECT_CLASS = "cRLDistributionPoint"
DEFAULT_PORT = 389
DEFAULT_TIMEOUT = 5.0
RETRY_SECONDS = 30.0

log = structlog.get_logger("trustledger.ca")


@dataclass(frozen=True, slots=True)
class LdapTarget:
    """The directory entry a CRL is published to."""

    host: str
    port: int
    dn: str

    @classmethod
    def parse(cls, url: str) -> LdapTarget:
        """The entry `url` names; CAError (invalid value) for anything else."""
        usage = f"not an LDAP entry URL: {url!r} (ldap://HOST[:PORT]/DN, spaces as %20)"
        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise CAError(Reason.INVALID_VALUE, usage) from None
        if parts.scheme.lower() != "ldap" or not parts.hostname or parts.fragment:
            raise CAError(Reason.INVALID_VALUE, usage)
        dn = unquote(parts.path.removeprefix("/"))
        if not dn:
            raise CAError(Reason.INVALID_VALUE, usage)
        try:
            parse_dn(dn)
        except LDAPInvalidDnError:
            raise CAError(Reason.INVALID_VALUE, f"not a distinguished name: {dn!r} (in "
                                                f"{url})") from None
        _check_query(url, parts.query)
        return cls(parts.hostname, port, dn)

    @property
    def url(self) -> str:
        """`ldap://HOST:PORT/DN`, for messages."""
        return f"ldap://{self._authority}/{self._path}"

    @property
    def cdp(self) -> str:
        """The RFC 4516 URL relying parties read the CRL from."""
        return f"{self.url}?{ATTRIBUTE}?base?objectClass={OBJECT_CLASS}"

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def _path(self) -> str:
        # RFC 4516 §2: a DN's characters outside the URI's unreserved set are %-escaped;
        # '=' and ',' are kept, as every directory's CDP writes them.
        return quote(self.dn, safe="=,+")


def _check_query(url: str, query: str) -> None:
    """A query, if given, must name the attribute we write, at base scope."""
    if not query:
        return
    attrs, scope = ([unquote(q) for q in query.split("?")] + ["", ""])[:2]
    if attrs.lower() not in ("", ATTRIBUTE.lower(), "certificaterevocationlist") or \
            scope.lower() not in ("", "base"):
        raise CAError(Reason.INVALID_VALUE, f"{url} asks for {attrs or 'all attributes'} at "
                                            f"{scope or 'base'} scope: a CRL is published to "
                                            f"{ATTRIBUTE} of one entry (base)")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A simple bind (`--bind-dn`, password from `--password-file`), or anonymous."""

    bind_dn: str | None = None
    password: str | None = field(default=None, repr=False)


def publish_crl(target: LdapTarget, der: bytes, credentials: Credentials = Credentials(),
                timeout: float = DEFAULT_TIMEOUT) -> None:
    """Write `der` to the entry's certificateRevocationList;binary, creating the entry if it is
    absent. CAError (a PeerReason) for whatever the directory or the network refused."""
    server = ldap3.Server(target.host, port=target.port, get_info=ldap3.NONE,
                          connect_timeout=timeout)
    conn = ldap3.Connection(server, user=credentials.bind_dn, password=credentials.password,
                            receive_timeout=max(1, int(timeout)),  # packed as an int
                            raise_exceptions=False)
    try:
        if not conn.bind():
            raise _refused(target, "bind", conn.result)
        if not conn.modify(target.dn, {ATTRIBUTE: [(ldap3.MODIFY_REPLACE, [der])]}):
            if conn.result.get("description") != "noSuchObject":
                raise _refused(target, "modify", conn.result)
            _add_entry(conn, target, der)
    except LDAPException as e:
        raise CAError(PeerReason.UNREACHABLE, f"Cannot publish the CRL to {target.url}: "
                                              f"{_first_line(e)}") from None
    finally:
        conn.unbind()


def _add_entry(conn: ldap3.Connection, target: LdapTarget, der: bytes) -> None:
    """Create the entry (objectClass cRLDistributionPoint, cn from its first RDN)."""
    attr, value, _ = parse_dn(target.dn)[0]
    if attr.lower() != "cn":
        raise CAError(Reason.NOT_FOUND, f"Cannot publish the CRL to {target.url}: no such "
                                        f"entry, and one can be created only with a cn= name "
                                        f"(objectClass {OBJECT_CLASS})")
    if not conn.add(target.dn, [OBJECT_CLASS], {"cn": value, ATTRIBUTE: der}):
        raise _refused(target, "add", conn.result)


def _refused(target: LdapTarget, operation: str, result: dict[str, object]) -> CAError:
    what = str(result.get("description") or "error")
    detail = str(result.get("message") or "").strip()
    return CAError(PeerReason.REFUSED, f"Cannot publish the CRL to {target.url}: the "
                                       f"directory refused the {operation} ({what}"
                                       + (f": {detail}" if detail else "") + ")")


def _first_line(e: BaseException) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0]


class CrlPublisher:
    """What `ca serve --ldap-url` hangs on the CA (`BuiltinCA.on_crl_published`): publishes
    each new CRL to the entry; one it could not publish is tried again by `retry_due` every
    RETRY_SECONDS until a newer one replaces it. Never publishes a CRL older than one it has
    published. Thread-safe (CRLs are published from request threads)."""

    def __init__(self, target: LdapTarget, credentials: Credentials,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = target
        self._credentials = credentials
        self._timeout = timeout
        self._lock = threading.Lock()
        self._published = 0  # number of the newest CRL in the directory (by us)
        self._failed: CRL | None = None
        self._retry_at = 0.0

    def publish(self, crl: CRL) -> bool:
        """Publish `crl` now: True if written, False if a newer one is there already;
        CAError if the directory cannot be written."""
        with self._lock:
            if crl.number <= self._published:
                return False
            try:
                publish_crl(self.target, crl.der, self._credentials, self._timeout)
            except CAError:
                if self._failed is None or self._failed.number <= crl.number:
                    self._failed, self._retry_at = crl, time.monotonic() + RETRY_SECONDS
                raise
            self._published = crl.number
            if self._failed is not None and self._failed.number <= crl.number:
                self._failed = None
            return True

    def __call__(self, crl: CRL) -> None:
        """The CA's hook: publish, and log (not raise) a failure; `retry_due` tries again."""
        try:
            written = self.publish(crl)
        except CAError as e:
            log.warning("crl not published", to=self.target.url, number=crl.number,
                        error=e.text, retry_in=int(RETRY_SECONDS))
            return
        if written:
            log.info("crl published", to=self.target.url, number=crl.number)

    def retry_due(self) -> None:
        """Try a CRL that failed again, if its retry time has come."""
        with self._lock:
            failed = self._failed
            if failed is None or time.monotonic() < self._retry_at:
                return
        self(failed)
