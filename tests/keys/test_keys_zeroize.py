"""`crypto key zeroize`: crypto-shredding on disk, the log untouched, replay shows the key gone."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Engine
from engine.keys import KeyAlgorithm, SealedKey
from engine.keystore import DirectoryKeystore, KeystoreError, KeystoreFailure, KeyZeroized
from events.filelog import FileEventLog
from events.keys import KeyPairGenerated, KeyPairZeroized
from tests.keys.keys_support import log_bytes, only_pair


def sealed_from_log(data_dir: Path, label: str) -> list[SealedKey]:
    """The sealed private keys the log recorded for `label` (it never forgets them)."""
    found = []
    with FileEventLog.open(data_dir / "log", readonly=True) as log:
        for rec in log.read():
            ev = rec.event
            if isinstance(ev, KeyPairGenerated) and ev.label == label:
                found.append(SealedKey(ev.key_id, ev.public_key, ev.nonce,
                                       ev.sealed_private_key, ev.sealing))
    return found


def test_zeroize_label_shreds_the_dek_leaves_the_log_bytes_and_replay_drops_the_key(
        open_disk: Callable[..., Engine], data_dir: Path) -> None:
    e = open_disk()
    assert e.execute("crypto key generate rsa gone", answers=["1024"]).ok
    assert e.execute("crypto key generate rsa kept", answers=["1024"]).ok
    gone = only_pair(e, KeyAlgorithm.RSA, "gone")
    kept = only_pair(e, KeyAlgorithm.RSA, "kept")
    dek = data_dir / "keystore" / f"{gone.key_id}.dek"
    assert dek.exists()
    before = log_bytes(data_dir)

    r = e.execute("crypto key zeroize rsa gone", answers=["yes"])
    assert r.ok, r.output
    assert [rec.event for rec in r.events] == [
        KeyPairZeroized("gone", "rsa", (gone.key_id,), "zeroize")]
    after = log_bytes(data_dir)
    for name, old in before.items():  # old events: byte for byte the same; one event appended
        assert after[name][:len(old)] == old
    assert sum(map(len, after.values())) > sum(map(len, before.values()))
    assert not dek.exists() and (data_dir / "keystore" / f"{gone.key_id}.zeroized").exists()
    assert e.state.keys.pairs_of(KeyAlgorithm.RSA, "gone") == ()
    e.close()
    assert list((data_dir / "snapshots").glob("*.snap"))

    # Replay from the log alone (no snapshot), then with the snapshot close() wrote.
    for use_snapshots in (False, True):
        again = open_disk(use_snapshots=use_snapshots)
        assert again.state.keys.labels(KeyAlgorithm.RSA) == ("kept",)
        out = again.execute("show crypto key mypubkey rsa").output
        assert "Key label:kept" in out and "gone" not in out
        store = DirectoryKeystore.in_data_dir(data_dir)
        # The log still holds the sealed blob and the master key is at hand: still no key.
        (sealed,) = sealed_from_log(data_dir, "gone")
        with pytest.raises(KeyZeroized):
            store.private_key(sealed)
        assert store.private_key(kept.sealed) is not None
        again.close()


def test_zeroize_overwrites_the_dek_in_place_before_unlinking(
        open_disk: Callable[..., Engine], data_dir: Path) -> None:
    e = open_disk()
    assert e.execute("crypto key generate ecdsa nistp256 k").ok
    pair = only_pair(e, KeyAlgorithm.ECDSA, "k")
    dek = data_dir / "keystore" / f"{pair.key_id}.dek"
    witness = data_dir / "witness"
    os.link(dek, witness)  # a second name for the same inode sees what zeroize does to it
    original = witness.read_bytes()
    assert e.execute("crypto key zeroize ecdsa k", answers=["yes"]).ok
    shredded = witness.read_bytes()
    assert len(shredded) == len(original) and shredded != original
    assert shredded[:6] != b"TLDEK\x01"


def test_zeroize_all_asks_and_no_changes_nothing(engine: Engine) -> None:
    for label in ("a", "b"):
        assert engine.execute(f"crypto key generate rsa {label}", answers=["1024"]).ok
    head = engine.store.head
    r = engine.execute("crypto key zeroize rsa", answers=["no"])
    assert r.ok and r.events == [] and engine.store.head == head
    assert "% All RSA keys will be removed." in r.output
    assert "Do you really want to remove these keys? [yes/no]:no" in r.output
    assert engine.state.keys.labels(KeyAlgorithm.RSA) == ("a", "b")


def test_zeroize_all_yes_removes_every_key_of_that_algorithm_only(engine: Engine) -> None:
    assert engine.execute("crypto key generate rsa a", answers=["1024"]).ok
    assert engine.execute("crypto key generate rsa usage-keys b", answers=["1024", "1024"]).ok
    assert engine.execute("crypto key generate ed25519 a").ok
    ids = {p.key_id for p in engine.state.keys.all_pairs(KeyAlgorithm.RSA)}
    r = engine.execute("crypto key zeroize rsa", answers=["yes"])
    assert r.ok
    events = [rec.event for rec in r.events]
    assert [(ev.label, ev.reason) for ev in events] == [("a", "zeroize"), ("b", "zeroize")]  # type: ignore[attr-defined]
    assert {k for ev in events for k in ev.key_ids} == ids  # type: ignore[attr-defined]
    assert engine.state.keys.all_pairs(KeyAlgorithm.RSA) == ()
    assert engine.state.keys.labels(KeyAlgorithm.ED25519) == ("a",)


def test_zeroize_of_an_unknown_label_or_an_empty_ring_writes_nothing(engine: Engine) -> None:
    r = engine.execute("crypto key zeroize rsa nosuch")
    assert not r.ok and r.events == [] and "% No RSA key pair named 'nosuch'" in r.output
    r = engine.execute("crypto key zeroize ecdsa")
    assert not r.ok and "% No ECDSA keys to zeroize." in r.output
    assert engine.store.head[0] == 0


def test_a_dek_lost_without_zeroize_is_reported_as_missing(
        open_disk: Callable[..., Engine], data_dir: Path) -> None:
    e = open_disk()
    assert e.execute("crypto key generate ed25519 k").ok
    pair = only_pair(e, KeyAlgorithm.ED25519, "k")
    (data_dir / "keystore" / f"{pair.key_id}.dek").unlink()
    with pytest.raises(KeystoreError) as err:
        DirectoryKeystore.in_data_dir(data_dir).private_key(pair.sealed)
    assert err.value.failure is KeystoreFailure.DEK_MISSING
    assert not isinstance(err.value, KeyZeroized)
