"""CRLs at the operator's hand: `crypto ca crl request <uri>` (fetch one now), `clear crypto
ca crl` (empty the cache), `crypto ca crl curl-timeout <5-50>` (how long a fetch may take, in
all) and `show crypto ca crls`. The declarations; what the commands do is
engine/commands/run/crl.py, loaded when one of them first runs.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from engine.grammar import GRAMMAR, ArgKind, ArgRefused, ArgSpec, int_range, no_userinfo
from engine.revocation.cache import CURL_TIMEOUT_KEY

G = GRAMMAR
RUN = "engine.commands.run.crl"


def _crl_uri(s: str) -> str:
    """http://host[:port]/path, or an RFC 4516 ldap:// URL (spaces allowed in the DN, as some
    CAs write their distribution points). Anything malformed is refused here, before any
    fetch or event; a hostless `ldap:///DN` by `_names_its_server`, with the reason."""
    if re.match(r"^http://[^\s/]+(/\S*)?$", s, re.IGNORECASE):
        try:
            parts = urlsplit(s)
            port_ok = parts.port is None or parts.port > 0  # .port raises on a bad port
        except ValueError:
            raise ValueError(s) from None
        if not parts.hostname or not port_ok:
            raise ValueError(s)
        return s
    if re.match(r"^ldap://", s, re.IGNORECASE):
        from engine.revocation.ldap import LdapUrlError, parse_ldap_url  # when one is typed

        try:
            parse_ldap_url(s)
        except LdapUrlError:
            raise ValueError(s) from None
        return s
    raise ValueError(s)


def _names_its_server(s: str) -> None:
    """A hostless `ldap:///DN` (or a bare DN) is read from a trustpoint's `query url` server,
    and only a certificate's distribution point has a trustpoint: the request must name the
    server. Said at the caret (it was a bare `Invalid input`)."""
    no_userinfo(s)
    if s[:len("ldap://")].lower() == "ldap://" and not s[len("ldap://"):].partition("/")[0]:
        raise ArgRefused("'crypto ca crl request' has no trustpoint whose query url could "
                         "name the LDAP server: give it in the url (ldap://host[:port]/DN).")


CRL_URI = ArgSpec(ArgKind("LINE", _crl_uri, rest_of_line=True, screen=_names_its_server),
                  "http:// or ldap:// url of the CRL")

G.describe({"crl": "Certificate revocation lists"})

G.config("crypto ca crl curl-timeout <seconds>", key=CURL_TIMEOUT_KEY, rank=57,
         help="Time a CRL fetch may take in all (default 5 s)",
         args={"seconds": ArgSpec(int_range(5, 50), "Seconds (default 5)")},
         words={"curl-timeout": "Time a CRL fetch may take in all"})
G.declare("crypto ca crl request <uri>", runs=f"{RUN}:request",
          help="Fetch a CRL now and cache it", args={"uri": CRL_URI},
          words={"request": "Fetch a CRL now from a url"})
G.declare("clear crypto ca crl", runs=f"{RUN}:clear", help="Empty the CRL cache",
          words={"clear": "Clear or reset functions", "crl": "The CRL cache"})
G.declare("show crypto ca crls", runs=f"{RUN}:show_crls", help="Show the cached CRLs",
          words={"crls": "Cached certificate revocation lists"})
