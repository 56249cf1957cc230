"""`crypto key generate ...`: the dialogue, labels, replacement, usage keys, ECDSA and Ed25519,
and the private keys they seal."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from engine import Engine
from engine.effects import Effect, Outcome
from engine.keys import KeyAlgorithm, KeyUsage, spki_of
from engine.keystore import KeyPool, KeyZeroized, MemoryKeystore, WithPrivateKey, keystore_of
from engine.runtime import run
from events.keys import KeyPairGenerated, KeyPairZeroized
from tests.keys.keys_support import only_pair

DIALOGUE_1024 = """\
The name for the keys will be:mykey
Choose the size of the key modulus in the range of 512 to 4096 for your General Purpose Keypair
Choosing a key modulus greater than 512 may take a few minutes.
How many bits in the modulus [2048]:1024
% Warning: a 1024-bit RSA key is weak; use 2048 bits or more.
Generating RSA keys ...
Done w/ crypto generate keypair
[OK]
"""


def test_the_dialogue_matches_the_reference_messages(engine: Engine) -> None:
    r = engine.execute("crypto key generate rsa mykey", answers=["1024"])
    assert r.ok
    assert r.output == DIALOGUE_1024
    assert [type(rec.event) for rec in r.events] == [KeyPairGenerated]


def test_no_label_means_the_default_key_and_an_empty_answer_means_2048(engine: Engine,
                                                                      pool: KeyPool) -> None:
    r = engine.execute("crypto key generate rsa general-keys", answers=[""])
    assert r.ok, r.output
    assert "The name for the keys will be:the_default\n" in r.output
    assert "weak" not in r.output
    pair = only_pair(engine, KeyAlgorithm.RSA, "the_default")
    assert (pair.size, pair.usage) == (2048, KeyUsage.GENERAL)
    assert isinstance(pool.handed_out[0], rsa.RSAPrivateKey)
    assert pool.handed_out[0].key_size == 2048


@pytest.mark.parametrize("answer", ["511", "4097", "abc", "-1024", "2048.0"])
def test_a_bad_modulus_asks_again_and_nothing_is_generated_until_a_good_one(
        engine: Engine, pool: KeyPool, answer: str) -> None:
    r = engine.execute("crypto key generate rsa k", answers=[answer])
    assert not r.ok and r.events == []  # the script ended at the second question
    assert (f"How many bits in the modulus [2048]:{answer}\n"
            f"% Invalid modulus size {answer!r}: choose 512 to 4096 bits.\n"
            "% No answer to 'How many bits in the modulus [2048]:': input ended.\n"
            ) in r.output  # it asked again
    assert pool.handed_out == [] and engine.store.head[0] == 0
    assert engine.state.keys.labels(KeyAlgorithm.RSA) == ()
    r = engine.execute("crypto key generate rsa k", answers=[answer, "1024"])
    assert r.ok, r.output
    assert only_pair(engine, KeyAlgorithm.RSA, "k").size == 1024


def test_a_size_the_real_generator_cannot_make_is_not_offered_and_is_refused_at_the_answer(
        engine: Engine) -> None:
    engine.ports.keygen = None  # CryptographyKeyGenerator: 1024 bits and up
    question = "How many bits in the modulus [2048]:"
    r = engine.execute("crypto key generate rsa usage-keys k", answers=["1024", "512"])
    assert not r.ok and r.events == [] and engine.store.head[0] == 0
    assert r.output.count("in the range of 1024 to 4096 for your") == 2
    assert (f"{question}512\n% Invalid modulus size '512': this build's crypto library makes "
            f"RSA keys of 1024 bits or more; choose 1024 to 4096 bits.\n"
            f"% No answer to '{question}': input ended.\n") in r.output  # asked again
    assert "weak" not in r.output.split(f"{question}512")[1]  # no warning for a refused size
    store = keystore_of(engine.ports)
    assert isinstance(store, MemoryKeystore) and store.key_ids() == []  # nothing generated
    r = engine.execute("crypto key generate rsa usage-keys k", answers=["1024", "1023", "1024"])
    assert r.ok, r.output
    assert [p.size for p in engine.state.keys.pairs_of(KeyAlgorithm.RSA, "k")] == [1024, 1024]


def test_weak_warning_absent_at_2048(engine: Engine) -> None:
    r = engine.execute("crypto key generate rsa k", answers=["2048"])
    assert r.ok and "weak" not in r.output


def test_replace_asks_and_no_keeps_the_old_key(engine: Engine, pool: KeyPool) -> None:
    assert engine.execute("crypto key generate rsa k", answers=["1024"]).ok
    old = only_pair(engine, KeyAlgorithm.RSA, "k")
    head = engine.store.head
    r = engine.execute("crypto key generate rsa k", answers=["no"])
    assert r.ok and r.events == []
    assert "% You already have RSA keys defined named k.\n" in r.output
    assert "Do you really want to replace them? [yes/no]:no\n" in r.output
    assert "Generating" not in r.output
    assert engine.store.head == head and len(pool.handed_out) == 1
    assert only_pair(engine, KeyAlgorithm.RSA, "k") == old
    assert keystore_of(engine.ports).holds(old.key_id)


def test_replace_yes_destroys_the_old_private_key_and_records_why(engine: Engine) -> None:
    assert engine.execute("crypto key generate rsa k", answers=["1024"]).ok
    old = only_pair(engine, KeyAlgorithm.RSA, "k")
    r = engine.execute("crypto key generate rsa k", answers=["maybe", "yes", "1024"])
    assert r.ok, r.output
    assert "% Please answer 'yes' or 'no'." in r.output
    zeroized, generated = (rec.event for rec in r.events)
    assert zeroized == KeyPairZeroized("k", "rsa", (old.key_id,), "replaced")
    assert isinstance(generated, KeyPairGenerated) and generated.key_id != old.key_id
    new = only_pair(engine, KeyAlgorithm.RSA, "k")
    assert new.key_id == generated.key_id and new.public_key != old.public_key
    store = keystore_of(engine.ports)
    with pytest.raises(KeyZeroized):
        store.private_key(old.sealed)
    assert spki_of(store.private_key(new.sealed)) == new.public_key


def test_usage_keys_are_two_pairs_under_one_label(engine: Engine) -> None:
    r = engine.execute("crypto key generate rsa usage-keys vpn", answers=["1024", "1024"])
    assert r.ok, r.output
    assert "for your Signature Keypair\n" in r.output
    assert "for your Encryption Keypair\n" in r.output
    assert [rec.event.usage for rec in r.events] == ["signature", "encryption"]  # type: ignore[attr-defined]
    sig, enc = engine.state.keys.pairs_of(KeyAlgorithm.RSA, "vpn")
    assert (sig.usage, enc.usage) == (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)
    assert sig.key_id != enc.key_id
    assert engine.state.keys.signing_pair(KeyAlgorithm.RSA, "vpn") == sig
    store = keystore_of(engine.ports)
    assert spki_of(store.private_key(sig.sealed)) == sig.public_key
    assert spki_of(store.private_key(enc.sealed)) == enc.public_key


def test_usage_keys_replacing_general_keys_replace_both(engine: Engine) -> None:
    assert engine.execute("crypto key generate rsa k", answers=["1024"]).ok
    r = engine.execute("crypto key generate rsa usage-keys k", answers=["y", "1024", "1024"])
    assert r.ok
    assert [p.usage for p in engine.state.keys.pairs_of(KeyAlgorithm.RSA, "k")] == [
        KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION]


def test_a_bad_second_modulus_generates_neither_pair(engine: Engine, pool: KeyPool) -> None:
    r = engine.execute("crypto key generate rsa usage-keys vpn", answers=["1024", "9"])
    assert not r.ok and r.events == [] and pool.handed_out == []


@pytest.mark.parametrize(("curve", "cls_name", "bits"), [("nistp256", "secp256r1", 256),
                                                         ("nistp384", "secp384r1", 384),
                                                         ("nistp521", "secp521r1", 521)])
def test_ecdsa_curves(engine: Engine, curve: str, cls_name: str, bits: int) -> None:
    r = engine.execute(f"crypto key generate ecdsa {curve} e1")
    assert r.ok
    assert r.output == ("The name for the keys will be:e1\nGenerating ECDSA keys ...\n"
                        "Done w/ crypto generate keypair\n[OK]\n")
    pair = only_pair(engine, KeyAlgorithm.ECDSA, "e1")
    assert (pair.curve, pair.size) == (curve, bits)
    key = keystore_of(engine.ports).private_key(pair.sealed)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == cls_name


def test_ecdsa_needs_a_curve(engine: Engine) -> None:
    r = engine.execute("crypto key generate ecdsa")
    assert not r.ok and r.events == []


def test_ed25519_and_rsa_labels_are_separate_namespaces(engine: Engine) -> None:
    assert engine.execute("crypto key generate rsa k", answers=["1024"]).ok
    r = engine.execute("crypto key generate ed25519 k")
    assert r.ok and "already have" not in r.output
    pair = only_pair(engine, KeyAlgorithm.ED25519, "k")
    key = keystore_of(engine.ports).private_key(pair.sealed)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert only_pair(engine, KeyAlgorithm.RSA, "k").algorithm is KeyAlgorithm.RSA


def test_labels_are_one_word_of_safe_characters(engine: Engine) -> None:
    r = engine.execute("crypto key generate rsa ../etc", answers=["1024"])
    assert not r.ok and "Invalid input" in r.output


def test_a_keyword_prefix_is_the_keyword_not_a_label(engine: Engine) -> None:
    r = engine.execute("crypto key generate rsa usage k", answers=["1024", "1024"])
    assert r.ok and len(engine.state.keys.pairs_of(KeyAlgorithm.RSA, "k")) == 2


def test_with_private_key_signs_without_handing_the_key_to_the_handler(engine: Engine) -> None:
    assert engine.execute("crypto key generate rsa signer", answers=["1024"]).ok
    pair = only_pair(engine, KeyAlgorithm.RSA, "signer")

    def handler() -> Generator[Effect, Any, Outcome]:
        sig = yield WithPrivateKey(pair.sealed, lambda key: key.sign(  # type: ignore[union-attr,call-arg]
            b"to be signed", padding.PKCS1v15(), hashes.SHA256()))
        return Outcome(output=sig.hex())

    out = run(handler(), engine.ports).output
    public = keystore_of(engine.ports).private_key(pair.sealed).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(bytes.fromhex(out), b"to be signed", padding.PKCS1v15(), hashes.SHA256())


def test_help_lists_the_key_commands(engine: Engine) -> None:
    out = engine.execute("crypto key generate ?").output
    assert "rsa" in out and "ecdsa" in out and "ed25519" in out
    assert "nistp384" in engine.execute("crypto key generate ecdsa ?").output
