"""Certificates as IOS prints them: names, serials, dates, fingerprints.

The identifiers (names, serials, fingerprints) are defined in engine.certids, since events
record them; they are re-exported here beside the display-only formats."""

from __future__ import annotations

import hashlib
from datetime import UTC

from cryptography import x509

from engine.certids import (  # identifiers are data: events record them
    fingerprint_lines,
    ios_name,
    ios_serial,
    ios_serial_number,
    md5_spaced,
    md5_words,
    sha256_hex,
)
from projections.timefmt import ios_time

__all__ = ["colon_serial", "crl_distribution_points", "fingerprint_lines", "ios_name",
           "ios_serial", "ios_serial_number", "md5_spaced", "md5_words", "sha1_hex",
           "sha256_hex", "validity"]


def colon_serial(cert: x509.Certificate) -> str:
    """`5F:F8:7B:28` (trustpool listings)."""
    s = ios_serial(cert)
    return ":".join(s[i:i + 2] for i in range(0, len(s), 2))


def sha1_hex(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def validity(cert: x509.Certificate) -> tuple[str, str]:
    start = cert.not_valid_before_utc.astimezone(UTC)
    end = cert.not_valid_after_utc.astimezone(UTC)
    return ios_time(int(start.timestamp() * 1e6)), ios_time(int(end.timestamp() * 1e6))


def crl_distribution_points(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return []
    out = []
    for dp in ext.value:
        for gn in dp.full_name or ():
            if isinstance(gn, x509.UniformResourceIdentifier):
                out.append(gn.value)
    return out
