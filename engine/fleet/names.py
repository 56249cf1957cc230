"""Distinguished names as `fleet certificates --issuer` compares them.

The views store each issuer as the router prints it (`cn=Root CA,o=Cisco Systems,c=US`,
engine.certids.ios_name) and beside it a key: attribute labels lower-cased, spaces around
`,` `+` and `=` dropped, values case-folded. An operator may then type the DN as IOS prints
it, as OpenSSL (`CN = Root CA, O = Cisco Systems`) or RFC 4514 (`CN=Root CA,O=Cisco Systems`)
writes it, and it matches: X.520's names compare case-insensitively (caseIgnoreMatch).
`issuer_key` also takes what `ca init --subject` takes (engine/ca/profile.py `parse_subject`,
reused): the OpenSSL slash form (`/O=trustledger/CN=trustledger CA`) and dotted OIDs
(`2.5.4.3=trustledger CA,O=trustledger`).
"""

from __future__ import annotations

from typing import Any

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


def issuer_key(dn: str) -> str:
    """The comparison key of a DN an operator typed: read as `ca init --subject` reads it
    (RFC 4514 with dotted OIDs, or the OpenSSL slash form), else as `name_key` reads it (the
    OpenSSL `CN = x, O = y` form); ValueError if neither reads it."""
    from engine.ca.profile import parse_subject  # cryptography: only when --issuer is given

    try:
        name = parse_subject(dn)
    except ValueError:
        return name_key(dn)
    return name_key(name.rfc4514_string(_label_overrides()))


def _label_overrides() -> dict[Any, str]:
    """Labels for the OIDs `rfc4514_string` has no short name for (it would print them as
    hex DER): those the router prints (engine.certids.ios_name)."""
    from cryptography.x509.oid import NameOID

    return {NameOID.EMAIL_ADDRESS: "ea", NameOID.SERIAL_NUMBER: "serialnumber"}
