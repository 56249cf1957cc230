"""The Keystore contract, proven for every adapter (directory, memory), plus the master key."""

from __future__ import annotations

import base64
import dataclasses
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from engine.keys import KeyAlgorithm, KeySpec, PrivateKey, describe, spki_of
from engine.keystore import (
    MASTER_KEY_ENV,
    CryptographyKeyGenerator,
    DirectoryKeystore,
    KeyGenerationRefused,
    KeyGenerator,
    KeyPool,
    KeyPoolExhausted,
    Keystore,
    KeystoreError,
    KeystoreFailure,
    KeyZeroized,
    MasterKey,
    MemoryKeystore,
    load_master_key,
    parse_master_key,
)


class KeystoreContract:
    """Every adapter: subclasses only say how to build one."""

    def make(self, tmp_path: Path) -> Keystore:
        raise NotImplementedError  # pragma: no cover - each adapter overrides it

    @pytest.fixture
    def store(self, tmp_path: Path) -> Keystore:
        return self.make(tmp_path)

    @pytest.fixture
    def keys(self, pregenerated: list[PrivateKey]) -> list[PrivateKey]:
        seen: dict[type, PrivateKey] = {}
        for k in pregenerated:
            seen.setdefault(type(k), k)
        return list(seen.values())  # one RSA, one EC, one Ed25519

    def test_seal_then_open_gives_the_same_key_for_every_algorithm(
            self, store: Keystore, keys: list[PrivateKey]) -> None:
        for key in keys:
            sealed = store.seal(key)
            assert sealed.public_key == spki_of(key)
            opened = store.private_key(sealed)
            assert type(opened) is type(key) and spki_of(opened) == spki_of(key)
            assert store.holds(sealed.key_id) and sealed.key_id in store.key_ids()

    def test_the_sealed_blob_holds_no_plaintext_private_key(
            self, store: Keystore, keys: list[PrivateKey]) -> None:
        for key in keys:
            pkcs8 = key.private_bytes(serialization.Encoding.DER,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
            sealed = store.seal(key)
            assert pkcs8[-32:] not in sealed.ciphertext and len(sealed.nonce) == 12

    def test_each_seal_uses_a_fresh_key_id_and_nonce(self, store: Keystore,
                                                     keys: list[PrivateKey]) -> None:
        a, b = store.seal(keys[0]), store.seal(keys[0])
        assert a.key_id != b.key_id and a.nonce != b.nonce and a.ciphertext != b.ciphertext

    def test_destroy_makes_the_key_unrecoverable_and_is_idempotent(
            self, store: Keystore, keys: list[PrivateKey]) -> None:
        kept, gone = store.seal(keys[0]), store.seal(keys[1])
        store.destroy(gone.key_id)
        store.destroy(gone.key_id)
        with pytest.raises(KeyZeroized) as err:
            store.private_key(gone)
        assert err.value.failure is KeystoreFailure.ZEROIZED and err.value.message.startswith("%")
        assert not store.holds(gone.key_id) and gone.key_id not in store.key_ids()
        assert spki_of(store.private_key(kept)) == kept.public_key

    def test_discard_destroys_a_data_key_no_event_names_without_a_tombstone(
            self, store: Keystore, keys: list[PrivateKey]) -> None:
        """A failed command's data key: gone, and not claimed to have been zeroized."""
        kept, dropped = store.seal(keys[0]), store.seal(keys[1])
        store.discard(dropped.key_id)
        with pytest.raises(KeystoreError) as err:
            store.private_key(dropped)
        assert err.value.failure is KeystoreFailure.DEK_MISSING
        assert dropped.key_id not in store.key_ids() and store.holds(kept.key_id)

    def test_tampering_is_detected(self, store: Keystore, keys: list[PrivateKey]) -> None:
        a, b = store.seal(keys[0]), store.seal(keys[1])
        flipped = bytes([a.ciphertext[0] ^ 1]) + a.ciphertext[1:]
        for bad in (dataclasses.replace(a, ciphertext=flipped),
                    dataclasses.replace(a, public_key=b.public_key),  # bound into the aad
                    dataclasses.replace(b, key_id=a.key_id)):  # another key's DEK
            with pytest.raises(KeystoreError) as err:
                store.private_key(bad)
            assert err.value.failure is KeystoreFailure.DAMAGED

    def test_an_unknown_sealing_scheme_is_refused(self, store: Keystore,
                                                  keys: list[PrivateKey]) -> None:
        sealed = dataclasses.replace(store.seal(keys[0]), sealing="rot13/v0")
        with pytest.raises(KeystoreError) as err:
            store.private_key(sealed)
        assert err.value.failure is KeystoreFailure.UNKNOWN_SEALING

    def test_a_malformed_key_id_is_a_value_error(self, store: Keystore) -> None:
        for bad in ("../../etc/passwd", "ABCDEF" * 6, ""):
            with pytest.raises(ValueError, match="not a key id"):
                store.destroy(bad)


class TestMemoryKeystore(KeystoreContract):
    def make(self, tmp_path: Path) -> Keystore:
        return MemoryKeystore()


class TestDirectoryKeystore(KeystoreContract):
    def make(self, tmp_path: Path) -> Keystore:
        return DirectoryKeystore.in_data_dir(tmp_path, environ={})

    def test_files_are_private(self, tmp_path: Path, keys: list[PrivateKey]) -> None:
        store = DirectoryKeystore.in_data_dir(tmp_path, environ={})
        sealed = store.seal(keys[0])
        mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
        assert mode(tmp_path / "master.key") == 0o600
        assert mode(tmp_path / "keystore") == 0o700
        assert mode(tmp_path / "keystore" / f"{sealed.key_id}.dek") == 0o600

    def test_another_master_key_cannot_open_the_data_keys(self, tmp_path: Path,
                                                          keys: list[PrivateKey]) -> None:
        sealed = DirectoryKeystore.in_data_dir(tmp_path, environ={}).seal(keys[0])
        other = {MASTER_KEY_ENV: os.urandom(32).hex()}
        with pytest.raises(KeystoreError) as err:
            DirectoryKeystore.in_data_dir(tmp_path, environ=other).private_key(sealed)
        assert err.value.failure is KeystoreFailure.WRONG_MASTER_KEY

    def test_the_master_key_file_can_move_to_the_environment(self, tmp_path: Path,
                                                             keys: list[PrivateKey]) -> None:
        sealed = DirectoryKeystore.in_data_dir(tmp_path, environ={}).seal(keys[0])
        text = (tmp_path / "master.key").read_text().strip()
        (tmp_path / "master.key").unlink()
        b64 = base64.b64encode(bytes.fromhex(text)).decode()
        for value in (text, text.upper(), b64, b64.rstrip("="),
                      base64.urlsafe_b64encode(bytes.fromhex(text)).decode()):
            store = DirectoryKeystore.in_data_dir(tmp_path, environ={MASTER_KEY_ENV: value})
            assert spki_of(store.private_key(sealed)) == sealed.public_key

    def test_opening_without_any_master_key_does_not_invent_one(self, tmp_path: Path,
                                                                keys: list[PrivateKey]) -> None:
        sealed = DirectoryKeystore.in_data_dir(tmp_path, environ={}).seal(keys[0])
        (tmp_path / "master.key").unlink()
        with pytest.raises(KeystoreError) as err:
            DirectoryKeystore.in_data_dir(tmp_path, environ={}).private_key(sealed)
        assert err.value.failure is KeystoreFailure.MASTER_KEY_MISSING
        assert not (tmp_path / "master.key").exists()

    def test_a_master_key_file_others_can_read_is_refused(self, tmp_path: Path,
                                                          keys: list[PrivateKey]) -> None:
        sealed = DirectoryKeystore.in_data_dir(tmp_path, environ={}).seal(keys[0])
        (tmp_path / "master.key").chmod(0o644)
        with pytest.raises(KeystoreError) as err:
            DirectoryKeystore.in_data_dir(tmp_path, environ={}).private_key(sealed)
        assert err.value.failure is KeystoreFailure.MASTER_KEY_EXPOSED


@pytest.mark.parametrize("bad", ["", "abc", "00" * 31, "00" * 33, "g" * 64,
                                 base64.b64encode(b"x" * 31).decode()])
def test_malformed_master_keys_are_refused(bad: str) -> None:
    with pytest.raises(KeystoreError) as err:
        parse_master_key(bad, "$TRUSTLEDGER_MASTER_KEY")
    assert err.value.failure is KeystoreFailure.MASTER_KEY_INVALID


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    from_file = load_master_key(tmp_path, {}, create=True)
    env = os.urandom(32)
    assert load_master_key(tmp_path, {MASTER_KEY_ENV: env.hex()}, create=True) == MasterKey(env)
    assert load_master_key(tmp_path, {}, create=False) == from_file
    assert "secret" not in repr(from_file) and from_file.secret.hex() not in repr(from_file)


# -- the KeyGenerator port ---------------------------------------------------------------------

SPECS = [KeySpec(KeyAlgorithm.RSA, 1024), KeySpec.ecdsa("nistp256"), KeySpec.ecdsa("nistp384"),
         KeySpec.ecdsa("nistp521"), KeySpec(KeyAlgorithm.ED25519, 256)]


class KeyGeneratorContract:
    def make(self, pregenerated: list[PrivateKey]) -> KeyGenerator:
        raise NotImplementedError  # pragma: no cover - each adapter overrides it

    @pytest.mark.parametrize("spec", SPECS, ids=str)
    def test_generates_a_key_of_the_spec(self, pregenerated: list[PrivateKey],
                                         spec: KeySpec) -> None:
        gen = self.make(pregenerated)
        a, b = gen.generate(spec), gen.generate(spec)
        assert spec.matches(a) and spec.matches(b)
        assert describe(a)[0] is spec.algorithm and describe(a)[1] == spec.size
        assert spki_of(a) != spki_of(b)


class TestCryptographyKeyGenerator(KeyGeneratorContract):
    def make(self, pregenerated: list[PrivateKey]) -> KeyGenerator:
        return CryptographyKeyGenerator()

    def test_refuses_rsa_below_what_the_library_makes(self) -> None:
        with pytest.raises(KeyGenerationRefused) as err:
            CryptographyKeyGenerator().generate(KeySpec(KeyAlgorithm.RSA, 768))
        assert err.value.message.startswith("% Cannot generate a 768-bit RSA key")


class TestKeyPool(KeyGeneratorContract):
    def make(self, pregenerated: list[PrivateKey]) -> KeyGenerator:
        return KeyPool(pregenerated)

    def test_hands_each_key_out_once_then_says_it_is_exhausted(
            self, pregenerated: list[PrivateKey]) -> None:
        pool = KeyPool(pregenerated)
        spec = KeySpec(KeyAlgorithm.ED25519, 256)
        got = [pool.generate(spec), pool.generate(spec)]
        assert got == [k for k in pregenerated if spec.matches(k)]
        with pytest.raises(KeyPoolExhausted):
            pool.generate(spec)


@pytest.mark.parametrize(("algorithm", "size", "curve"), [
    (KeyAlgorithm.RSA, 511, ""), (KeyAlgorithm.RSA, 4097, ""), (KeyAlgorithm.RSA, 2048, "x"),
    (KeyAlgorithm.ECDSA, 256, "nistp384"), (KeyAlgorithm.ECDSA, 256, "p256"),
    (KeyAlgorithm.ED25519, 255, "")])
def test_impossible_key_specs_are_value_errors(algorithm: KeyAlgorithm, size: int,
                                               curve: str) -> None:
    with pytest.raises(ValueError, match="spec"):
        KeySpec(algorithm, size, curve)
