"""Certificate identifiers as the router writes them: names, serials, fingerprints.

These are data, not presentation: events record them (the subject of a refused CA certificate,
the serials and SHA-256 fingerprints of destroyed certificates, the MD5 of an enrollment
request), the built-in CA's console and CLI print them, and the renderers in projections/
show them. One definition keeps all of them byte-identical.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a `show` that names no certificate never loads cryptography.x509
    from cryptography import x509

_SHORT = {  # IOS's labels by dotted OID (cryptography.x509.oid.NameOID's values)
    "2.5.4.3": "cn",  # COMMON_NAME
    "2.5.4.11": "ou",  # ORGANIZATIONAL_UNIT_NAME
    "2.5.4.10": "o",  # ORGANIZATION_NAME
    "2.5.4.7": "l",  # LOCALITY_NAME
    "2.5.4.8": "st",  # STATE_OR_PROVINCE_NAME
    "2.5.4.6": "c",  # COUNTRY_NAME
    "1.2.840.113549.1.9.1": "ea",  # EMAIL_ADDRESS
    "2.5.4.5": "serialNumber",  # SERIAL_NUMBER
    "1.2.840.113549.1.9.2": "unstructuredName",  # UNSTRUCTURED_NAME
    "1.2.840.113549.1.9.8": "unstructuredAddress",  # engine.pki.UNSTRUCTURED_ADDRESS
    "0.9.2342.19200300.100.1.25": "dc",  # DOMAIN_COMPONENT
    "2.5.4.12": "title",  # TITLE
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
        labels = ((_SHORT.get(a.oid.dotted_string, a.oid.dotted_string), a) for a in rdn)
        parts.append("+".join(f"{label}={_escape(str(a.value))}" for label, a in labels))
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
