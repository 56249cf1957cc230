"""engine.audit.note and engine.audit.checkpoint against known answers: the signed note of
golang.org/x/mod/sumdb/note's own examples (key PeterNeumann, signature x08go/...), and refusals
of forged or malformed notes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from engine.audit.checkpoint import Checkpoint, checkpoint_body, origin_for, parse_checkpoint
from engine.audit.note import (
    NoteError,
    NoteSigner,
    ed25519_verifier,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    signer_key,
    verifier_key,
    verify_note,
)

GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = (GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1"
           "FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").encode()


def test_signing_the_go_example_gives_its_note_byte_for_byte() -> None:
    name, key = parse_signer_key(GO_SIGNER)
    assert sign_note(GO_TEXT, name, key) == GO_NOTE
    assert signer_key(name, key) == GO_SIGNER
    assert verifier_key(name, key.public_key()) == GO_VERIFIER


def test_a_signer_of_many_notes_gives_sign_notes_bytes() -> None:
    """`NoteSigner` (the checkpoints' signer: name checked and line built once) makes the
    same note as `sign_note`, the Go example's byte for byte."""
    name, key = parse_signer_key(GO_SIGNER)
    signer = NoteSigner(name, key, parse_verifier_key(GO_VERIFIER).key_id)
    assert signer.sign(GO_TEXT.encode()) == GO_NOTE
    other = Ed25519PrivateKey.generate()
    origin = origin_for("r1", other.public_key().public_bytes_raw())
    kid = ed25519_verifier(origin, other.public_key()).key_id
    text = Checkpoint(origin, 5, bytes(32)).format()
    assert NoteSigner(origin, other, kid).sign(text.encode()) == sign_note(text, origin, other)
    with pytest.raises(NoteError):
        NoteSigner("a name", other, kid)


def test_the_go_example_verifies_with_its_verifier_key() -> None:
    verifier = parse_verifier_key(GO_VERIFIER)
    assert verifier.key_id.hex() == "c74f20a3"
    assert verify_note(GO_NOTE, [verifier]) == (GO_TEXT, ["PeterNeumann"])


def test_a_forged_signature_is_refused() -> None:
    verifier = parse_verifier_key(GO_VERIFIER)
    forged = GO_NOTE.replace(b"then you", b"than you")
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(forged, [verifier])
    other = Ed25519PrivateKey.generate()  # same name, another key: not the known key id
    with pytest.raises(NoteError, match="not signed by any"):
        verify_note(sign_note(GO_TEXT, "PeterNeumann", other), [verifier])


def test_unknown_signers_are_ignored_but_one_known_one_is_needed() -> None:
    other = Ed25519PrivateKey.generate()
    both = GO_NOTE + sign_note(GO_TEXT, "EnochRoot", other).split(b"\n\n")[1]
    assert verify_note(both, [parse_verifier_key(GO_VERIFIER)])[1] == ["PeterNeumann"]
    names = verify_note(both, [parse_verifier_key(GO_VERIFIER),
                               ed25519_verifier("EnochRoot", other.public_key())])[1]
    assert names == ["PeterNeumann", "EnochRoot"]


@pytest.mark.parametrize("key", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
    "PeterNeumann+c74f20a3+AhpchQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not Ed25519
    "PeterNeumann+c74f20a3",
    "PeterNeumann+c74f20a3+not base64",
])
def test_malformed_verifier_keys_are_refused(key: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(key)


@pytest.mark.parametrize("note", [
    GO_TEXT.encode(),  # no signatures
    GO_NOTE.replace("\u2014".encode(), b"-"),
    GO_NOTE.replace(b"\n\n", b"\n"),
    b"\xff" + GO_NOTE,
])
def test_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(NoteError):
        verify_note(note, [parse_verifier_key(GO_VERIFIER)])


def test_checkpoint_body_round_trips_and_refuses_malformed_bodies() -> None:
    cp = Checkpoint("trustledger.example/r1/0123456789abcdef", 8, bytes(range(32)), ("x y",))
    assert cp.format() == ("trustledger.example/r1/0123456789abcdef\n8\n"
                           "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nx y\n")
    assert parse_checkpoint(cp.format()) == cp
    for bad in ("o\n08\nAAAA\n", "o\n8\nAAAA\n", "o\n-1\n" + cp.format().split("\n")[2] + "\n",
                "o\n8\n", "\n8\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"):
        with pytest.raises(NoteError):
            parse_checkpoint(bad)


@given(st.integers(0, 2**63), st.binary(min_size=32, max_size=32))
def test_the_signers_checkpoint_body_is_the_checkpoints_format(size: int, root: bytes) -> None:
    origin = "trustledger.example/r1/0123456789abcdef"
    assert checkpoint_body(f"{origin}\n".encode(), size, root) == \
        Checkpoint(origin, size, root).format().encode()


def test_origin_names_host_and_the_audit_key() -> None:
    # SHA-256 of 32 zero bytes is 66687aadf862bd77...
    assert origin_for("r1", bytes(32)) == "trustledger.example/r1/66687aadf862bd77"
    assert origin_for("my router+", bytes(32)) == "trustledger.example/myrouter/66687aadf862bd77"
