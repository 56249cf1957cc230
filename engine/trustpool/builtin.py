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
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.trustpool.pool import quiet

if TYPE_CHECKING:
    from events.trustpool import TrustpoolBuiltinsRecorded

_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class BuiltinFile:
    data: bytes  # the bundle file (PEM)
    describe: Callable[[], str]  # what shipped it, e.g. "certifi 2026.10.19": asked only
    # when the bundle is recorded


BuiltinSource = Callable[[], BuiltinFile]


def certifi_bundle() -> BuiltinFile:
    """The installed certifi's `cacert.pem`, found beside the package without running its
    __init__: `certifi.where()` loads importlib.resources (~4 ms at every open, which only
    hashes the file). The package itself is imported for its version, when it is recorded."""
    return BuiltinFile(_certifi_pem().read_bytes(), _certifi_version)


def _certifi_pem() -> Path:
    spec = importlib.util.find_spec("certifi")  # finds the package, does not run it
    if spec is not None and spec.origin is not None:
        beside = Path(spec.origin).with_name("cacert.pem")
        if beside.is_file():
            return beside
    import certifi  # another layout (a zip): where() knows

    return Path(certifi.where())


def _certifi_version() -> str:
    import certifi

    return f"certifi {certifi.__version__}"


def builtins_event(recorded_sha256: str, source: BuiltinSource
                   ) -> TrustpoolBuiltinsRecorded | None:
    """The event recording the shipped bundle, or None if the log already has this one."""
    shipped = source()
    digest = hashlib.sha256(shipped.data).hexdigest()
    if digest == recorded_sha256:
        return None
    from events.trustpool import TrustpoolBuiltinsRecorded  # loaded when recorded

    return TrustpoolBuiltinsRecorded(digest, shipped.describe(),
                                     _certificates(shipped.data))


def _certificates(pem: bytes) -> tuple[bytes, ...]:
    """The DER of every certificate block that parses (a damaged one is left out, so a bad
    package cannot keep the device from opening)."""
    from cryptography import x509  # only when a new bundle is recorded

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
