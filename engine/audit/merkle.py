"""The Merkle tree over a log: RFC 9162 §2.1 hashing, an incremental compact range, proofs.

Theory of operation
-------------------
Leaves are the log's events in seq order (event seq N is leaf index N - 1). A leaf's hash is
SHA-256(0x00 || event hash) and an interior node's SHA-256(0x01 || left || right) (RFC 9162
§2.1.1); the tree over n leaves splits at k, the largest power of two smaller than n.

`CompactRange` is what a writer keeps: the roots of the perfect subtrees that make up the tree
so far, largest first (one per set bit of the size, so at most 64 hashes: O(log n) state).
Appending a leaf pushes it and merges the two last roots while they cover equal sizes; the root
of the whole tree folds them right to left. The range is small enough to be stored with a
snapshot and the latest checkpoint, so opening a log never rebuilds it from every event.

`MerkleTree` is what a prover keeps: every level of the tree (about 2n hashes), so the hash of
any aligned perfect subtree is one lookup and a proof takes O(log² n) hashing at worst. It is
built from the leaves when a proof is asked for (`trustledger audit prove`, `audit verify`).

The verifiers are RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), step for step;
they need nothing but the proof, the sizes and the roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = HASH()


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data); for the log, `data` is an event's chain hash."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The roots of the perfect subtrees covering leaves [0, size): O(log n) state."""

    __slots__ = ("hashes", "size")
    __hash__ = None  # type: ignore[assignment]  # mutable: compared by value, never hashed

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} holds {bin(size).count('1')} "
                             f"hashes, not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash (`leaf_hash(event hash)`)."""
        hashes = self.hashes
        hashes.append(leaf)
        n = self.size
        while n & 1:  # each trailing one bit is a perfect subtree the new leaf completes
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            n >>= 1
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        it = reversed(self.hashes)
        h = next(it)
        for left in it:
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompactRange) and (self.size, self.hashes) == \
            (other.size, other.hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self.size}, root={self.root().hex()[:16]}...)"


class MerkleTree:
    """Every level of the tree over `leaves` (leaf hashes), for proofs of any size <= n."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        self._build()

    def _build(self) -> None:
        level = self.levels[0]
        del self.levels[1:]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        i = len(self.levels[0]) - 1
        depth = 0
        while i & 1:  # the new leaf completes a perfect subtree at each trailing one bit
            below = self.levels[depth]
            if depth + 1 == len(self.levels):
                self.levels.append([])
            self.levels[depth + 1].append(node_hash(below[i - 1], below[i]))
            depth, i = depth + 1, i >> 1

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for `start` aligned as RFC 9162's recursion makes it."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:  # an aligned perfect subtree: stored
            depth = n.bit_length() - 1
            return self.levels[depth][start >> depth]
        k = _split(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        return self.subtree(0, self.size if size is None else self._size(size))

    def _size(self, size: int) -> int:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is beyond the {self.size} leaves held")
        return size

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1)."""
        self._size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1); empty when either size is
        0 or they are equal."""
        self._size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"old size {old_size} is not within 0..{new_size}")
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, end, complete = 0, new_size, True
        m = old_size
        while m != end:  # SUBPROOF(m - start, D[start:end], complete)
            k = _split(end - start)
            if m - start <= k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start, complete = start + k, False
        if not complete:
            proof.append(self.subtree(start, end))
        proof.reverse()
        return proof


def inclusion_proof(leaves: MerkleTree | Sequence[bytes], index: int, size: int) -> list[bytes]:
    tree = leaves if isinstance(leaves, MerkleTree) else MerkleTree(leaves[:size])
    return tree.inclusion_proof(index, size)


def consistency_proof(leaves: MerkleTree | Sequence[bytes], old_size: int,
                      new_size: int) -> list[bytes]:
    tree = leaves if isinstance(leaves, MerkleTree) else MerkleTree(leaves[:new_size])
    return tree.consistency_proof(old_size, new_size)


def root_from_inclusion(leaf: bytes, index: int, size: int,
                        proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1-3), None if the proof
    does not fit the index and size."""
    if not 0 <= index < size:  # step 1: leaf_index >= tree_size fails
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None  # step 4: "sn is 0"


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """Whether `proof` shows leaf hash `leaf` at `index` of the tree of `size` with `root`."""
    return root_from_inclusion(leaf, index, size, proof) == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: does the tree of `new_size` extend the one of `old_size`?
    Equal sizes need an empty proof and equal roots; size 0 is extended by every tree."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:  # step 1: an empty consistency_path fails
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0  # step 7
