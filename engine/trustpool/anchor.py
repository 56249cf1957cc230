"""Which trust anchor a certificate chain ends in, and whose policy then applies.

The reference ("Handling of CA Certificates appearing both in Trust Pool and Trust Point"):
"the CA in the trust point and its policy is considered, before the CA in the trust pool or
trust pool policy". So every trustpoint's CA certificate is tried first, for the whole chain;
only a chain no trustpoint anchors is tried against the pool, and only then does the pool's
policy (its `crl optional`) apply. In the pool only usable certificates count: active (not a
built-in shadowed by a download), not a weak RSA key under `crypto ca rsa 1024 disable`, and
valid at `now` (an expired or not-yet-valid certificate is never an anchor).

A chain is anchored by a certificate that is one of its certificates (same subject and key)
or that issued one of them (names match and the signature verifies). Checking the links
between the chain's own certificates is the validation's job, not this function's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from engine.pki import issued_by
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_config, trustpoint_names
from engine.trustpool.policy import policy_of, rsa_1024_disabled
from engine.trustpool.pool import entries


@dataclass(frozen=True)
class Anchor:
    source: str  # "trustpoint" | "trustpool"
    name: str  # the trustpoint's name, or "trustpool"
    certificate: bytes  # DER of the anchor
    crl_optional: bool  # the policy that applies: the trustpoint's, or the pool's


def find_anchor(state: DeviceState, chain: Sequence[x509.Certificate], now: int
                ) -> Anchor | None:
    for name, der in _trustpoint_cas(state):
        if _anchors(x509.load_der_x509_certificate(der), chain):
            cfg = trustpoint_config(state, name)
            return Anchor("trustpoint", name, der, cfg is not None and cfg.crl_optional)
    weak_off = rsa_1024_disabled(state)
    for entry in entries(state.trustpool, weak_off):
        if entry.usable_at(now) and _anchors(entry.cert.certificate(), chain):
            return Anchor("trustpool", "trustpool", entry.cert.der,
                          policy_of(state).crl_optional)
    return None


def _trustpoint_cas(state: DeviceState) -> Iterator[tuple[str, bytes]]:
    for name in trustpoint_names(state):
        der = status_of(state, name).ca_certificate
        if der is not None:
            yield name, der


def _anchors(anchor: x509.Certificate, chain: Sequence[x509.Certificate]) -> bool:
    for cert in chain:
        if cert.subject == anchor.subject and same_key(cert, anchor):
            return True
        if cert.issuer == anchor.subject and issued_by(cert, anchor):
            return True
    return False


def same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    """Whether `a` and `b` hold the same public key; a key whose algorithm cryptography does
    not know (or that does not parse: a peer's chain is anyone's bytes) is no match."""
    try:
        return a.public_key() == b.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return False
