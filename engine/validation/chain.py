"""A peer's chain as the caller hands it over: PEM or DER, one blob or a list, parsed into
certificates (the peer's own first, as TLS and IKE send them) with their SHA-256
fingerprints."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from engine.keyformats import Encoding
from engine.messages import plural
from engine.trustpool.pool import quiet

ChainInput = bytes | str | x509.Certificate | Sequence[bytes | str | x509.Certificate]

MAX_CERTS = 16  # a peer sending more is not sending a chain


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
        return [item]
    data = item.encode("ascii", "replace") if isinstance(item, str) else bytes(item)
    if not data.strip():
        return []
    try:
        with quiet():
            if b"-----BEGIN" not in data:
                return [x509.load_der_x509_certificate(data)]
            certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        kind = "PEM" if b"-----BEGIN" in data else "DER"
        raise ChainMalformed(f"not a certificate chain (the {kind} does not parse as "
                             "X.509 certificates)") from None
    return _complete(data, certs)


def _complete(data: bytes, certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """`certs`, if every CERTIFICATE block of the PEM `data` gave one: a block cut short (no
    END line) is dropped by the PEM reader, which would judge what is left instead."""
    begins = data.count(b"-----BEGIN CERTIFICATE-----")
    if begins > len(certs):
        raise ChainMalformed(f"the PEM has {plural(begins, 'CERTIFICATE block')} but only "
                             f"{plural(len(certs), 'complete one')} (truncated?)")
    return certs
