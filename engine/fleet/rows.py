"""What the fleet views hold of one device: its trustpoints and its certificates, read from
the device's folded state (pure; no I/O).

The state is the device's own: the fleet follower folds each device's events with the
device's fold table (engine/device_folds.py), the one whose trustpoint folds take every
lifecycle from the trustpoint machine (engine/machines/trustpoint.py). So a trustpoint's
state here is the one `show crypto ca trustpoint` would print on that device, and a
certificate is listed while the device has it installed: received, renewed (the renewal
activates the new one) and dropped when zeroized or removed with its trustpoint. A router
certificate a CRL lists stays installed, marked revoked, as on the router.

A trustpoint exists while `crypto ca trustpoint NAME` is configured; one with no event yet
is `declared`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from cryptography import x509

from engine.certids import ios_name, ios_serial
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_names


@dataclass(frozen=True, slots=True)
class TrustpointRow:
    trustpoint: str
    state: str  # a Lifecycle value: declared|authenticated|enrolling|enrolled|revoked
    certificates: int  # router certificates installed (revoked ones included)


@dataclass(frozen=True, slots=True)
class CertificateRow:
    trustpoint: str
    kind: str  # "router" | "CA"
    serial: str  # as the router prints it
    subject: str  # RFC 4514 order, IOS's labels (engine.certids.ios_name)
    issuer: str
    not_after: int  # µs since the epoch
    revoked: bool


@dataclass(frozen=True, slots=True)
class DeviceRows:
    trustpoints: tuple[TrustpointRow, ...]
    certificates: tuple[CertificateRow, ...]


_PARSED: dict[bytes, tuple[str, str, str, int]] = {}
_PARSED_MAX = 50_000  # distinct certificates remembered (a fleet shares its CA certificates)


def _facts(der: bytes) -> tuple[str, str, str, int]:
    """(serial, subject, issuer, notAfter µs) of a DER certificate, parsed once."""
    got = _PARSED.get(der)
    if got is None:
        cert = x509.load_der_x509_certificate(der)
        after = cert.not_valid_after_utc.astimezone(UTC)
        got = (ios_serial(cert), ios_name(cert.subject), ios_name(cert.issuer),
               int(after.timestamp()) * 1_000_000)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[der] = got
    return got


def _certificate(trustpoint: str, kind: str, der: bytes, revoked: bool) -> CertificateRow:
    serial, subject, issuer, not_after = _facts(der)
    return CertificateRow(trustpoint, kind, serial, subject, issuer, not_after, revoked)


def device_rows(state: DeviceState) -> DeviceRows:
    """The device's trustpoints (configured ones, in configuration order) and the
    certificates installed in them: each one's CA certificate, then its router
    certificates."""
    tps: list[TrustpointRow] = []
    certs: list[CertificateRow] = []
    for name in trustpoint_names(state):
        st = status_of(state, name)
        tps.append(TrustpointRow(name, st.lifecycle.value, len(st.certificates)))
        if st.ca_certificate is not None:
            certs.append(_certificate(name, "CA", st.ca_certificate, False))
        for c in st.certificates:
            certs.append(_certificate(name, "router", c.der, c.revoked_at is not None))
    return DeviceRows(tuple(tps), tuple(certs))
