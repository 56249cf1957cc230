"""LDAP CRL distribution points: RFC 4516 URLs, a bare DN resolved against the trustpoint's
`query url`, and the read itself (ldap3).

    ldap://host[:port]/dn[?attributes[?scope[?filter[?extensions]]]]

The DN and the filter are percent-decoded (`cn=Root%20CA,...`; a raw space, as some CAs
write their CDPs, is taken as it is). What we read is always the `certificateRevocationList;binary`
attribute of the entry at the DN with a base-scope search (the URL's attribute list may
name it; another attribute, or a scope other than base, is refused: the distribution point
is one entry). A bare DN (a CDP given as a directoryName, or `crypto ca crl request` of a
DN) is read from the server the trustpoint's `query url` names.

The attribute is multi-valued (RFC 4523 §2.2 does not make it SINGLE-VALUE): a CA that
publishes its new CRL beside the old one leaves both in the entry, in no order the directory
promises. A read therefore answers every value (`CrlValues`), ranked newest first (a complete
CRL before a delta CRL before a value that is no CRL; then the higher cRLNumber, then the
later thisUpdate), and the caller takes the first that verifies against the issuer
(engine.revocation.verify `newest_verified`): so a stale first value never hides a newer
revocation, and a bogus value with a high cRLNumber (anyone who can write the entry can add
one) never hides the genuine CRL. When none verifies, the newest value's refusal is given.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import quote, unquote

from engine.errors import peer_words

CRL_ATTRIBUTE = "certificateRevocationList;binary"
DEFAULT_PORT = 389
MAX_CRL = 64 << 20  # a CRL larger than 64 MiB is refused


@dataclass(frozen=True, slots=True)
class CrlValues:
    """An LDAP entry's CRL values, newest first (see the module docstring)."""

    values: tuple[bytes, ...]


class LdapUrlError(ValueError):
    """Not an LDAP URL we can read a CRL from."""


class LdapReadError(Exception):
    """The directory could not be read, or holds no CRL at the entry."""


@dataclass(frozen=True, slots=True)
class LdapTarget:
    host: str
    port: int
    dn: str
    filter: str = "(objectClass=*)"

    @property
    def uri(self) -> str:
        return f"ldap://{_host_port(self.host, self.port)}/{quote(self.dn, safe=',=+;')}"


def _host_port(host: str, port: int) -> str:
    h = f"[{host}]" if ":" in host else host
    return h if port == DEFAULT_PORT else f"{h}:{port}"


def parse_ldap_url(url: str) -> LdapTarget:
    """RFC 4516 §2 (ldaps and extensions marked critical are refused: we read over plain
    LDAP, which a CRL, being signed, does not need protected)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "ldap":
        raise LdapUrlError(f"{url} is not an ldap:// url")
    hostport, _, tail = rest.partition("/")
    host, port = _split_host(hostport, url)
    dn, _, query = tail.partition("?")
    parts = [*query.split("?"), "", "", "", ""][:4]
    attrs = [unquote(a) for a in parts[0].split(",") if a]
    if attrs and not any(a.split(";")[0].lower() == "certificaterevocationlist" for a in attrs):
        raise LdapUrlError(f"{url} names attributes {', '.join(attrs)}, not "
                           "certificateRevocationList")
    if parts[1] and parts[1].lower() != "base":
        raise LdapUrlError(f"{url} asks for a {parts[1]} search; a CRL is read at its entry "
                           "(base)")
    if any(e.startswith("!") for e in parts[3].split(",") if e):
        raise LdapUrlError(f"{url} has a critical extension we do not support")
    if _BAD_ESCAPE.search(tail):
        raise LdapUrlError(f"{url} has a % not followed by two hex digits")
    flt = unquote(parts[2]) or "(objectClass=*)"
    if not flt.startswith("("):
        flt = f"({flt})"
    if not _balanced(flt):
        raise LdapUrlError(f"{url} has a filter whose parentheses do not balance")
    dn = unquote(dn)
    if not dn:
        raise LdapUrlError(f"{url} names no entry (DN)")
    return LdapTarget(host or "localhost", port, dn, flt)


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _balanced(flt: str) -> bool:
    """RFC 4515: a filter is one parenthesized item; its parentheses (those not escaped as
    \\28 / \\29, which are not parentheses) close in order and end at the last character."""
    depth = 0
    for i, c in enumerate(flt):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0 or (depth == 0 and i != len(flt) - 1):
            return False
    return depth == 0


def _split_host(hostport: str, url: str) -> tuple[str, int]:
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LdapUrlError(f"{url} has an invalid port")
    return host, int(port_text)


def resolve_dn(dn: str, query_url: str | None) -> LdapTarget:
    """A bare DN, read from the server of the trustpoint's `query url`."""
    if not query_url:
        raise LdapUrlError(f"the distribution point {dn} is a directory name and the "
                           "trustpoint has no query url")
    scheme, sep, rest = query_url.partition("://")
    if not sep or scheme.lower() != "ldap":
        raise LdapUrlError(f"the query url {query_url} is not an ldap:// url")
    host, port = _split_host(rest.partition("/")[0].partition("?")[0], query_url)
    return LdapTarget(host or "localhost", port, dn)


