"""A log as a witness sees it: leaves, a Merkle tree, an Ed25519 log key and checkpoints
signed with it; and add-checkpoint request bodies built from them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit.checkpoint import Checkpoint
from engine.audit.merkle import MerkleTree, consistency_proof, leaf_hash
from engine.audit.note import sign_note, verifier_key
from engine.audit.witness import request_body

ORIGIN = "trustledger.example/r1/0123456789abcdef"


@dataclass
class FakeLog:
    origin: str = ORIGIN
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    leaves: list[bytes] = field(default_factory=list)

    def grow(self, n: int, tag: str = "") -> FakeLog:
        start = len(self.leaves)
        self.leaves += [leaf_hash(hashlib.sha256(f"{tag}event {start + i}".encode()).digest())
                        for i in range(n)]
        return self

    def forked(self, at: int, n: int) -> FakeLog:
        """The same log rewritten from leaf `at` on, `n` leaves long, same key."""
        other = FakeLog(self.origin, self.key, self.leaves[:at])
        return other.grow(n - at, tag="rewritten ")

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.origin, self.key.public_key())

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        size = len(self.leaves) if size is None else size
        return Checkpoint(self.origin, size, MerkleTree(self.leaves[:size]).root())

    def note(self, size: int | None = None) -> bytes:
        return sign_note(self.checkpoint(size).format(), self.origin, self.key)

    def request(self, old: int, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        proof = consistency_proof(self.leaves, old, size) if 0 < old < size else []
        return request_body(old, proof, self.note(size))
