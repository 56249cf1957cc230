"""Certificate identifiers as the router writes them: names, serials, fingerprints.

These are data, not presentation: events record them (the subject of a refused CA certificate,
the serials and SHA-256 fingerprints of destroyed certificates, the MD5 of an enrollment
request), the built-in CA's console and CLI print them, and the renderers in projections/
show them. One definition keeps all of them byte-identical.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.x509.oid import NameOID

from engine.pki import UNSTRUCTURED_ADDRESS

_SHORT = {
    NameOID.COMMON_NAME: "cn",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "ou",
    NameOID.ORGANIZATION_NAME: "o",
    NameOID.LOCALITY_NAME: "l",
    NameOID.STATE_OR_PROVINCE_NAME: "st",
    NameOID.COUNTRY_NAME: "c",
    NameOID.EMAIL_ADDRESS: "ea",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.UNSTRUCTURED_NAME: "unstructuredName",
    UNSTRUCTURED_ADDRESS: "unstructuredAddress",
    NameOID.DOMAIN_COMPONENT: "dc",
    NameOID.TITLE: "title",
}


def _escape(value: str) -> str:
    out = value.replace("\\", "\\\\")
    for ch in ',+"<>;=':
        out = out.replace(ch, "\\" + ch)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def ios_name(name: x509.Name) -> str:
    """`cn=Root CA,ou=HFR,o=Cisco Systems,c=US`: RFC 4514 order, IOS's lower-case labels."""
    parts = []
    for rdn in reversed(name.rdns):
        parts.append("+".join(
            f"{_SHORT.get(a.oid, a.oid.dotted_string)}={_escape(str(a.value))}" for a in rdn))
    return ",".join(parts)


def ios_serial(cert: x509.Certificate) -> str:
    """`01`, `6E`, `5FF87B282B54DC8D`: upper-case hex, whole bytes."""
    return ios_serial_number(cert.serial_number)


def ios_serial_number(number: int) -> str:
    """A serial number as `show crypto ca certificates` prints it (see `ios_serial`)."""
    h = format(number, "X")
    return h if len(h) % 2 == 0 else "0" + h


def md5_spaced(der: bytes) -> str:
    """`58 71 FB 94 55 65 D4 64 38 91 2B 00 61 E9 F8 05` (the authenticate fingerprint)."""
    d = hashlib.md5(der, usedforsecurity=False).hexdigest().upper()
    return " ".join(d[i:i + 2] for i in range(0, 32, 2))


def md5_words(der: bytes) -> str:
    """`17D8B38D ED2BDF2E DF8ADB7F A7DBE35A` (the enrollment request fingerprint)."""
    d = hashlib.md5(der, usedforsecurity=False).hexdigest().upper()
    return " ".join(d[i:i + 8] for i in range(0, 32, 8))


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest().upper()


def fingerprint_lines(der: bytes) -> list[str]:
    """The CA certificate's fingerprints as `crypto ca authenticate` shows them (MD5 in the
    router's layout, then SHA-256): `ca init` prints the same lines, so the out-of-band check
    is a copy-and-compare."""
    return [f"Fingerprint:{md5_spaced(der)}", f"SHA256 Fingerprint:{sha256_hex(der)}"]
