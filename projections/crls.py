"""`show crypto ca crls`: every cached CRL in IOS XR's layout (`CRL Entry`, `Issuer`, `Last
Update`, `Next Update`, `CRL Distribution Point`), then what the device adds: the CRL number,
the entries, where and when it was fetched (and for which trustpoint), its scope, its
SHA-256 (the stored blob), and whether it is still fresh.

    CRL Entry
    ===============================================
    Issuer : CN=Example Root CA,O=Example,C=US
    Last Update : [UTC] Thu Jan 10 01:43:45 2013
    Next Update : [UTC] Fri Jan 11 01:43:45 2013
    CRL Distribution Point :
      http://127.0.0.1:18390/root-ca.crl
    CRL Number : 4096
    Entries : 1
    Fetched : [UTC] Thu Jan 10 02:00:00 2013 over HTTP
    ...
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.revocation.model import CachedCrl
from engine.state import DeviceState

RULE = "=" * 47


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("[UTC] %a %b %d %H:%M:%S %Y")


def _over(source: str) -> str:
    scheme = source.partition(":")[0].lower()
    return {"http": "HTTP", "ldap": "LDAP", "scep": "SCEP GetCRL"}.get(scheme, scheme)


def _scope(crl: CachedCrl) -> str:
    only = {"user": "end-entity certificates only", "ca": "CA certificates only"}.get(crl.only)
    where = ", ".join(crl.idp_uris) if crl.idp_uris else "full"
    return f"{where}; {only}" if only else where


def render_crl(crl: CachedCrl, now: int) -> str:
    lines = [
        "CRL Entry",
        RULE,
        f"Issuer : {crl.issuer_text}",
        f"Last Update : {_when(crl.this_update)}",
        f"Next Update : {'none' if crl.next_update is None else _when(crl.next_update)}",
        "CRL Distribution Point :",
        f"  {crl.source}",
        f"CRL Number : {'none' if crl.number is None else crl.number}",
        f"Entries : {crl.count}",
        f"Fetched : {_when(crl.fetched_at)} over {_over(crl.source)}",
        f"Trustpoint : {crl.trustpoint or 'none (trustpool)'}",
        f"Scope : {_scope(crl)}",
        f"SHA-256 : {crl.sha256}",
        f"Status : {_status(crl, now)}",
    ]
    return "\n".join(lines) + "\n"


def _status(crl: CachedCrl, now: int) -> str:
    if crl.fresh_at(now):
        return "Fresh"
    return "Stale (no next update)" if crl.next_update is None else "Stale (past its next update)"


def render_crls(state: DeviceState, now: int) -> str:
    return "\n".join(render_crl(c, now) for c in state.crls.entries())
