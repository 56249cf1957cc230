"""Distinguished names as `fleet certificates --issuer` compares them.

The views store each issuer as the router prints it (`cn=Root CA,o=Cisco Systems,c=US`,
engine.certids.ios_name) and beside it a key: attribute labels lower-cased, spaces around
`,` `+` and `=` dropped, values case-folded. An operator may then type the DN as IOS prints
it, as OpenSSL (`CN = Root CA, O = Cisco Systems`) or RFC 4514 (`CN=Root CA,O=Cisco Systems`)
writes it, and it matches: X.520's names compare case-insensitively (caseIgnoreMatch).
"""

from __future__ import annotations

_LABELS = {"commonname": "cn", "organizationname": "o", "organizationalunitname": "ou",
           "countryname": "c", "localityname": "l", "stateorprovincename": "st",
           "emailaddress": "ea", "e": "ea", "serialnumber": "serialnumber",
           "domaincomponent": "dc", "s": "st"}


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` where it is not escaped by a backslash."""
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def name_key(dn: str) -> str:
    """The comparison key of a DN (see the module docstring); ValueError if `dn` is not
    `label=value` pairs."""
    rdns = []
    for rdn in _split(dn.strip(), ","):
        avas = []
        for ava in _split(rdn, "+"):
            label, eq, value = ava.partition("=")
            label = label.strip().lower()
            if not eq or not label or not value.strip():
                raise ValueError(f"{ava.strip()!r} is not label=value")
            avas.append(f"{_LABELS.get(label, label)}={value.strip().casefold()}")
        rdns.append("+".join(avas))
    return ",".join(rdns)
