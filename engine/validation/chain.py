"""A peer's chain as the caller hands it over: PEM or DER, one blob or a list, parsed into
certificates (the peer's own first, as TLS and IKE send them) with their SHA-256
fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from engine.keyformats import Encoding
from engine.messages import plural
from engine.trustpool.pool import quiet

ChainInput = bytes | str | x509.Certificate | Sequence[bytes | str | x509.Certificate]

MAX_CERTS = 16
# What cryptography raises on a malformed certificate (InvalidVersion, DuplicateExtension and
# UnsupportedGeneralNameType are not ValueErrors; an attribute of the wrong type is a TypeError).
_PARSE_ERRORS = (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension,
                 x509.UnsupportedGeneralNameType)  # a peer sending more is not sending a chain


class ChainMalformed(ValueError):
    """The input is not a certificate chain we can parse (the text says why)."""


@dataclass(frozen=True)
class Chain:
    certs: tuple[x509.Certificate, ...]
    fingerprints: tuple[str, ...]  # SHA-256 hex of each certificate's DER


def parse_chain(given: ChainInput) -> Chain:
    items = [given] if isinstance(given, (bytes, str, x509.Certificate)) else list(given)
    certs: list[x509.Certificate] = []
    for item in items:
        certs += _certificates(item)
    if not certs:
        raise ChainMalformed("the chain holds no certificate")
    if len(certs) > MAX_CERTS:
        raise ChainMalformed(f"the chain holds {len(certs)} certificates (at most "
                             f"{MAX_CERTS})")
    return Chain(tuple(certs), tuple(fingerprint(c) for c in certs))


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _certificates(item: bytes | str | x509.Certificate) -> list[x509.Certificate]:
    if isinstance(item, x509.Certificate):
        _read_whole(item)
        return [item]
    data = item.encode("ascii", "replace") if isinstance(item, str) else bytes(item)
    if not data.strip():
        return []
    try:
        with quiet():
            if b"-----BEGIN" not in data:
                certs = [x509.load_der_x509_certificate(data)]
            else:
                certs = x509.load_pem_x509_certificates(data)
    except _PARSE_ERRORS:
        kind = "PEM" if b"-----BEGIN" in data else "DER"
        raise ChainMalformed(f"not a certificate chain (the {kind} does not parse as "
                             "X.509 certificates)") from None
    if b"-----BEGIN" in data:
        _complete(data, certs)
    for cert in certs:
        _read_whole(cert)
    return certs


def _read_whole(cert: x509.Certificate) -> None:
    """Read every field the validation reads: cryptography parses names, extensions, times
    and the key lazily, so a certificate that loads can still fail later, and a peer's chain
    is anyone's bytes. A key of an algorithm cryptography does not know is left to the path
    check (UNSUPPORTED_ALGORITHM); any other failure is a chain we cannot parse."""
    try:
        with quiet():
            _ = cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
            for name in (cert.subject, cert.issuer):
                _ = name.rfc4514_string(), name.public_bytes(), [a.value for a in name]
            _ = [ext.value for ext in cert.extensions], cert.signature_algorithm_oid
            with contextlib.suppress(UnsupportedAlgorithm):
                cert.public_key()
    except _PARSE_ERRORS as e:
        raise ChainMalformed(f"not a certificate chain (a certificate cannot be read: "
                             f"{_reason(e)})") from None


def _reason(e: Exception) -> str:
    text = str(e).split("\n")[0]
    if not text or "ParseError" in text or len(text) > 80:
        return f"malformed DER, {type(e).__name__}"
    return text


def _complete(data: bytes, certs: list[x509.Certificate]) -> None:
    """Refuse the PEM `data` unless every CERTIFICATE block gave one of `certs`: a block cut
    short (no END line) is dropped by the PEM reader, which would judge what is left
    instead."""
    begins = data.count(b"-----BEGIN CERTIFICATE-----")
    if begins > len(certs):
        raise ChainMalformed(f"the PEM has {plural(begins, 'CERTIFICATE block')} but only "
                             f"{plural(len(certs), 'complete one')} (truncated?)")