def read_crl(target: LdapTarget, timeout_s: float) -> CrlValues:
    """The entry's `certificateRevocationList;binary` values, newest first, within
    `timeout_s` in all (connect, bind, search: ldap3's timeouts are per operation, so the
    read runs in a helper thread). At the deadline the helper's connection is shut down, so
    the helper ends then: a directory that keeps sending (a trickle never trips a socket
    timeout) would otherwise keep it reading for as long as it likes, one more thread per
    fetch."""
    result: list[CrlValues | BaseException] = []
    sockets: list[socket.socket] = []  # the helper's connection, once open
    worker = threading.Thread(target=_read_into, args=(target, timeout_s, result, sockets),
                              name="crl-ldap", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not result:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the helper's recv returns: it ends
        raise LdapReadError(f"no complete answer within the {timeout_s:g} s curl-timeout")
    got = result[0]
    if isinstance(got, BaseException):
        raise got
    return got


def _read_into(target: LdapTarget, timeout_s: float, result: list[CrlValues | BaseException],
               sockets: list[socket.socket]) -> None:
    try:
        result.append(_read(target, timeout_s, sockets))
    except BaseException as e:
        result.append(e)


_REFERRAL = 10  # LDAP resultCode referral (RFC 4511 §4.1.10)


def _read(target: LdapTarget, timeout_s: float, sockets: list[socket.socket]) -> CrlValues:
    import ldap3  # loaded by the first LDAP fetch only
    from ldap3.core.exceptions import LDAPException

    # ldap3's own timeouts lie a second past the deadline, so read_crl's deadline is the one
    # that ends a silent directory and the operator reads one message for it, not whichever
    # of the two timers fired first.
    past_deadline = int(timeout_s) + 1
    try:
        server = ldap3.Server(target.host, port=target.port, get_info=ldap3.NONE,
                              connect_timeout=past_deadline)
        # A referral is not followed: the CDP names the directory to ask, and a referral
        # would send the router to whatever host the answer names.
        conn = ldap3.Connection(server, raise_exceptions=True,
                                receive_timeout=past_deadline, auto_referrals=False)
        try:
            conn.open()
            sockets.append(conn.socket)  # before the bind: read_crl cuts it at the deadline
            conn.bind()
            conn.search(target.dn, target.filter, search_scope=ldap3.BASE,
                        attributes=[CRL_ATTRIBUTE])
            response = list(conn.response or [])
            referred = (conn.result or {}).get("result") == _REFERRAL or any(
                r.get("type") == "searchResRef" for r in response)
        finally:
            conn.unbind()
    except LDAPException as e:
        if type(e).__name__ == "LDAPNoSuchObjectResult":
            raise LdapReadError(f"no entry {target.dn} in the directory") from None
        raise LdapReadError(peer_words(e)) from None
    except Exception as e:
        # ldap3's BER decoder raises whatever Python raises on bytes that are no LDAP message
        # (KeyError, IndexError...: a CDP naming a port where something else answers): the
        # peer's answer, never a traceback.
        raise LdapReadError(f"the server's answer is not LDAP ({type(e).__name__} in the "
                            "decoder)") from None
    entries = [r for r in response if r.get("type") == "searchResEntry"]
    if not entries and referred:
        raise LdapReadError(f"the directory refers {target.dn} to another server, which is "
                            "not asked (a referral is not followed)")
    if not entries:
        raise LdapReadError(f"no entry {target.dn} in the directory")
    raw = entries[0].get("raw_attributes", {})
    key = next((k for k in raw if k.split(";")[0].lower() == "certificaterevocationlist"),
               None)
    if key is None or not raw[key]:
        raise LdapReadError(f"the entry {target.dn} has no certificateRevocationList")
    values = [bytes(v) for v in raw[key] if len(v) <= MAX_CRL]
    if not values:
        raise LdapReadError(f"the CRL is larger than {MAX_CRL >> 20} MiB")
    return CrlValues(ranked(values))


def ranked(values: list[bytes]) -> tuple[bytes, ...]:
    """An entry's CRL values, newest first (see the module docstring; equals keep the
    directory's order)."""
    return tuple(sorted(values, key=_rank, reverse=True)) if len(values) > 1 else tuple(values)


def _rank(value: bytes) -> tuple[int, int, float]:
    """(2 complete CRL | 1 delta CRL | 0 no CRL, its cRLNumber or -1, its thisUpdate)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    from engine.revocation.verify import CrlRefused, load_crl

    try:
        crl = load_crl(value)
    except CrlRefused:
        return 0, -1, 0.0
    exts = {e.oid: e.value for e in crl.extensions}
    number = exts.get(ExtensionOID.CRL_NUMBER)
    return (1 if ExtensionOID.DELTA_CRL_INDICATOR in exts else 2,
            number.crl_number if isinstance(number, x509.CRLNumber) else -1,
            crl.last_update_utc.timestamp())
