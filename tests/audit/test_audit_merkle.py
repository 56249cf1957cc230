"""engine.audit.merkle against known answers: RFC 6962's reference test vectors (the
certificate-transparency and transparency-dev test suites: the eight leaves, the roots of every
size, inclusion and consistency proofs) and pymerkle (an independent implementation) for every
tree size up to 300."""

from __future__ import annotations

import pytest
from pymerkle import InmemoryTree

from engine.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
          bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (index, size) -> path, and (old, new) -> proof, from the same suites.
INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
CONSISTENCY = {
    (1, 1): [],
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}
HASHES = [leaf_hash(x) for x in LEAVES]


def _hex(proof: list[bytes]) -> list[str]:
    return [p.hex() for p in proof]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert CompactRange().root() == MerkleTree().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_the_reference_vectors(size: int) -> None:
    rng = CompactRange()
    rng.extend(HASHES[:size])
    assert rng.root().hex() == ROOTS[size]
    assert MerkleTree(HASHES).root(size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_inclusion_proofs_of_the_reference_vectors(index: int, size: int) -> None:
    proof = inclusion_proof(HASHES, index, size)
    assert _hex(proof) == INCLUSION[index, size]
    root = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(HASHES[index], index, size, proof, root)
    assert not verify_inclusion(HASHES[index ^ 1], index, size, proof, root)


@pytest.mark.parametrize(("old", "new"), sorted(CONSISTENCY))
def test_consistency_proofs_of_the_reference_vectors(old: int, new: int) -> None:
    proof = consistency_proof(HASHES, old, new)
    assert _hex(proof) == CONSISTENCY[old, new]
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, proof)
    assert not verify_consistency(old, new, new_root, new_root, proof) or old == new


def test_every_tree_size_to_300_against_pymerkle() -> None:
    """Roots of every size equal pymerkle's (RFC 6962 hashing, independent code); every
    inclusion and consistency proof we make leads to pymerkle's roots; and the compact range
    and the level tree, grown leaf by leaf, agree all the way."""
    data = [i.to_bytes(2, "big") * 16 for i in range(300)]  # 32-byte "event hashes"
    other = InmemoryTree(algorithm="sha256")
    leaves = [leaf_hash(d) for d in data]
    tree, rng = MerkleTree(), CompactRange()
    roots = [EMPTY_ROOT]
    for d, leaf in zip(data, leaves, strict=True):
        other.append_entry(d)
        tree.append(leaf)
        rng.append(leaf)
        roots.append(other.get_root(len(roots)))
        assert rng.root() == tree.root() == roots[-1]
    for size in range(1, 301):
        for index in range(size):
            assert verify_inclusion(leaves[index], index, size,
                                    tree.inclusion_proof(index, size), roots[size])
        for old in range(0, size + 1):
            assert verify_consistency(old, size, roots[old], roots[size],
                                      tree.consistency_proof(old, size)), (old, size)


@pytest.mark.slow
def test_every_inclusion_proof_to_300_is_pymerkles_audit_path() -> None:
    """Not only do our inclusion proofs lead to pymerkle's roots through our own verifier:
    for every tree size up to 300 and every index, the proof is, hash for hash, the audit
    path pymerkle makes (after the leaf itself, which its path starts with; its indices count
    from 1)."""
    data = [i.to_bytes(2, "big") * 16 for i in range(300)]
    other = InmemoryTree(algorithm="sha256")
    tree = MerkleTree()
    for d in data:
        other.append_entry(d)
        tree.append(leaf_hash(d))
    for size in range(1, 301):
        for index in range(size):
            path = other.prove_inclusion(index + 1, size).serialize()["path"]
            assert [bytes.fromhex(h) for h in path] == [
                leaf_hash(data[index]), *tree.inclusion_proof(index, size)], (index, size)


def test_verifiers_refuse_proofs_that_do_not_fit() -> None:
    tree = MerkleTree(HASHES)
    root = tree.root()
    proof = tree.inclusion_proof(3, 8)
    assert not verify_inclusion(HASHES[3], 3, 9, proof, root)  # another size
    assert not verify_inclusion(HASHES[3], 8, 8, proof, root)  # index beyond the tree
    assert not verify_inclusion(HASHES[3], 3, 8, proof[:-1], root)  # a hash short
    assert not verify_inclusion(HASHES[3], 3, 8, [*proof, root], root)  # one too many
    cons = tree.consistency_proof(3, 8)
    assert not verify_consistency(3, 8, tree.root(3), tree.root(8), [])
    assert not verify_consistency(3, 8, tree.root(4), tree.root(8), cons)
    assert not verify_consistency(8, 3, tree.root(8), tree.root(3), cons)
    assert not verify_consistency(5, 5, tree.root(5), tree.root(5), cons)
    assert verify_consistency(5, 5, tree.root(5), tree.root(5), [])


def test_compact_range_round_trips_its_state_and_refuses_a_wrong_count() -> None:
    rng = CompactRange()
    rng.extend(HASHES[:7])
    again = CompactRange(rng.size, rng.hashes)
    again.append(HASHES[7])
    assert again.root().hex() == ROOTS[8]
    with pytest.raises(ValueError):
        CompactRange(7, rng.hashes[:2])
