"""The trust anchors of one state, indexed by subject: `find_anchor`'s rule at dictionary speed.

engine.trustpool.anchor.find_anchor states the rule (a trustpoint's CA first, in trustpoint
order, then the pool's usable certificates, in pool order; a certificate anchors a chain when
it is one of the chain's certificates, same subject and key, or issued one of them, names
match and the signature verifies). It walks every trustpoint and every pool certificate and
parses each one per call: fine for a command, too slow for a handshake against a 150-root
pool. `AnchorIndex` holds the same candidates, parsed once and keyed by subject, so a chain
looks up only the anchors whose subject is one of its certificates' subjects or issuers; it
is rebuilt when the trustpoints or the pool change (one index per state, memoized by
identity). tests/validation/test_validation_anchors.py checks it agrees with find_anchor.

Pool certificates' validity is checked at lookup (an anchor must be valid at `at`), as
find_anchor does; trustpoint CAs are not filtered by validity (find_anchor does not either):
an expired trustpoint CA anchors the chain and path validation then says EXPIRED.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.verification import Store

from engine.pki import rfc4514
from engine.state import DeviceState
from engine.trustpoints import status_of, trustpoint_config, trustpoint_names
from engine.trustpool.anchor import Anchor
from engine.trustpool.anchor import _anchors as anchors  # the rule, one definition
from engine.trustpool.policy import policy_of, rsa_1024_disabled
from engine.trustpool.pool import entries, load
from engine.validation.chain import fingerprint


@dataclass(frozen=True)
class Candidate:
    rank: int  # the order find_anchor tries them in
    anchor: Anchor  # crl_optional as configured when the index was built
    cert: x509.Certificate
    not_before: int  # µs; pool certificates only are filtered by validity
    not_after: int
    pool: bool
    _store: list[Store] = field(default_factory=list, compare=False)

    def store(self) -> Store:
        """A verification store holding this anchor alone (built once)."""
        if not self._store:
            self._store.append(Store([self.cert]))
        return self._store[0]


class AnchorIndex:
    def __init__(self, candidates: list[Candidate]) -> None:
        self.by_subject: dict[bytes, list[Candidate]] = {}
        for c in candidates:
            self.by_subject.setdefault(c.cert.subject.public_bytes(), []).append(c)

    def subjects(self) -> dict[str, str]:
        """Each anchor's SHA-256 fingerprint and subject (RFC 4514), for reports."""
        return {fingerprint(c.cert): rfc4514(c.cert.subject)
                for cs in self.by_subject.values() for c in cs}

    @classmethod
    def build(cls, state: DeviceState) -> AnchorIndex:
        out: list[Candidate] = []
        for name in trustpoint_names(state):
            der = status_of(state, name).ca_certificate
            if der is not None:
                cfg = trustpoint_config(state, name)
                out.append(Candidate(len(out), Anchor("trustpoint", name, der, cfg is not None
                                                      and cfg.crl_optional), load(der), 0, 0,
                                     False))
        pool_optional = policy_of(state).crl_optional
        for entry in entries(state.trustpool, rsa_1024_disabled(state)):
            if entry.inactive or entry.weak:
                continue
            c = entry.cert
            out.append(Candidate(len(out), Anchor("trustpool", "trustpool", c.der,
                                                  pool_optional), load(c.der), c.not_before,
                                 c.not_after, True))
        return cls(out)

    def find(self, chain: Sequence[x509.Certificate], at: int | None) -> Candidate | None:
        """The first candidate (in find_anchor's order) that anchors `chain` at `at` (None:
        at any moment, the pool certificates' validity not considered)."""
        found: list[Candidate] = []
        for cert in chain:
            for key in (cert.subject.public_bytes(), cert.issuer.public_bytes()):
                found += self.by_subject.get(key, ())
        for c in sorted({c.rank: c for c in found}.values(), key=_rank):
            if c.pool and at is not None and not c.not_before <= at <= c.not_after:
                continue
            if anchors(c.cert, chain):
                return c
        return None


def _rank(c: Candidate) -> int:
    return c.rank


_MEMO: list[tuple[tuple[Any, ...], AnchorIndex]] = []


def anchor_index(state: DeviceState) -> AnchorIndex:
    """The index of `state`'s anchors, rebuilt only when what it depends on changed (the
    trustpoints, their configuration, the pool, the global configuration: compared by
    identity, each is an immutable value replaced by the fold that changes it)."""
    key = (state.trustpoints, state.trustpoint_configs, state.trustpool, state.config)
    if _MEMO and all(a is b for a, b in zip(_MEMO[0][0], key, strict=True)):
        return _MEMO[0][1]
    index = AnchorIndex.build(state)
    _MEMO[:] = [(key, index)]
    return index
