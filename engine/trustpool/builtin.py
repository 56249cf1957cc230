"""The built-in bundle: the Mozilla roots of the installed `certifi` package, recorded in the
log so that replay never reads the installed files.

At every open the engine reads the bundle file and compares its SHA-256 with the one the log
last recorded (`TrustpoolBuiltinsRecorded`): the same, nothing happens (one read and one hash
of ~230 KB); different (the first open, or an upgrade brought another certifi), the
certificates are recorded as one event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from engine.trustpool.pool import quiet
from events.trustpool import TrustpoolBuiltinsRecorded

_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class BuiltinFile:
    data: bytes  # the bundle file (PEM)
    source: str  # what shipped it, e.g. "certifi 2026.10.19"


BuiltinSource = Callable[[], BuiltinFile]


def certifi_bundle() -> BuiltinFile:
    """The installed certifi's `cacert.pem`."""
    import certifi

    return BuiltinFile(Path(certifi.where()).read_bytes(), f"certifi {certifi.__version__}")


def builtins_event(recorded_sha256: str, source: BuiltinSource
                   ) -> TrustpoolBuiltinsRecorded | None:
    """The event recording the shipped bundle, or None if the log already has this one."""
    shipped = source()
    digest = hashlib.sha256(shipped.data).hexdigest()
    if digest == recorded_sha256:
        return None
    return TrustpoolBuiltinsRecorded(digest, shipped.source, _certificates(shipped.data))


def _certificates(pem: bytes) -> tuple[bytes, ...]:
    """The DER of every certificate block that parses (a damaged one is left out, so a bad
    package cannot keep the device from opening)."""
    out = []
    for body in _CERT.findall(pem):
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
            with quiet():
                x509.load_der_x509_certificate(der).public_key()
        except (binascii.Error, ValueError, TypeError):
            continue
        out.append(der)
    return tuple(out)
