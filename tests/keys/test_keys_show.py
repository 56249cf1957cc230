"""`show crypto key mypubkey ...` follows the reference layout exactly."""

from __future__ import annotations

import hypothesis.strategies as st
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given

from engine import Engine
from engine.keys import KeyAlgorithm, KeyPair, KeyUsage
from engine.keystore import KeyPool
from engine.ports import FakeClock
from projections.keys import hex_words, render_key_pairs
from tests.keys.keys_support import REFERENCE_AT, data_bytes, vector

REFERENCE = vector("show_crypto_key_mypubkey_rsa_reference.txt")


def reference_der() -> bytes:
    data = REFERENCE.split("Data      :\n", 1)[1]
    return bytes.fromhex("".join(data.split()))


def pair_with(public_key: bytes, *, label: str = "mykey", usage: KeyUsage = KeyUsage.GENERAL,
              algorithm: KeyAlgorithm = KeyAlgorithm.RSA, size: int = 1024,
              curve: str = "") -> KeyPair:
    return KeyPair("0" * 32, label, algorithm, usage, size, curve, public_key, b"n" * 12,
                   b"sealed", "aes-256-gcm/pkcs8-der/v1", REFERENCE_AT)


def test_the_reference_example_key_renders_exactly_as_the_reference_shows_it() -> None:
    der = reference_der()
    key = serialization.load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024  # the vector is sound
    ours = render_key_pairs([pair_with(der)]).splitlines()
    ref = REFERENCE.splitlines()
    # The reference document lost the leading space of the Data continuation lines (its first
    # Data line keeps it); IOS prints every Data line with one leading space.
    expected = ref[:6] + [" " + line for line in ref[6:]]
    assert ours == expected
    assert ours[0] == "Key label:mykey" and ours[5].startswith(" 30819F30 0D06092A")


@given(st.binary(min_size=0, max_size=300))
def test_hex_words_are_upper_case_8_digit_words_8_a_line_and_decode_back(der: bytes) -> None:
    lines = hex_words(der)
    assert bytes.fromhex("".join("".join(lines).split())) == der
    assert len(lines) == (len(der) + 31) // 32
    for i, line in enumerate(lines):
        assert line.startswith(" ") and not line.startswith("  ") and not line.endswith(" ")
        words = line[1:].split(" ")
        assert len(words) <= 8 and (len(words) == 8 or i == len(lines) - 1)
        assert all(w == w.upper() for w in words)
        assert all(len(w) == 8 for w in words[:-1]) and 0 < len(words[-1]) <= 8


def test_generated_key_is_shown_with_its_own_spki_and_creation_time(pool: KeyPool) -> None:
    engine = Engine.in_memory(clock=FakeClock(REFERENCE_AT))
    engine.ports.keygen = pool
    assert engine.execute("crypto key generate rsa mykey", answers=["1024"]).ok
    out = engine.execute("show crypto key mypubkey rsa").output
    lines = out.splitlines()
    assert lines[:5] == ["Key label:mykey", "Type      :RSA General purpose", "Size      :1024",
                         "Created   :17:33:23 UTC Thu Sep 18 2003", "Data      :"]
    spki = pool.handed_out[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert data_bytes(out) == [spki]
    assert out.endswith("\n") and not out.endswith("\n\n")


def test_usage_keys_show_two_entries_signature_first(engine: Engine) -> None:
    r = engine.execute("crypto key generate rsa usage-keys vpn", answers=["1024", "1024"])
    assert r.ok, r.output
    out = engine.execute("show crypto key mypubkey rsa vpn").output
    entries = out.split("\n\n")
    assert len(entries) == 2
    assert entries[0].splitlines()[:2] == ["Key label:vpn", "Type      :RSA Usage Keys (Signature)"]
    assert entries[1].splitlines()[:2] == ["Key label:vpn",
                                           "Type      :RSA Usage Keys (Encryption)"]
    sig, enc = engine.state.keys.pairs_of(KeyAlgorithm.RSA, "vpn")
    assert data_bytes(out) == [sig.public_key, enc.public_key]
    assert sig.public_key != enc.public_key


def test_all_keys_of_an_algorithm_are_listed_in_creation_order(engine: Engine) -> None:
    for label in ("b", "a"):
        assert engine.execute(f"crypto key generate rsa {label}", answers=["1024"]).ok
    assert engine.execute("crypto key generate ecdsa nistp256 a").ok
    out = engine.execute("show crypto key mypubkey rsa").output
    assert [ln for ln in out.splitlines() if ln.startswith("Key label")] == ["Key label:b",
                                                                            "Key label:a"]
    assert "ECDSA" not in out


def test_ecdsa_and_ed25519_types(engine: Engine) -> None:
    assert engine.execute("crypto key generate ecdsa nistp521 e").ok
    assert engine.execute("crypto key generate ed25519").ok
    ec_out = engine.execute("show crypto key mypubkey ecdsa e").output.splitlines()
    assert ec_out[1:3] == ["Type      :ECDSA General Curve Nistp521", "Degree    :521"]
    ed_out = engine.execute("show crypto key mypubkey ed25519").output
    assert ed_out.splitlines()[:3] == ["Key label:the_default",
                                       "Type      :ED25519 General purpose", "Size      :256"]
    pair = engine.state.keys.pairs_of(KeyAlgorithm.ED25519, "the_default")[0]
    assert data_bytes(ed_out) == [pair.public_key] and len(pair.public_key) == 44


def test_show_of_an_unknown_label_is_an_error_and_empty_ring_shows_nothing(engine: Engine) -> None:
    assert engine.execute("show crypto key mypubkey rsa").output == ""
    r = engine.execute("show crypto key mypubkey rsa nosuch")
    assert not r.ok and r.output.startswith("% No RSA key pair named 'nosuch'")
